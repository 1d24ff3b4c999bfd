"""Geometric warping ops shared by the flow and interpolation stages.

All functions are plain differentiable torch code: they run on any device, for any batch
size and image size, and gradients reach both the warped values and the flow.

Conventions (see :mod:`inbetween`): flow is ``(B, 2, H, W)`` with channels ``(dx, dy)`` in
pixels, pixel ``(x, y)`` is the centre of column ``x`` and row ``y``, and ``flow_0to1``
says where a pixel of frame 0 lands in frame 1.

* :func:`backward_warp` samples: ``out(p) = image(p + flow(p))``.
* :func:`forward_splat` pushes: every source pixel ``p`` is spread bilinearly onto the
  four pixels around ``p + flow(p)`` and the sums are normalised.
* :func:`round_trip`, :func:`occlusion_mask` / :func:`visibility` test forward-backward consistency.
* :func:`flows_at_time` / :func:`time_flows` give the flows from an intermediate frame at
  time ``t`` back to frames 0 and 1, built by splatting (see :func:`time_flows`); their paths
  are straight unless :class:`ArcPath` (or :func:`polynomial_path`) bends them through the
  shot's other keyframes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch

PADDING_MODES = ("border", "zeros")

#: Splat coverage at or below this counts as "nothing landed here".
_EMPTY = 1e-6


def _pixel_grid(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(x, y)``, each ``(1, H, W)``, matching ``flow``'s dtype and device."""
    _, _, height, width = flow.shape
    ys = torch.arange(height, dtype=flow.dtype, device=flow.device)
    xs = torch.arange(width, dtype=flow.dtype, device=flow.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return grid_x.unsqueeze(0), grid_y.unsqueeze(0)


def _displaced(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``p + flow(p)`` as ``(x, y)``, each ``(B, H, W)``."""
    grid_x, grid_y = _pixel_grid(flow)
    return grid_x + flow[:, 0], grid_y + flow[:, 1]


def _bilinear_corners(x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The four integer neighbours of real positions ``(x, y)`` (each ``(B, H', W')``).

    Returns ``(index, weight)``, both ``(B, 4 * H' * W')`` (the four corners one after
    another): ``index`` is the flat pixel index ``row * width + col`` (clamped into the
    image) and ``weight`` the bilinear weight, zero for a corner outside the
    ``height x width`` image. At integer positions the weights are exactly ``1, 0, 0, 0``.
    """
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    cols = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=1)
    rows = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=1)
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
    inside = (cols >= 0) & (cols <= width - 1) & (rows >= 0) & (rows <= height - 1)
    index = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)
    return index.long().flatten(1), (weights * inside).flatten(1)


def backward_warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample ``image`` at ``p + flow(p)`` with bilinear interpolation.

    Args:
        image: ``(B, C, H, W)`` values to sample.
        flow: ``(B, 2, H, W)`` displacement ``(dx, dy)`` in pixels from each output pixel
            to where it reads ``image``. Zero flow returns ``image`` exactly; an integer
            flow moves pixels exactly.
        padding_mode: ``"border"`` repeats the edge pixels for samples outside the image,
            ``"zeros"`` reads zeros there.

    Returns:
        ``(B, C, H, W)`` warped image, ``out(p) = image(p + flow(p))``.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    batch, channels, height, width = image.shape
    x, y = _displaced(flow.to(image.dtype))
    if padding_mode == "border":
        x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    index, weight = _bilinear_corners(x, y, height, width)
    gathered = image.flatten(2).gather(2, index.unsqueeze(1).expand(batch, channels, -1))
    return (gathered * weight.unsqueeze(1)).view(batch, channels, 4, height, width).sum(2)


def forward_splat(
    values: torch.Tensor, flow: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splat every source pixel's ``values`` forward to ``p + flow(p)`` (average splatting).

    Each source pixel is spread onto the four pixels around its target with bilinear
    weights times its own weight; each target pixel gets the weighted mean of what
    landed on it. Passing ``weights = exp(z)`` gives softmax splatting (Niklaus & Liu,
    2020), where a larger ``z`` (e.g. "closer to the camera") wins where sources collide.

    Args:
        values: ``(B, C, H, W)`` per-pixel values to move.
        flow: ``(B, 2, H, W)`` where each source pixel goes, in pixels.
        weights: optional ``(B, 1, H, W)`` non-negative per-source weights (default 1).

    Returns:
        ``(splatted, coverage)``: ``splatted`` ``(B, C, H, W)`` is the weighted mean at
        each target (zero where nothing landed) and ``coverage`` ``(B, 1, H, W)`` the total
        weight that landed there (0 for holes, about 1 for a one-to-one move with unit
        weights). Sources landing outside the image are dropped.
    """
    batch, channels, height, width = values.shape
    if weights is None:
        weights = torch.ones_like(values[:, :1])
    weights = weights.to(values.dtype)
    x, y = _displaced(flow.to(values.dtype))
    source = torch.cat([values * weights, weights], dim=1).flatten(2)
    sums = torch.zeros_like(source)
    # One scatter per corner: faster on CPU than a single scatter of all four.
    for index, weight in zip(*(part.chunk(4, dim=1) for part in _bilinear_corners(x, y, height, width))):
        sums = sums.scatter_add(2, index.unsqueeze(1).expand(batch, channels + 1, -1), source * weight.unsqueeze(1))
    sums = sums.view(batch, channels + 1, height, width)
    numerator, coverage = sums[:, :channels], sums[:, channels:]
    landed = coverage > _EMPTY
    splatted = numerator / coverage.clamp_min(_EMPTY) * landed
    return splatted, coverage


def round_trip(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a pixel lands after going along ``flow_fw`` and back along ``flow_bw`` (each ``(B, 2, H, W)``).

    Returns ``(residual, flow_bw_at_target)``, each ``(B, 2, H, W)``: ``F(p) + F'(p + F(p))`` with
    ``F' = flow_bw`` sampled at ``p + F(p)`` (zero for a consistent pair), and that sample ``F'``.
    """
    flow_bw_at_target = backward_warp(flow_bw, flow_fw)
    return flow_fw + flow_bw_at_target, flow_bw_at_target


def _consistency_ratio(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-backward error over its tolerance, and whether ``p + flow_fw(p)`` is in the image.

    Returns ``(ratio, inside)``, each ``(B, 1, H, W)``: ``ratio`` is
    ``|F + F'|^2 / (alpha (|F|^2 + |F'|^2) + beta)`` with ``F' = flow_bw`` sampled at
    ``p + F(p)`` (:func:`round_trip`; Sundaram et al. 2010, as used by UnFlow); below 1 means consistent.
    """
    _, _, height, width = flow_fw.shape
    residual, flow_bw_at_target = round_trip(flow_fw, flow_bw)
    error = residual.square().sum(1, keepdim=True)
    tolerance = alpha * (flow_fw.square().sum(1, keepdim=True) + flow_bw_at_target.square().sum(1, keepdim=True)) + beta
    x, y = _displaced(flow_fw)
    inside = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).unsqueeze(1)
    return error / tolerance, inside


def occlusion_mask(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01, beta: float = 0.5
) -> torch.Tensor:
    """Visibility of frame-0 pixels in frame 1 by forward-backward consistency.

    Args:
        flow_fw: ``(B, 2, H, W)`` flow from frame 0 to frame 1.
        flow_bw: ``(B, 2, H, W)`` flow from frame 1 to frame 0.
        alpha, beta: tolerance ``alpha (|F01|^2 + |F10(p + F01)|^2) + beta`` on the squared
            round-trip error ``|F01 + F10(p + F01)|^2``.

    Returns:
        ``(B, 1, H, W)`` float mask: 1 where the pixel of frame 0 is visible in frame 1
        (round trip within tolerance and landing inside the image), 0 where it is
        occluded or leaves the frame. Not differentiable; see :func:`visibility`.
    """
    ratio, inside = _consistency_ratio(flow_fw, flow_bw, alpha, beta)
    return ((ratio < 1) & inside).to(flow_fw.dtype)


def visibility(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01, beta: float = 0.5) -> torch.Tensor:
    """Soft, differentiable :func:`occlusion_mask`: ``exp(-ratio)`` in ``[0, 1]``, ``(B, 1, H, W)``.

    ``ratio`` is the round-trip error over its tolerance, so a perfectly consistent pixel
    scores 1, one at the hard threshold ``exp(-1)``, and pixels leaving the image 0.
    """
    ratio, inside = _consistency_ratio(flow_fw, flow_bw, alpha, beta)
    return torch.exp(-ratio) * inside


@dataclass
class TimeFlows:
    """Flows and visibilities of an intermediate frame at time ``t``, all ``(B, ., H, W)``.

    ``flow_t0``/``flow_t1`` (2 channels) point from each pixel of the intermediate frame
    to where it is in frame 0 / frame 1, ready for :func:`backward_warp`.
    ``visible_0``/``visible_1`` (1 channel, in ``[0, 1]``) say whether that pixel can be
    seen in frame 0 / frame 1 (0 where it is occluded there).
    """

    flow_t0: torch.Tensor
    flow_t1: torch.Tensor
    visible_0: torch.Tensor
    visible_1: torch.Tensor


def linear_time_flows(flow_0to1: torch.Tensor, flow_1to0: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Super SloMo's approximation (Jiang et al. 2018) of the flows from time ``t``.

    ``F_t0 = -(1 - t) t F01 + t^2 F10`` and ``F_t1 = (1 - t)^2 F01 - t (1 - t) F10``,
    evaluated at the same pixel: exact for constant linear motion, blurry at motion
    boundaries. Returns ``(flow_t0, flow_t1)``, each ``(B, 2, H, W)``.
    """
    flow_t0 = -(1 - t) * t * flow_0to1 + t * t * flow_1to0
    flow_t1 = (1 - t) * (1 - t) * flow_0to1 - t * (1 - t) * flow_1to0
    return flow_t0, flow_t1


def polynomial_path(positions: Mapping[int, torch.Tensor], s: float | torch.Tensor) -> torch.Tensor:
    """A keyframe's pixels moved to time ``s`` along the polynomial through where they are at other
    keyframes of the shot (Lagrange interpolation; quadratic from three keyframes, cubic from four, as
    in quadratic video interpolation, Xu et al. 2019).

    ``positions[j]`` ``(B, 2, H, W)``: each pixel's displacement from this keyframe to the keyframe
    ``j`` gaps away (``j != 0``; keyframes evenly spaced); at ``j = 0`` it is zero. ``s`` is in gaps
    too (``0 < s < 1`` towards keyframe 1, ``-1 < s < 0`` towards keyframe -1). With one entry it is
    the straight path ``s positions[j] / j``. Returns the displacement at ``s``, ``(B, 2, H, W)``.
    """
    nodes = list(positions)
    path = torch.zeros_like(positions[nodes[0]])
    for node in nodes:
        weight = s / node
        for other in nodes:
            if other != node:
                weight = weight * (s - other) / (node - other)
        path = path + weight * positions[node]
    return path


#: :class:`ArcPath` trusts a circle through a pixel's positions from this total turn (radians) on, ramping
#: up from the first value; below it the points are all but on a line and the polynomial is used.
ARC_SWEEP_RAMP = (0.01, 0.05)
#: ... and distrusts it as one step between keyframes turns past these (radians): a pixel that turns
#: by more than a right angle per gap is following noisy flow, not an arc.
ARC_TURN_RAMP = (math.pi / 2, 3 * math.pi / 4)


def _ramp(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    return ((value - low) / (high - low)).clamp(0, 1)


def _fit_circle(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares circle through points ``(x, y)``, each ``(N, ...)`` with ``N >= 3`` and the
    points' mean at 0 (Kasa's algebraic fit: ``x^2 + y^2 = 2 a x + 2 b y + c``; through any three
    points not on a line it is their circumcircle).

    Returns the centre ``(a, b)``, each ``(...)``, and ``fitted`` ``(...)`` bool: False where the
    points are (nearly) on a line, and the centre there is 0.
    """
    squared = x * x + y * y
    sxx, syy, sxy = (x * x).sum(0), (y * y).sum(0), (x * y).sum(0)
    sxz, syz = (x * squared).sum(0), (y * squared).sum(0)
    determinant = sxx * syy - sxy * sxy
    fitted = determinant > 1e-6 * (sxx + syy).square()
    divisor = 2 * torch.where(fitted, determinant, torch.ones_like(determinant))
    zero = torch.zeros_like(determinant)
    centre_x = torch.where(fitted, (sxz * syy - syz * sxy) / divisor, zero)
    centre_y = torch.where(fitted, (syz * sxx - sxz * sxy) / divisor, zero)
    return centre_x, centre_y, fitted


def _unwrapped(angles: torch.Tensor, origin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``angles`` ``(N, ...)`` of points in path order, unwrapped outwards from index ``origin``
    (each step between neighbours taken in ``[-pi, pi)``) and made relative to it; also the largest
    absolute step, ``(...)``."""
    unwrapped = [torch.zeros_like(angles[0])] * len(angles)
    steps = []
    for index in [*range(origin + 1, len(angles)), *range(origin - 1, -1, -1)]:
        nearer = index - 1 if index > origin else index + 1
        step = torch.remainder(angles[index] - angles[nearer] + math.pi, 2 * math.pi) - math.pi
        unwrapped[index] = unwrapped[nearer] + step
        steps.append(step.abs())
    return torch.stack(unwrapped), torch.stack(steps).amax(0)


class ArcPath:
    """A keyframe's pixels moved along the circle through where they are at other keyframes of the
    shot: arcs (and so rotation) are followed exactly, where a polynomial in ``x`` and ``y`` cuts their
    corners. Fitted once (``ArcPath(positions)``), evaluated at any time (:meth:`at`).

    ``positions`` as in :func:`polynomial_path`. Each pixel's positions (with 0 at keyframe 0) get a
    least-squares circle (:func:`_fit_circle`); its angle and its distance from the centre are each
    interpolated over the keyframes by :func:`polynomial_path`, so speed may change along the arc
    (eases) and the radius may drift (spirals). Where the positions are all but on a line
    (:data:`ARC_SWEEP_RAMP`), where a step turns too far to be motion (:data:`ARC_TURN_RAMP`), or where
    there are fewer than three positions, the path is :func:`polynomial_path`'s, with a smooth
    hand-over between.
    """

    def __init__(self, positions: Mapping[int, torch.Tensor]) -> None:
        self.positions = dict(positions)
        self.trust = None
        if len(positions) < 2:
            return
        nodes = sorted({0, *positions})
        origin = nodes.index(0)
        at_origin = torch.zeros_like(next(iter(positions.values())))
        points = torch.stack([positions[node] if node else at_origin for node in nodes])  # (N, B, 2, H, W)
        self.mean = points.mean(0)
        x, y = (points - self.mean).split(1, dim=2)  # each (N, B, 1, H, W)
        self.centre_x, self.centre_y, fitted = _fit_circle(x, y)
        raw_angles = torch.atan2(y - self.centre_y, x - self.centre_x)
        angles, turn = _unwrapped(raw_angles, origin)
        radii = torch.hypot(x - self.centre_x, y - self.centre_y)
        self.angle, self.radius = raw_angles[origin], radii[origin]
        self.angle_steps = {node: angles[index] for index, node in enumerate(nodes) if node}
        self.radius_steps = {node: radii[index] - radii[origin] for index, node in enumerate(nodes) if node}
        sweep = angles.amax(0) - angles.amin(0)
        self.trust = fitted * _ramp(sweep, *ARC_SWEEP_RAMP) * (1 - _ramp(turn, *ARC_TURN_RAMP))

    def at(self, s: float | torch.Tensor) -> torch.Tensor:
        """The displacement at time ``s`` (in gaps, as in :func:`polynomial_path`), ``(B, 2, H, W)``."""
        polynomial = polynomial_path(self.positions, s)
        if self.trust is None:
            return polynomial
        angle = self.angle + polynomial_path(self.angle_steps, s)
        radius = self.radius + polynomial_path(self.radius_steps, s)
        arc = torch.cat([self.centre_x + radius * torch.cos(angle), self.centre_y + radius * torch.sin(angle)], 1)
        return self.trust * (arc + self.mean) + (1 - self.trust) * polynomial  # the arc is finite where not fitted


#: :func:`time_flows`' weight of a consistent source grows as ``(1 + |F|)`` to this power (``|F|`` its
#: flow across the gap in pixels), so that of two consistent surfaces landing on the same pixel the
#: one that moves further is taken to be in front. Picked on held-back world clips (seeds from
#: 500000) and the training videos with every other frame dropped (``benchmarks/motion_priority.py``).
MOTION_PRIORITY = 2.0


def time_flows(
    flow_0to1: torch.Tensor,
    flow_1to0: torch.Tensor,
    t: float,
    alpha: float = 0.01,
    beta: float = 0.5,
    min_weight: float = 0.05,
    fill_weight: float = 1e-4,
    paths: tuple[torch.Tensor, torch.Tensor] | None = None,
    motion_priority: float = MOTION_PRIORITY,
) -> TimeFlows:
    """Flows from the frame at time ``t`` to frames 0 and 1, with occlusion reasoning.

    Method (assumes linear motion between the two frames unless ``paths`` says otherwise):

    1. A pixel ``p0`` of frame 0 sits at ``p0 + D0(p0)`` at time ``t``, with ``D0 = t F01``
       on a straight path; from there it is ``-D0(p0)`` back to frame 0 and
       ``F01(p0) - D0(p0)`` on to frame 1. Splat both vectors forward from frame 0. Likewise
       from ``p1 + D1(p1)`` in frame 1, ``D1 = (1 - t) F10``.
    2. Weight each source pixel by ``(1 - t)`` resp. ``t`` (the nearer frame's flow moves
       it less, so its error matters less) times its forward-backward consistency
       :func:`visibility` ``v``, floored at ``min_weight``:
       ``min_weight + (1 - min_weight) v (1 + |F|)^motion_priority``, ``|F|`` the source's
       flow across the gap in pixels. Where several sources land on the same pixel
       (something is being covered at time ``t``) the consistent ones win: those are the
       surfaces seen in both frames, the ones in front. Where consistent sources collide,
       the one that moves further wins: a surface can be seen in both keyframes and still
       be passed over in between (a shape crossing a still background further than its
       own size), and the one that moves more is usually the one in front (an animated
       object over a still background; motion parallax under a moving camera). This is
       softmax splatting with consistency and motion as the importance metric.
    3. The same splat carries visibility: a frame-0 pixel is visible in frame 0 and, as
       far as the consistency check says, in frame 1; a frame-1 pixel likewise.
    4. Holes where nothing landed fall back smoothly (a pseudo-source of weight
       ``fill_weight`` at every pixel) to :func:`linear_time_flows`, seen in both frames.

    Constant translation gives exactly ``-t d`` and ``(1 - t) d`` away from the borders.

    Args:
        flow_0to1, flow_1to0: ``(B, 2, H, W)`` bidirectional flow in pixels.
        t: time in ``[0, 1]`` of the intermediate frame.
        alpha, beta: consistency tolerance, as in :func:`occlusion_mask`.
        min_weight: weight floor for inconsistent sources, in ``(0, 1]``; keeps them as
            the answer where nothing consistent lands.
        fill_weight: weight of the hole filler relative to a unit source.
        paths: ``(D0, D1)``, each ``(B, 2, H, W)``: how far the pixels of frame 0 and of frame 1
            have moved by time ``t`` (e.g. :class:`ArcPath`, for curved or eased motion);
            None: the straight paths ``t F01`` and ``(1 - t) F10``.
        motion_priority: how strongly the consistent source that moves further wins a
            collision (0: not at all; see :data:`MOTION_PRIORITY`).
    """
    moved_0, moved_1 = paths if paths is not None else (t * flow_0to1, (1 - t) * flow_1to0)
    visible_01 = visibility(flow_0to1, flow_1to0, alpha, beta)
    visible_10 = visibility(flow_1to0, flow_0to1, alpha, beta)
    ones = torch.ones_like(visible_01)

    def importance(visible: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        priority = (1 + flow.norm(dim=1, keepdim=True)) ** motion_priority
        return min_weight + (1 - min_weight) * visible * priority

    splats = (
        forward_splat(
            torch.cat([-moved_0, flow_0to1 - moved_0, ones, visible_01], dim=1),
            moved_0,
            (1 - t) * importance(visible_01, flow_0to1),
        ),
        forward_splat(
            torch.cat([flow_1to0 - moved_1, -moved_1, visible_10, ones], dim=1),
            moved_1,
            t * importance(visible_10, flow_1to0),
        ),
    )
    fill = torch.cat([*linear_time_flows(flow_0to1, flow_1to0, t), ones, ones], dim=1)
    numerator = fill * fill_weight + sum(splatted * coverage for splatted, coverage in splats)
    denominator = fill_weight + sum(coverage for _, coverage in splats)
    combined = numerator / denominator
    return TimeFlows(combined[:, 0:2], combined[:, 2:4], combined[:, 4:5], combined[:, 5:6])


def flows_at_time(flow_0to1: torch.Tensor, flow_1to0: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flow_t0, flow_t1)``, each ``(B, 2, H, W)``: from the frame at time ``t`` to frames 0 and 1.

    See :func:`time_flows` for the method (bidirectional consistency-weighted forward
    splatting with a linear-motion hole filler).
    """
    flows = time_flows(flow_0to1, flow_1to0, t)
    return flows.flow_t0, flows.flow_t1
