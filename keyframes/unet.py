"""The keyframe denoiser: a text-conditioned UNet on pixel patches.

The image ``(B, 3, H, W)`` is folded into patches (``pixel_unshuffle`` by ``patch``), so a
64x64 image is a 16x16 grid of 48-channel cells; two coordinate channels tell every cell
where it is (positions are part of the captions). Levels halve the grid; the levels marked
in ``attention`` carry self-attention plus cross-attention to the caption's token features.
The pooled caption embedding joins the timestep embedding, which every ResBlock reads.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inbetween.diffusion.nets import LevelsUNet, ResBlock, SpatialTransformer, embedding_mlp, group_norm, \
    timestep_embedding, zero_init


class _Level(nn.Module):
    """One ResBlock, optionally followed by a SpatialTransformer."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, attention: bool, heads: int,
                 context_dim: int):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim)
        self.attention = SpatialTransformer(out_channels, heads, context_dim) if attention else None

    def forward(self, x, emb, context, context_mask):
        x = self.res(x, emb)
        return x if self.attention is None else self.attention(x, context, context_mask)


class TextUNet(LevelsUNet):
    """``forward(x_t (B, 3, H, W), t (B,), context (B, L, D), context_mask (B, L), pooled (B, P))``
    returns the raw prediction ``(B, 3, H, W)`` (epsilon, v or x0, per the training objective).

    ``H`` and ``W`` must be multiples of ``patch * 2 ** (len(channels) - 1)``.
    """

    def __init__(self, context_dim: int, pooled_dim: int, patch: int = 4, channels: Sequence[int] = (128, 192, 256),
                 attention: Sequence[bool] = (False, True, True), heads: int = 4, image_channels: int = 3):
        super().__init__()
        self.patch = patch
        emb_dim = 4 * channels[0]
        self.time_mlp = embedding_mlp(channels[0], emb_dim)
        self.pooled_proj = nn.Linear(pooled_dim, emb_dim)
        cell_channels = image_channels * patch * patch
        self.stem = nn.Conv2d(cell_channels + 2, channels[0], 3, padding=1)
        self.build_levels(channels, attention,
                          lambda c_in, c_out, a: _Level(c_in, c_out, emb_dim, a, heads, context_dim),
                          lambda c: ResBlock(c, c, emb_dim), "attention")
        self.head = nn.Sequential(group_norm(channels[0]), nn.SiLU(),
                                  zero_init(nn.Conv2d(channels[0], cell_channels, 3, padding=1)))

    def _cells(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> patch cells with coordinate channels ``(B, 3 p^2 + 2, H/p, W/p)``."""
        multiple = self.patch * 2 ** (self.levels - 1)
        if x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(f"image size {tuple(x.shape[-2:])} must be a multiple of {multiple}")
        cells = F.pixel_unshuffle(x, self.patch)
        batch, _, height, width = cells.shape
        ys = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy")).expand(batch, -1, -1, -1)
        return torch.cat([cells, grid], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.time_mlp[0].in_features)) + self.pooled_proj(pooled)
        h = self.run_levels(self.stem(self._cells(x)), emb, context, context_mask)
        return F.pixel_shuffle(self.head(h), self.patch)
