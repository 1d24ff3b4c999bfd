"""Network building blocks shared by the denoisers of both stages.

Feature maps are ``(B, C, H, W)``; a block's conditioning vector ``emb`` is ``(B, E)``
(timestep embedding, plus whatever global conditioning the model adds to it); a
cross-attention ``context`` is ``(B, L, D)`` tokens with an optional ``context_mask``
``(B, L)``, True where a token is real (False for padding).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of timesteps ``t`` ``(B,)`` (integer or float)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def embedding_mlp(width: int, dim: int) -> nn.Sequential:
    """``Linear(width, dim) -> SiLU -> Linear(dim, dim)``: lifts a sinusoidal embedding ``(N, width)``
    to ``(N, dim)``."""
    return nn.Sequential(nn.Linear(width, dim), nn.SiLU(), nn.Linear(dim, dim))


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``channels``."""
    groups = math.gcd(32, channels)
    return nn.GroupNorm(groups, channels)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel of ``(B, C, H, W)``.

    Unlike GroupNorm it uses no statistics across positions, so a network built on it
    gives the same output for a pixel whether it sees the whole image or a tile around it
    (what tiled inference needs).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


NORMS = {"group": group_norm, "channel": ChannelNorm}


def zero_init(module: nn.Module) -> nn.Module:
    """``module`` with weights and bias set to zero (residual branches start as identity)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a scale-and-shift from ``emb``; ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    ``norm``: ``"group"`` (GroupNorm) or ``"channel"`` (:class:`ChannelNorm`, tile-invariant).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0,
                 norm: str = "group"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm1 = NORMS[norm](in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = NORMS[norm](out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class MultiHeadAttention(nn.Module):
    """Attention of ``(B, N, C)`` queries to ``(B, M, D)`` keys/values; returns ``(B, N, C)``."""

    def __init__(self, channels: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.query = nn.Linear(channels, channels, bias=False)
        self.key_value = nn.Linear(context_dim or channels, 2 * channels, bias=False)
        self.out = zero_init(nn.Linear(channels, channels))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        return x.view(batch, length, self.heads, channels // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = self._split(self.query(x))
        key, value = (self._split(part) for part in self.key_value(context).chunk(2, dim=-1))
        scores = query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5  # (B, heads, N, M)
        if context_mask is not None:
            scores = scores.masked_fill(~context_mask[:, None, None, :], float("-inf"))
        # explicit attention: on CPU, backward through F.scaled_dot_product_attention is about 3x slower
        attended = scores.softmax(dim=-1).to(value.dtype) @ value
        return self.out(attended.transpose(1, 2).reshape(x.shape))


class SpatialTransformer(nn.Module):
    """Self-attention over the ``H * W`` positions, optional cross-attention to a context, and an MLP.

    ``(B, C, H, W) -> (B, C, H, W)``; every branch is residual and starts at zero.
    """

    def __init__(self, channels: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.norm_in = group_norm(channels)
        self.norm_self = nn.LayerNorm(channels)
        self.self_attention = MultiHeadAttention(channels, heads)
        self.norm_cross = nn.LayerNorm(channels) if context_dim else None
        self.cross_attention = MultiHeadAttention(channels, heads, context_dim) if context_dim else None
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), zero_init(nn.Linear(4 * channels, channels)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.norm_in(x).flatten(2).transpose(1, 2)
        normed = self.norm_self(tokens)
        tokens = tokens + self.self_attention(normed, normed)
        if self.cross_attention is not None:
            if context is None:
                raise ValueError("this block has cross-attention and needs a context")
            tokens = tokens + self.cross_attention(self.norm_cross(tokens), context, context_mask)
        tokens = tokens + self.mlp(self.norm_mlp(tokens))
        return x + tokens.transpose(1, 2).reshape(batch, channels, height, width)


class TemporalAttention(nn.Module):
    """Self-attention across the ``T`` frames at each position, then an MLP, both residual.

    ``forward(x (B * T, C, H, W), frames=T, frame_mask (B, T) or None) -> (B * T, C, H, W)``:
    every pixel position attends to the same position in the other frames of its item
    (``frame_mask``: True for real frames, False for padding that nobody attends to).
    Norms are per pixel, so the block is tile-invariant. Branches start at zero.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm_attention = nn.LayerNorm(channels)
        self.attention = MultiHeadAttention(channels, heads)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), zero_init(nn.Linear(2 * channels, channels)))

    def forward(self, x: torch.Tensor, frames: int, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        items, channels, height, width = x.shape
        batch = items // frames
        # (B * T, C, H, W) -> (B * H * W, T, C): one sequence of T frames per pixel position
        tokens = x.view(batch, frames, channels, height * width).permute(0, 3, 1, 2).reshape(-1, frames, channels)
        mask = None
        if frame_mask is not None:
            mask = frame_mask[:, None, :].expand(batch, height * width, frames).reshape(-1, frames)
        normed = self.norm_attention(tokens)
        tokens = tokens + self.attention(normed, normed, mask)
        tokens = tokens + self.mlp(self.norm_mlp(tokens))
        return tokens.view(batch, height * width, frames, channels).permute(0, 2, 3, 1).reshape(x.shape)


class Downsample(nn.Module):
    """Strided 3x3 convolution: ``(B, C, H, W) -> (B, C_out, H/2, W/2)``."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2x then 3x3 convolution: ``(B, C, H, W) -> (B, C_out, 2H, 2W)``."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class LevelsUNet(nn.Module):
    """Base of the stages' UNet denoisers: the levels, the middle and the skips between them.

    Level ``i`` has ``channels[i]`` channels at ``1 / 2^i`` of the first level's grid. A
    subclass calls :meth:`build_levels` in its constructor (after its stem, so parameters are
    created in the same order) and :meth:`run_levels` in ``forward``; it owns the embedding,
    the stem and the head. Level blocks are called as ``block(h, emb, *extra)``.
    """

    def build_levels(self, channels: Sequence[int], flags: Sequence[bool], level: Callable[[int, int, bool], nn.Module],
                     middle_res: Callable[[int], nn.Module], flags_name: str) -> None:
        """``level(in_channels, out_channels, flag)`` builds a block (``flags[i]`` per level, True in
        the middle); ``middle_res(channels)`` the block after the middle one. ``flags_name`` names
        the option ``flags`` came from, for the error when its length differs from ``channels``'."""
        if len(channels) != len(flags):
            raise ValueError(f"channels {list(channels)} and {flags_name} {list(flags)} need one entry per level")
        self.levels = len(channels)
        self.down = nn.ModuleList(level(c, c, flag) for c, flag in zip(channels, flags))
        self.downsample = nn.ModuleList(Downsample(a, b) for a, b in zip(channels, channels[1:]))
        self.middle = level(channels[-1], channels[-1], True)
        self.middle_res = middle_res(channels[-1])
        self.up = nn.ModuleList(level(2 * c, c, flag) for c, flag in zip(channels, flags))
        self.upsample = nn.ModuleList(Upsample(b, a) for a, b in zip(channels, channels[1:]))

    def run_levels(self, h: torch.Tensor, emb: torch.Tensor, *extra) -> torch.Tensor:
        """Down through the levels, the middle, and up with each level's skip: ``(N, C0, H, W)`` in and out."""
        skips = []
        for index, block in enumerate(self.down):
            h = block(h, emb, *extra)
            skips.append(h)
            if index < len(self.downsample):
                h = self.downsample[index](h)
        h = self.middle_res(self.middle(h, emb, *extra), emb)
        for index in reversed(range(self.levels)):
            h = self.up[index](torch.cat([h, skips[index]], dim=1), emb, *extra)
            if index > 0:
                h = self.upsample[index - 1](h)
        return h
