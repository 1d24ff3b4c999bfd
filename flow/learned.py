"""Learned optical flow with global matching (``flow=learned``), GMFlow-style, sized for CPUs.

:class:`MatchingFlowNet`:

1. a convolutional encoder maps each image to features at 1/8 resolution;
2. a few transformer layers (self-attention within an image, cross-attention to the other)
   make the features of matching pixels alike;
3. **global matching**: the correlation of every pixel of one image with every pixel of the
   other, a softmax over the other image, and the expected position there give the flow at
   1/8 resolution. One correlation gives both directions (softmax over rows or columns), so a
   match is found wherever it lies, however far it moved;
4. **propagation**: self-attention over the image's own features carries flow from pixels
   that match well to pixels that have no match (occluded, out of frame, flat);
5. a residual convolutional head refines the flow at 1/8, and **convex upsampling** (RAFT)
   brings it to full resolution: each full-resolution flow vector is a learned convex
   combination of its 3x3 coarse neighbours;
6. optionally (network option ``local``), :class:`LocalRefiner` sharpens that flow at 1/4 of the
   image's own resolution: RAFT-style iterations over a local correlation window, so that a match
   made on a downsampled copy is placed to the pixel.

Images of any size run: they are edge-padded to a multiple of 8; an image with more than
``max_tokens`` positions at 1/8 is matched at a coarser scale (downsampled first, the flow
upsampled and scaled back), so memory stays bounded; the default, 576 positions (24x24), is the
grid the shipped model last trained its global matching on; it scored better than 256 on held-back
photographs at 320 and 640 px, and more positions than the model trained on (1024) were worse again.
The local refiner always runs at the image's own size (its cost grows with the pixels, not their
square). :class:`LearnedFlow` then refines at full resolution (``refine``).

A model folder holds ``config.json`` (network options) and ``flow.safetensors`` (float16 weights).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from checkpoints import shipped
from flow.base import FlowEstimator
from flow.opencv import DISFlow
from inbetween.errors import InbetweenError
from inbetween.warp import backward_warp, occlusion_mask, round_trip
from inbetween.weights import load_weights, read_config, save_folder

NETWORK = "flow"  # flow.safetensors
STRIDE = 8


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, channels)


class _ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.norm1, self.norm2 = _norm(out_channels), _norm(out_channels)
        self.skip = (nn.Identity() if stride == 1 and in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.skip(x) + self.norm2(self.conv2(y)))


class Encoder(nn.Module):
    """Images ``(B, 3, H, W)`` in ``[-1, 1]`` -> features ``(B, C, H/8, W/8)``."""

    def __init__(self, channels: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        first, second, third = channels
        self.stem = nn.Sequential(nn.Conv2d(3, first, 7, 2, 3), _norm(first), nn.ReLU())
        self.stages = nn.Sequential(_ResBlock(first, first, 1), _ResBlock(first, second, 2),
                                    _ResBlock(second, second, 1), _ResBlock(second, third, 2),
                                    _ResBlock(third, third, 1))
        self.out = nn.Conv2d(third, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.stages(self.stem(x)))


def sine_positions(channels: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """2D sine position encoding ``(1, H * W, channels)`` (half the channels for x, half for y)."""
    quarter = channels // 4
    frequencies = 1.0 / (10000 ** (torch.arange(quarter, device=device) / quarter))
    rows, cols = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                                torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    parts = [fn(axis.reshape(-1, 1) * frequencies) for axis in (cols, rows) for fn in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)[None]


class _TransformerLayer(nn.Module):
    """Self-attention, cross-attention to the other image, feed-forward; pre-norm, residual. Tokens ``(B, N, C)``."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.self_attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(3)])
        self.feed_forward = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        y = self.norms[0](x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        y, o = self.norms[1](x), self.norms[1](other)
        x = x + self.cross_attention(y, o, o, need_weights=False)[0]
        return x + self.feed_forward(self.norms[2](x))


def coordinate_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel centres ``(1, H * W, 2)`` as ``(x, y)``."""
    rows, cols = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                                torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([cols, rows], dim=-1).reshape(1, -1, 2)


def global_matching(features0: torch.Tensor, features1: torch.Tensor, height: int,
                    width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``(B, N, 2)`` both ways from tokens ``(B, N, C)`` of two ``height x width`` images.

    ``softmax(f0 f1^T / sqrt(C))`` over image 1 weighs where each pixel of image 0 is; the
    expected position minus its own is the flow 0 -> 1, and the softmax over image 0 the flow 1 -> 0.
    """
    correlation = features0 @ features1.transpose(1, 2) / math.sqrt(features0.shape[-1])
    grid = coordinate_grid(height, width, features0.device)
    flow_01 = correlation.softmax(dim=2) @ grid - grid
    flow_10 = correlation.softmax(dim=1).transpose(1, 2) @ grid - grid
    return flow_01, flow_10


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow ``(B, 2, H, W)`` resampled to ``size`` ``(h, w)`` (area when smaller, bilinear when larger),
    its vectors scaled to pixels of the new grid."""
    height, width = flow.shape[-2:]
    mode = "area" if size[0] <= height and size[1] <= width else "bilinear"
    resized = F.interpolate(flow, size=size, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    factor = torch.tensor([size[1] / width, size[0] / height], device=flow.device, dtype=flow.dtype)
    return resized * factor.view(1, 2, 1, 1)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, factor: int) -> torch.Tensor:
    """RAFT's convex upsampling: flow ``(B, 2, h, w)`` -> ``(B, 2, factor * h, factor * w)``, each fine
    vector a convex combination of its 3x3 coarse neighbours weighted by ``softmax(mask)``, ``mask``
    ``(B, 9 * factor * factor, h, w)``; vectors scaled to pixels of the fine grid. Neighbours beyond the
    border are zero flow, as in RAFT: the masks learn to leave them out."""
    batch, _, height, width = flow.shape
    weights = mask.view(batch, 1, 9, factor, factor, height, width).softmax(dim=2)
    neighbours = F.unfold(factor * flow, 3, padding=1).view(batch, 2, 9, 1, 1, height, width)
    fine = (weights * neighbours).sum(dim=2)  # (B, 2, factor, factor, h, w)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(batch, 2, factor * height, factor * width)


def local_correlation(features0: torch.Tensor, features1: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, (2r + 1)^2, h, w)``: the dot product (over channels, divided by ``sqrt(C)``) of each pixel of
    ``features0`` ``(B, C, h, w)`` with the pixels of ``features1`` within ``radius`` of the same place
    (zeros beyond the border), offsets in row-major order from ``(-r, -r)``. One offset at a time, so
    memory stays that of the inputs."""
    height, width = features0.shape[-2:]
    padded = F.pad(features1, (radius,) * 4)
    side = 2 * radius + 1
    scores = [(features0 * padded[..., dy:dy + height, dx:dx + width]).sum(1, keepdim=True)
              for dy in range(side) for dx in range(side)]
    return torch.cat(scores, dim=1) / math.sqrt(features0.shape[1])


LOCAL_STRIDE = 4


class LocalRefiner(nn.Module):
    """Sharpens flows at 1/4 resolution by local correlation (RAFT-style iterations, shared weights).

    Its own small encoder gives features ``(B, channels, H/4, W/4)`` of both images. Each of the
    ``iterations`` warps the other image's features along the current flow, correlates every pixel
    with a ``(2 radius + 1)^2`` window around where the flow points (:func:`local_correlation`), and a
    convolutional head turns the correlation, the pixel's own features and the flow into a residual
    flow; :func:`convex_upsample` brings each iterate to full resolution. The window at 1/4 reaches
    ``4 * radius`` pixels per iteration, enough to place a match made on a downsampled copy.
    """

    def __init__(self, channels: int = 64, radius: int = 3, hidden: int = 96, iterations: int = 2) -> None:
        super().__init__()
        if iterations < 1 or radius < 1:
            raise InbetweenError(f"local needs iterations >= 1 and radius >= 1, got {iterations} and {radius}.")
        self.radius, self.iterations = radius, iterations
        self.encoder = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 3), _norm(32), nn.ReLU(), _ResBlock(32, 48, 2),
                                     _ResBlock(48, channels, 1))
        head_in = (2 * radius + 1) ** 2 + channels + 2
        self.head = nn.Sequential(nn.Conv2d(head_in, hidden, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU())
        self.delta = nn.Conv2d(hidden, 2, 3, padding=1)
        self.upsample_mask = nn.Conv2d(hidden, 9 * LOCAL_STRIDE * LOCAL_STRIDE, 1)
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)
        self._training_correlation = local_correlation

    def compile_correlation(self) -> None:
        """Use a ``torch.compile``d :func:`local_correlation` in training mode (one fused loop: about 6x faster
        on a CPU than eager, but compiled anew for every input size, so never in eval mode)."""
        self._training_correlation = torch.compile(local_correlation)

    def forward(self, image0: torch.Tensor, image1: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Images ``(B, 3, H, W)`` (H, W multiples of 4) and their flows ``(flow_01, flow_10)`` ``(B, 2, H, W)``
        -> the refined pair after each iteration, at full resolution."""
        batch = image0.shape[0]
        features = self.encoder(torch.cat([image0, image1]))
        own_features = (features[:batch], features[batch:])
        small = own_features[0].shape[-2:]
        current = [resize_flow(flow, small) for flow in flows]
        matching = [f.float() for f in own_features]  # warped and correlated in fp32: bf16 cannot hold positions
        correlate = self._training_correlation if self.training else local_correlation
        outputs = []
        for _ in range(self.iterations):
            fine = []
            for direction, own in enumerate(own_features):
                warped = backward_warp(matching[1 - direction], current[direction])
                correlation = correlate(matching[direction], warped, self.radius)
                hidden = self.head(torch.cat([correlation, own, current[direction] / LOCAL_STRIDE], dim=1))
                current[direction] = current[direction] + self.delta(hidden)
                fine.append(convex_upsample(current[direction], self.upsample_mask(hidden), LOCAL_STRIDE))
            outputs.append((fine[0], fine[1]))
        return outputs


class MatchingFlowNet(nn.Module):
    """Both flows ``(B, 2, H, W)`` of an image pair ``(B, 3, H, W)`` of any size (see the module docstring).

    ``forward(image0, image1, max_tokens)`` returns ``[(flow_01, flow_10) at 1/8 of the matched size
    before refinement, (flow_01, flow_10) at full resolution, then one full-resolution pair per local
    iteration]``: the last is the answer, the others are for auxiliary losses; flows in pixels of their
    own resolution. ``local``: :class:`LocalRefiner` options, or None for none.
    """

    def __init__(self, encoder_channels: tuple[int, int, int] = (32, 64, 96), channels: int = 128,
                 layers: int = 2, heads: int = 4, refine_channels: int = 96,
                 local: dict[str, int] | None = None) -> None:
        super().__init__()
        if channels % 4:
            raise InbetweenError(f"channels must be a multiple of 4 (sine positions), got {channels}.")
        self.local = LocalRefiner(**local) if local else None
        self.encoder = Encoder(tuple(encoder_channels), channels)
        self.transformer = nn.ModuleList([_TransformerLayer(channels, heads) for _ in range(layers)])
        self.propagation_query = nn.Linear(channels, channels)
        self.propagation_key = nn.Linear(channels, channels)
        self.refine = nn.Sequential(nn.Conv2d(channels + 2, refine_channels, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(refine_channels, refine_channels, 3, padding=1), nn.ReLU())
        self.refine_flow = nn.Conv2d(refine_channels, 2, 3, padding=1)
        self.upsample_mask = nn.Conv2d(refine_channels, 9 * STRIDE * STRIDE, 1)
        nn.init.zeros_(self.refine_flow.weight)
        nn.init.zeros_(self.refine_flow.bias)

    def _propagate(self, tokens: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Flow ``(B, N, 2)`` averaged over pixels of similar features (self-attention, values = flow)."""
        query, key = self.propagation_query(tokens), self.propagation_key(tokens)
        weights = (query @ key.transpose(1, 2) / math.sqrt(tokens.shape[-1])).softmax(dim=-1)
        return weights @ flow

    def _refine_and_upsample(self, features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Coarse flow ``(B, 2, h, w)`` -> refined full-resolution flow ``(B, 2, 8h, 8w)`` (convex upsampling)."""
        hidden = self.refine(torch.cat([features, flow], dim=1))
        return convex_upsample(flow + self.refine_flow(hidden), self.upsample_mask(hidden), STRIDE)

    def forward(self, image0: torch.Tensor, image1: torch.Tensor, max_tokens: int | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """See the class docstring; ``max_tokens``: the most positions matched at 1/8 (None: all)."""
        height, width = image0.shape[-2:]
        scale = 1.0 if max_tokens is None else min(1.0, math.sqrt(max_tokens * STRIDE * STRIDE / (height * width)))
        pair = (image0, image1)
        if scale < 1.0:
            size = (max(STRIDE, round(height * scale)), max(STRIDE, round(width * scale)))
            pair = tuple(F.interpolate(x, size=size, mode="area") for x in pair)
        small_height, small_width = pair[0].shape[-2:]
        coarse, fine = self._match(*(_pad_to_stride(x, STRIDE) for x in pair))
        fine = tuple(flow[..., :small_height, :small_width] for flow in fine)
        if scale < 1.0:
            fine = tuple(resize_flow(flow, (height, width)) for flow in fine)
        outputs = [coarse, fine]
        if self.local is not None:
            padded = [_pad_to_stride(x, LOCAL_STRIDE) for x in (image0, image1, *fine)]
            outputs += [tuple(flow[..., :height, :width] for flow in refined)
                        for refined in self.local(padded[0], padded[1], (padded[2], padded[3]))]
        return outputs

    def _match(self, image0: torch.Tensor, image1: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Steps 1 to 5 on a pair whose sides are multiples of 8: ``[coarse pair, full-resolution pair]``."""
        batch = image0.shape[0]
        features = self.encoder(torch.cat([image0, image1]))
        channels, height, width = features.shape[1:]
        tokens = features.flatten(2).transpose(1, 2) + sine_positions(channels, height, width, features.device)
        tokens0, tokens1 = tokens[:batch], tokens[batch:]
        for layer in self.transformer:
            tokens0, tokens1 = layer(tokens0, tokens1), layer(tokens1, tokens0)
        matched = global_matching(tokens0, tokens1, height, width)
        coarse, fine = [], []
        for own, flow in zip((tokens0, tokens1), matched):
            flow = self._propagate(own, flow).transpose(1, 2).reshape(batch, 2, height, width)
            coarse.append(flow)
            grid_features = own.transpose(1, 2).reshape(batch, channels, height, width)
            fine.append(self._refine_and_upsample(grid_features, flow))
        return [tuple(coarse), tuple(fine)]


def _pad_to_stride(image: torch.Tensor, stride: int) -> torch.Tensor:
    """``image`` ``(B, C, H, W)`` edge-padded at the bottom and right to multiples of ``stride``."""
    height, width = image.shape[-2:]
    return F.pad(image, (0, -width % stride, 0, -height % stride), mode="replicate")


def round_trip_error(flow_01: torch.Tensor, flow_10: torch.Tensor) -> torch.Tensor:
    """``|flow_01(p) + flow_10(p + flow_01(p))|`` in pixels, ``(B, 1, H, W)``: how far a pixel of image 0
    lands from where it started after going to image 1 and back (0 for a consistent pair)."""
    return round_trip(flow_01, flow_10)[0].norm(dim=1, keepdim=True)


def warp_cost(image0: torch.Tensor, image1: torch.Tensor, flow: torch.Tensor, window: int) -> torch.Tensor:
    """How badly ``flow`` ``(B, 2, H, W)`` (image 0 -> 1) warps ``image1`` onto ``image0`` (both
    ``(B, 3, H, W)``): the mean absolute colour difference over a ``window`` x ``window`` box, ``(B, 1, H, W)``."""
    difference = (backward_warp(image1, flow) - image0).abs().mean(1, keepdim=True)
    return F.avg_pool2d(difference, window, 1, window // 2, count_include_pad=False)


#: Forward-backward tolerance (:func:`inbetween.warp.occlusion_mask`'s ``alpha``, ``beta``) under which
#: :func:`fuse_flows` with ``keep_occluded`` takes a fused pixel to be seen in the other image; picked on
#: held-back pairs (the flow model card).
FUSE_OCCLUSION_TEST = (0.05, 2.0)


def fuse_flows(image0: torch.Tensor, image1: torch.Tensor, base: tuple[torch.Tensor, torch.Tensor],
               refined: tuple[torch.Tensor, torch.Tensor], window: int, threshold: float | None = None,
               keep_occluded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel and direction, ``refined``'s flow where it warps the other image better
    (:func:`warp_cost` over ``window``), else ``base``'s. With a ``threshold`` (pixels), not where
    ``refined``'s round trip (:func:`round_trip_error`) is both over it and longer than ``base``'s. With
    ``keep_occluded``, ``base``'s flow wherever the fused pair fails the :data:`FUSE_OCCLUSION_TEST`.

    ``image0``, ``image1``: ``(B, 3, H, W)``; ``base``, ``refined``: ``(flow_01, flow_10)``, each
    ``(B, 2, H, W)``; returns the fused pair. Warping better picks the precise flow on texture and
    edges. On a flat region a wrong match warps as well as the right one, but the two directions
    rarely agree on it, which the round trip catches. A pixel hidden in the other image is warped right
    by no flow, and the one that warps it better is a wrong match: ``keep_occluded`` gives such pixels
    (and any other the fused pair cannot follow there and back) ``base``'s flow, the motion.
    """
    fused = []
    for first, second, (flow, back), (better, better_back) in ((image0, image1, base, refined),
                                                               (image1, image0, base[::-1], refined[::-1])):
        take = warp_cost(first, second, better, window) < warp_cost(first, second, flow, window)
        if threshold is not None:
            refined_error = round_trip_error(better, better_back)
            take &= (refined_error < threshold) | (refined_error <= round_trip_error(flow, back))
        fused.append(torch.where(take, better, flow))
    if keep_occluded:
        seen = [occlusion_mask(there, back, *FUSE_OCCLUSION_TEST) > 0.5 for there, back in (fused, fused[::-1])]
        fused = [torch.where(visible, flow, motion) for visible, flow, motion in zip(seen, fused, base)]
    return fused[0], fused[1]


REFINEMENTS = ("none", "dis", "fuse")


#: :class:`LearnedFlow`'s default ``max_tokens``: the grid the shipped model last trained its global matching on.
MAX_TOKENS = 576


class LearnedFlow(FlowEstimator):
    """Flow from a trained :class:`MatchingFlowNet` model folder (``inbetween train stage=flow`` writes
    ``OUT/model``; the shipped one is ``checkpoints/flow``).

    * ``max_tokens``: the most positions matched at 1/8 resolution; larger images are matched on a
      downsampled copy (memory of the correlation grows with its square).
    * ``refine``: what follows the network at full resolution. ``none``: its flow as it is; ``dis``: DIS
      (:meth:`flow.DISFlow.refine`) started from it, which sharpens edges and small motion of real
      texture but may trade a right match on a flat region for a wrong one; ``fuse``: per pixel, DIS's
      flow where it warps the other frame better over a ``fuse_window`` box (:func:`fuse_flows`).
    * ``fuse_threshold`` (pixels, or None): ``fuse`` also keeps the network's flow where DIS's two
      directions disagree by more than this and more than the network's. It cuts the end-point error
      (most on flat regions) but warps real footage worse, so it is off by default (see the README).
    * ``fuse_keep_occluded``: ``fuse`` gives the network's flow back to every pixel the fused pair cannot
      follow to the other image and back (:func:`fuse_flows`): mostly pixels hidden there, where the
      flow that warps better is a wrong match. The flow is then the motion (a fraction of the end-point
      error), but flow warping of flat shapes renders worse along it (the flow model card).
    """

    name = "learned"

    def __init__(self, checkpoint: str | None = None, max_tokens: int = MAX_TOKENS, refine: str = "fuse",
                 fuse_window: int = 5, fuse_threshold: float | None = None, fuse_keep_occluded: bool = False,
                 device: str = "cpu") -> None:
        if max_tokens < 16:
            raise InbetweenError(f"max_tokens must be 16 or more, got {max_tokens}.")
        if refine not in REFINEMENTS:
            raise InbetweenError(f"unknown refine {refine!r}; choose one of {list(REFINEMENTS)}.")
        if fuse_window < 1 or fuse_window % 2 == 0:
            raise InbetweenError(f"fuse_window must be an odd number of pixels, got {fuse_window}.")
        if fuse_threshold is not None and not fuse_threshold > 0:
            raise InbetweenError(f"fuse_threshold is a distance in pixels and must be > 0, got {fuse_threshold}.")
        self.device = torch.device(device)
        self.network = load_network(checkpoint or shipped("flow"), self.device)
        self.max_tokens, self.refine = max_tokens, refine
        self.fuse_window, self.fuse_threshold, self.fuse_keep_occluded = fuse_window, fuse_threshold, fuse_keep_occluded
        self.dis = DISFlow()

    @torch.no_grad()
    def bidirectional(self, image0: torch.Tensor, image1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image0.shape != image1.shape:
            raise InbetweenError(f"flow needs two images of the same size; got {tuple(image0.shape)} and "
                                 f"{tuple(image1.shape)}")
        flows = [flow.to(image0.device) for flow in self._network_flows(image0, image1)]
        if self.refine == "none":
            return flows[0], flows[1]
        pairs = ((image0, image1), (image1, image0))
        refined = [self.dis.refine(first, second, flow) for (first, second), flow in zip(pairs, flows)]
        if self.refine == "dis":
            return refined[0], refined[1]
        return fuse_flows(image0, image1, (flows[0], flows[1]), (refined[0], refined[1]), self.fuse_window,
                          self.fuse_threshold, self.fuse_keep_occluded)

    def _network_flows(self, image0: torch.Tensor, image1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's two flows at the images' size, matched at most ``max_tokens`` positions."""
        pair = [x.to(self.device, torch.float32) for x in (image0, image1)]
        return self.network(*pair, self.max_tokens)[-1]

    def __call__(self, image0: torch.Tensor, image1: torch.Tensor) -> torch.Tensor:
        return self.bidirectional(image0, image1)[0]


def network_options(folder: str | Path) -> dict[str, Any]:
    """The :class:`MatchingFlowNet` options of a model folder (its ``config.json``'s ``network``)."""
    config = read_config(folder, [NETWORK], "a flow model folder", "train one with `inbetween train stage=flow` "
                         "or use the shipped checkpoints/flow")
    return config["network"]


def load_network(folder: str | Path, device: torch.device) -> MatchingFlowNet:
    """The trained network of a model folder, in eval mode on ``device``."""
    network = load_weights(MatchingFlowNet(**network_options(folder)), folder, NETWORK)
    return network.to(device).eval().requires_grad_(False)


def save_network(network: MatchingFlowNet, options: dict[str, Any], folder: str | Path) -> None:
    """Write a model folder: ``config.json`` (``{"network": options}``) and the weights."""
    save_folder(folder, {"network": options}, {NETWORK: network})
