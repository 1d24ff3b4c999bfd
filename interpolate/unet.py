"""The temporal denoiser: a space-time UNet over all in-betweens of one keyframe gap.

Every frame goes through the same spatial blocks (frames folded into the batch); temporal
attention blocks let each position look at the same position in the gap's other frames, so
the in-betweens are denoised together. The frame ``(B, T, 3 + C, H, W)`` input is the noisy
frame plus its conditioning channels; it is folded into ``patch x patch`` cells, run through
levels that halve the grid, unfolded, and finished by a small full-resolution refinement
that sees the conditioning again (so edges need not come through the cells).

Norms are per pixel (:class:`inbetween.diffusion.nets.ChannelNorm`) and there is no spatial
attention: a pixel's output depends only on a window around it, which is what makes tiled
inference (:mod:`interpolate.tiling`) match untiled inference.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inbetween.diffusion.nets import ChannelNorm, LevelsUNet, ResBlock, TemporalAttention, embedding_mlp, \
    timestep_embedding, zero_init

#: Scale of a frame's time ``t`` in ``[0, 1]`` before its sinusoidal embedding.
_FRAME_TIME_SCALE = 1000.0


class _Level(nn.Module):
    """One channel-normed ResBlock, optionally followed by temporal attention."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, temporal: bool, heads: int):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim, norm="channel")
        self.temporal = TemporalAttention(out_channels, heads) if temporal else None

    def forward(self, x, emb, frames, frame_mask):
        x = self.res(x, emb)
        return x if self.temporal is None else self.temporal(x, frames, frame_mask)


class TemporalUNet(LevelsUNet):
    """``forward(x_t (B, T, 3, H, W), t (B,), cond (B, T, C, H, W), times (B, T), frame_mask (B, T) | None)``
    returns ``(B, T, out_channels, H, W)``, the raw output that the caller turns into a prediction
    (:func:`interpolate.diffusion.synthesise` for the interpolator).

    ``t`` is the diffusion timestep, ``times`` each frame's place in the gap (0 left keyframe,
    1 right), ``frame_mask`` False on padding frames. ``H`` and ``W`` must be multiples of
    :attr:`multiple` (callers pad).
    """

    def __init__(self, cond_channels: int, out_channels: int, patch: int = 4, channels: Sequence[int] = (64, 96, 128),
                 temporal: Sequence[bool] = (False, True, True), heads: int = 4, refine_channels: int = 32):
        super().__init__()
        self.patch = patch
        emb_dim = 4 * channels[0]
        self.step_mlp = embedding_mlp(channels[0], emb_dim)
        self.time_mlp = embedding_mlp(channels[0], emb_dim)
        in_channels = 3 + cond_channels
        self.stem = nn.Conv2d(in_channels * patch * patch, channels[0], 3, padding=1)
        self.build_levels(channels, temporal, lambda c_in, c_out, a: _Level(c_in, c_out, emb_dim, a, heads),
                          lambda c: ResBlock(c, c, emb_dim, norm="channel"), "temporal")
        self.head = nn.Sequential(ChannelNorm(channels[0]), nn.SiLU(),
                                  zero_init(nn.Conv2d(channels[0], out_channels * patch * patch, 3, padding=1)))
        self.refine = nn.Sequential(nn.Conv2d(out_channels + in_channels, refine_channels, 3, padding=1), nn.SiLU(),
                                    zero_init(nn.Conv2d(refine_channels, out_channels, 3, padding=1)))

    @property
    def multiple(self) -> int:
        """Frame sides must be multiples of this."""
        return self.patch * 2 ** (self.levels - 1)

    def _embedding(self, t: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """``(B * T, E)``: the diffusion step's embedding plus each frame's time embedding."""
        width = self.step_mlp[0].in_features
        frames = times.shape[1]
        step = self.step_mlp(timestep_embedding(t, width)).repeat_interleave(frames, dim=0)
        return step + self.time_mlp(timestep_embedding(times.flatten() * _FRAME_TIME_SCALE, width))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, times: torch.Tensor,
                frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, frames, _, height, width = x.shape
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"frame size {(height, width)} must be a multiple of {self.multiple}")
        inputs = torch.cat([x, cond.to(x.dtype)], dim=2).flatten(0, 1)  # (B * T, 3 + C, H, W)
        emb = self._embedding(t, times)
        h = self.run_levels(self.stem(F.pixel_unshuffle(inputs, self.patch)), emb, frames, frame_mask)
        coarse = F.pixel_shuffle(self.head(h), self.patch)
        out = coarse + self.refine(torch.cat([coarse, inputs], dim=1))
        return out.view(batch, frames, -1, height, width)
