"""Classical interpolators: cross-fade, flow warping, and ffmpeg's minterpolate."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Iterator, Sequence

import imageio_ffmpeg
import numpy as np
import torch

from flow.base import FlowEstimator
from flow.opencv import DISFlow
from inbetween.errors import InbetweenError
from inbetween.video import from_uint8, to_uint8
from inbetween.warp import MOTION_PRIORITY, ArcPath, TimeFlows, backward_warp, occlusion_mask, time_flows
from interpolate.base import Interpolator, Neighbour, Neighbours

#: minterpolate refuses frames smaller than this in either dimension.
_MINTERPOLATE_MIN_SIZE = 16


def check_times(times: Sequence[float]) -> list[float]:
    """Return ``times`` as floats, or raise :class:`InbetweenError` if one is outside ``[0, 1]``."""
    times = [float(t) for t in times]
    outside = [t for t in times if not 0.0 <= t <= 1.0]
    if outside:
        raise InbetweenError(f"interpolation times must lie in [0, 1]; got {outside}")
    return times


def visibility_blend(warped_left: torch.Tensor, warped_right: torch.Tensor, visible_left: torch.Tensor | float,
                     visible_right: torch.Tensor | float, t: float | torch.Tensor, floor: float) -> torch.Tensor:
    """Super SloMo's visibility-weighted fusion of both keyframes warped to time ``t``.

    ``(w0 * warped_left + w1 * warped_right) / (w0 + w1)`` with ``w0 = (1 - t)(visible_left + floor)``
    and ``w1 = t (visible_right + floor)``: a pixel is taken mostly from the keyframe that shows it.
    Warped frames ``(B, 3, H, W)`` (or ``(3, H, W)``); visibilities in ``[0, 1]``, ``(B, 1, H, W)``
    or a number (1 everywhere gives the plain ``(1 - t, t)`` mix); ``t`` a number or broadcastable.
    """
    weight_left = (1 - t) * (visible_left + floor)
    weight_right = t * (visible_right + floor)
    return (weight_left * warped_left + weight_right * warped_right) / (weight_left + weight_right)


def _stack_times(frames: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Stack ``T`` frames ``(B, 3, H, W)`` into ``(B, T, 3, H, W)`` (``T`` may be 0)."""
    if not frames:
        return like.new_zeros((like.shape[0], 0, *like.shape[1:]))
    return torch.stack(frames, dim=1)


class LinearInterpolator(Interpolator):
    """Cross-fade: ``(1 - t) * left + t * right``. Uses no flow."""

    name = "linear"
    needs_flow = False
    times_per_call = 1

    def __call__(self, left, right, flow_lr, flow_rl, times):
        frames = [(1 - t) * left + t * right for t in check_times(times)]
        return _stack_times(frames, left)


@dataclass
class WarpedToTime:
    """The keyframes moved to time ``t``: ``left`` / ``right`` ``(B, 3, H, W)`` backward-warped along
    ``flows`` (:class:`inbetween.warp.TimeFlows`), and ``blend`` ``(B, 3, H, W)``, flow_warp's frame."""

    left: torch.Tensor
    right: torch.Tensor
    flows: TimeFlows
    blend: torch.Tensor


#: Forward-backward tolerance (:func:`inbetween.warp.occlusion_mask`'s ``alpha``, ``beta``) under which a
#: pixel's flow to a keyframe beyond the gap is trusted to bend its path; looser than the occlusion
#: test of the gap itself, picked on held-back world shots (seeds from 500000).
NEIGHBOUR_TRUST = (0.05, 2.0)

#: A path bent through the keyframes beyond a gap departs from the straight one by at most this share of
#: the pixel's flow across the gap: the curve and the timing that keyframes imply bend a path a little
#: (arcs and eases of Shapes World shots keep almost all their gain), while a pixel that hardly moves
#: in the gap is not sent on a detour by noisy flows to the neighbours, nor is a shaking camera's
#: path bent far. Picked on held-back world shots and the training clips as shots (the README).
NEIGHBOUR_BEND_SHARE = 0.1


class NeighbourPaths:
    """How far the pixels of a gap's left and right keyframe have moved by any time ``t``, bent through
    the shot's keyframes beyond the gap; fitted once per gap, evaluated per time by :meth:`at`.

    Each keyframe's pixels are followed to each keyframe beyond the gap, ``k - 1`` and ``k + 2``, that
    exists (the far neighbour through the gap's flow, then on along the neighbour's flow sampled where
    they landed); each such neighbour bends the straight path along the circle through the three
    positions (:class:`inbetween.warp.ArcPath`; the quadratic, as in quadratic video interpolation,
    where they lie on a line). In a middle gap the two bends count only as far as they agree
    (:func:`_agreed_bend`): a steady ease or arc bends both alike, while one uneven step (a stutter
    in capture) bends only one of them. A neighbour counts for a pixel only where the flows that
    follow it there pass their forward-backward test (:data:`NEIGHBOUR_TRUST`, widened by a pixel so
    that an object's outline bends with it): crossing objects hide each other from some keyframes,
    and a wrong flow there would bend a straight path; such a pixel is bent by the other neighbour
    alone. However it is bent, a path stays within :data:`NEIGHBOUR_BEND_SHARE` of the pixel's flow
    across the gap of the straight one.
    """

    def __init__(self, flow_lr: torch.Tensor, flow_rl: torch.Tensor, neighbours: Neighbours) -> None:
        self.flow_lr, self.flow_rl = flow_lr, flow_rl
        left_beyond, right_beyond = {}, {}
        if neighbours.before is not None:
            left_beyond[-1], right_beyond[-2] = _followed_to(neighbours.before, flow_rl, flow_lr)
        if neighbours.after is not None:
            right_beyond[1], left_beyond[2] = _followed_to(neighbours.after, flow_lr, flow_rl)
        self.left = _BentPath(1, flow_lr, left_beyond)
        self.right = _BentPath(-1, flow_rl, right_beyond)

    def at(self, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D0, D1)`` at time ``t`` (a float, or ``(B, 1, 1, 1)``), each ``(B, 2, H, W)``: the ``paths``
        of :func:`inbetween.warp.time_flows`."""
        return (_bend_capped(self.left.at(t), self.flow_lr, t),
                _bend_capped(self.right.at(t - 1), self.flow_rl, 1 - t))


class _BentPath:
    """One keyframe's pixels' path through the keyframes beyond the gap (see :class:`NeighbourPaths`).

    ``across``: where the gap's other keyframe is, in gaps (1 for the left keyframe, -1 for the right);
    ``flow`` ``(B, 2, H, W)``: the pixels' flow to it; ``beyond[j] = (position, trusted)``: their
    displacement ``(B, 2, H, W)`` to the keyframe ``j`` gaps away beyond the gap, and the trust in it
    ``(B, 1, H, W)`` in ``[0, 1]``.
    """

    def __init__(self, across: int, flow: torch.Tensor, beyond: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.across, self.flow = across, flow
        self.axes = _motion_axes(flow)
        self.sides = [(trusted, ArcPath({across: flow, node: position})) for node, (position, trusted) in beyond.items()]

    def at(self, s: float | torch.Tensor) -> torch.Tensor:
        """The displacement ``(B, 2, H, W)`` at time ``s``, in gaps from this keyframe (as
        :meth:`inbetween.warp.ArcPath.at`): the straight path plus each trusted neighbour's bend."""
        straight = (s / self.across) * self.flow
        bends = [(trusted, path.at(s) - straight) for trusted, path in self.sides]
        if len(bends) < 2:
            return straight + sum(trusted * bend for trusted, bend in bends)
        (trusted_a, bend_a), (trusted_b, bend_b) = bends
        return straight + (trusted_a * trusted_b * _agreed_bend(bend_a, bend_b, self.axes)
                           + trusted_a * (1 - trusted_b) * bend_a + (1 - trusted_a) * trusted_b * bend_b)


def _minmod(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smaller in size of ``a`` and ``b`` where they have the same sign, else 0 (elementwise)."""
    return torch.where(a * b > 0, torch.sign(a) * torch.minimum(a.abs(), b.abs()), torch.zeros_like(a))


def _motion_axes(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit vectors ``(B, 2, H, W)`` along a pixel's ``flow`` ``(B, 2, H, W)`` across the gap and
    across it (turned a quarter counter-clockwise)."""
    along = flow / flow.norm(dim=1, keepdim=True).clamp(min=1e-6)
    return along, torch.cat([-along[:, 1:], along[:, :1]], 1)


def _agreed_bend(bend_a: torch.Tensor, bend_b: torch.Tensor, axes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """What two bends of a path ``(B, 2, H, W)`` agree on: along the pixel's flow across the gap
    (its timing: ease in or out) and across it (its curve) separately (``axes``, from
    :func:`_motion_axes`), the smaller of the two where they bend the same way, none where they bend
    opposite ways (a minmod limiter, as slope limiters in numerical schemes: a change of speed or
    direction that only one side of the gap shows is not followed)."""
    def agreed(direction: torch.Tensor) -> torch.Tensor:
        return _minmod((bend_a * direction).sum(1, keepdim=True), (bend_b * direction).sum(1, keepdim=True)) * direction

    return sum(agreed(direction) for direction in axes)


def _bend_capped(bent: torch.Tensor, flow: torch.Tensor, way: float | torch.Tensor) -> torch.Tensor:
    """``bent`` ``(B, 2, H, W)``, a keyframe's pixels' displacement at some time, moved towards the
    straight path ``way * flow`` (``flow`` ``(B, 2, H, W)``: theirs across the gap; ``way`` in ``[0, 1]``:
    the share of the gap's time they have come, a float or ``(B, 1, 1, 1)``) where it is further from it
    than :data:`NEIGHBOUR_BEND_SHARE` of ``|flow|``; unchanged elsewhere."""
    straight = way * flow
    bend = bent - straight
    limit = NEIGHBOUR_BEND_SHARE * flow.norm(dim=1, keepdim=True)
    return straight + bend * (limit / bend.norm(dim=1, keepdim=True).clamp(min=1e-6)).clamp(max=1.0)


def bent_paths(flow_lr: torch.Tensor, flow_rl: torch.Tensor, neighbours: Neighbours | None) -> NeighbourPaths | None:
    """The gap's :class:`NeighbourPaths`; None where it has no keyframe beyond it (straight paths)."""
    if neighbours is None or (neighbours.before is None and neighbours.after is None):
        return None
    return NeighbourPaths(flow_lr, flow_rl, neighbours)


def _followed_to(neighbour: Neighbour, flow_across: torch.Tensor, flow_back: torch.Tensor
                 ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Where the pixels of the gap's two keyframes are at ``neighbour``, each as ``(position, trusted)``
    (``(B, 2, H, W)`` and ``(B, 1, H, W)``): first those of its nearer keyframe (along its flow), then
    those of the other one, followed across the gap (``flow_across``, from the other keyframe to the
    nearer; ``flow_back`` the other way) and on along the neighbour's flow sampled where they landed,
    trusted where both legs are."""
    trusted = _trusted(neighbour.flow_from_gap, neighbour.flow_to_gap)
    across = (flow_across + backward_warp(neighbour.flow_from_gap, flow_across),
              _trusted(flow_across, flow_back) * backward_warp(trusted, flow_across))
    return (neighbour.flow_from_gap, trusted), across


def _trusted(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)``, 1 where a pixel's flow passes the :data:`NEIGHBOUR_TRUST` round trip or a pixel
    next to it does, else 0."""
    return torch.nn.functional.max_pool2d(occlusion_mask(flow_fw, flow_bw, *NEIGHBOUR_TRUST), 3, 1, 1)


#: :func:`agreement_weight`'s box (pixels), temperature and margin (both in 8-bit levels), picked on the
#: training videos with every other frame dropped, the evaluation cameras' frames from 64 on and held-back
#: world clips 8 apart (the README, "The learned flow stage").
AGREEMENT_WINDOW = 31
AGREEMENT_TEMPERATURE = 8.0
AGREEMENT_MARGIN = 4.0


def _disagreement(warped_left: torch.Tensor, warped_right: torch.Tensor, window: int) -> torch.Tensor:
    """How far a rendering's two warped keyframes ``(N, 3, H, W)`` differ, in 8-bit levels: the mean
    absolute colour difference over a ``window`` box, ``(N, 1, H, W)``."""
    difference = (warped_left - warped_right).abs().mean(1, keepdim=True) * 127.5
    return torch.nn.functional.avg_pool2d(difference, window, 1, window // 2, count_include_pad=False)


def agreement_weight(first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor],
                     window: int = AGREEMENT_WINDOW, temperature: float = AGREEMENT_TEMPERATURE,
                     margin: float = AGREEMENT_MARGIN) -> torch.Tensor:
    """The weight ``(N, 1, H, W)`` of the first of two renderings of the same frame (along two flows), each
    given as its two warped keyframes ``(warped_left, warped_right)``, ``(N, 3, H, W)`` in ``[-1, 1]``:
    ``softmax(-d / temperature)`` over the two, ``d`` their :func:`_disagreement` over a ``window`` box,
    the second's raised by ``margin`` (so ties lean to the first). Where a flow is wrong its two warps
    disagree and the other rendering takes over; where both agree alike the two are mixed, which also
    evens out each flow's small errors."""
    scores = -torch.cat([_disagreement(*first, window), _disagreement(*second, window) + margin], 1) / temperature
    return torch.softmax(scores, 1)[:, :1]


def agreement_blend(first: WarpedToTime, second: WarpedToTime, **settings: float) -> torch.Tensor:
    """``first.blend`` and ``second.blend`` ``(B, 3, H, W)`` mixed per pixel by :func:`agreement_weight`
    (``settings``: its ``window``, ``temperature``, ``margin``)."""
    weight = agreement_weight((first.left, first.right), (second.left, second.right), **settings)
    return weight * first.blend + (1 - weight) * second.blend


class FlowWarpInterpolator(Interpolator):
    """Warps both keyframes to time ``t`` along the flow and blends them.

    The flows from time ``t`` come from :func:`inbetween.warp.time_flows`
    (consistency-weighted bidirectional splatting). Both keyframes are backward-warped
    to ``t`` and blended with weights ``(1 - t) (v0 + f)`` and ``t (v1 + f)`` (:func:`visibility_blend`), where
    ``v0`` / ``v1`` in ``[0, 1]`` say whether the intermediate pixel is visible in the
    left / right keyframe, so a region being covered or uncovered is taken mostly from
    the one frame that shows it (Super SloMo's visibility-weighted fusion), and ``f`` is
    ``visibility_floor``. Where neither frame is trusted the blend falls back to the
    plain ``(1 - t, t)`` mix.

    ``visibility_floor`` says how far to trust the visibility estimate: with exact flow
    a small floor is best (0.01: +8 dB over the plain mix around a moving square), but
    with real, noisy flow the occlusion test often fires on plain flow errors, where
    averaging both warps is safer. The default 0.3 caps the occlusion evidence at about
    4:1 and costs at most 0.1 dB against the plain mix on real footage while keeping
    most of the gain at true occlusions. ``occlusion_aware=False`` uses the plain mix
    everywhere.

    ``alpha`` and ``beta`` set the forward-backward consistency tolerance (see
    :func:`inbetween.warp.occlusion_mask`). ``motion_priority`` says how strongly, where two
    consistent surfaces land on the same pixel at ``t``, the one that moves further is put in
    front (:data:`inbetween.warp.MOTION_PRIORITY`; 0: averaged).

    ``neighbours=True`` (``interpolate.neighbours=true``) takes the shot's keyframes beyond the gap
    (``k - 1``, ``k + 2``) where there are any and moves each keyframe's pixels along the
    arc through their positions in them (:class:`NeighbourPaths`) instead of a straight
    line: curved and eased motion between keyframes.

    ``blend_with_dis=True`` also renders each frame along DIS's flow (:class:`flow.DISFlow`, its
    defaults) and blends the two renderings per pixel by :func:`agreement_blend`: meant for another
    ``flow=`` (e.g. ``learned``, which finds large motion that DIS misses while DIS is more precise on
    real texture); with ``flow=dis`` it changes nothing.
    """

    name = "flow_warp"
    needs_flow = True
    times_per_call = 1
    accepts_neighbours = True

    def __init__(
        self,
        occlusion_aware: bool = True,
        alpha: float = 0.01,
        beta: float = 0.5,
        visibility_floor: float = 0.3,
        neighbours: bool = False,
        motion_priority: float = MOTION_PRIORITY,
        blend_with_dis: bool = False,
    ) -> None:
        self.occlusion_aware = occlusion_aware
        self.alpha = alpha
        self.beta = beta
        self.visibility_floor = visibility_floor
        self.uses_neighbours = neighbours
        self.motion_priority = motion_priority
        self.dis = DISFlow() if blend_with_dis else None

    def warp(self, left, right, flow_lr, flow_rl, t: float | torch.Tensor,
             paths: NeighbourPaths | None = None) -> WarpedToTime:
        """Both keyframes warped to time ``t`` and blended (every tensor ``(B, ., H, W)``).

        ``t``: one time, or a time per item as a ``(B, 1, 1, 1)`` tensor. ``paths``: the gap's paths bent
        through the shot's keyframes beyond it (:func:`bent_paths`; None: straight paths).
        """
        flows = time_flows(flow_lr, flow_rl, t, alpha=self.alpha, beta=self.beta,
                           paths=None if paths is None else paths.at(t), motion_priority=self.motion_priority)
        warped_left = backward_warp(left, flows.flow_t0)
        warped_right = backward_warp(right, flows.flow_t1)
        visible = (flows.visible_0, flows.visible_1) if self.occlusion_aware else (1.0, 1.0)
        blend = visibility_blend(warped_left, warped_right, *visible, t, self.visibility_floor)
        return WarpedToTime(warped_left, warped_right, flows, blend.clamp(-1, 1))

    def frame_at(self, left, right, flow_lr, flow_rl, t: float, paths: NeighbourPaths | None = None) -> torch.Tensor:
        """The frame at time ``t``, ``(B, 3, H, W)``."""
        return self.warp(left, right, flow_lr, flow_rl, t, paths).blend

    def __call__(self, left, right, flow_lr, flow_rl, times, neighbours: Neighbours | None = None):
        if flow_lr is None or flow_rl is None:
            raise InbetweenError("the flow_warp interpolator needs flow in both directions; configure a flow estimator")
        flow_lr, flow_rl = flow_lr.to(left), flow_rl.to(left)
        paths = bent_paths(flow_lr, flow_rl, neighbours)
        times = check_times(times)
        if self.dis is None:
            frames = [self.frame_at(left, right, flow_lr, flow_rl, t, paths) for t in times]
            return _stack_times(frames, left)
        along_dis = self.warps_along(self.dis, left, right, times, neighbours)
        frames = [agreement_blend(self.warp(left, right, flow_lr, flow_rl, t, paths), dis)
                  for t, dis in zip(times, along_dis)]
        return _stack_times(frames, left)

    def warps_along(self, estimator: FlowEstimator, left, right, times: Sequence[float],
                    neighbours: Neighbours | None = None) -> Iterator[WarpedToTime]:
        """:meth:`warp` to each of ``times`` along ``estimator``'s flow between ``left`` and ``right``
        ``(B, 3, H, W)`` (on their paths bent through ``neighbours`` where given), one time at a time."""
        flow_lr, flow_rl = (flow.to(left) for flow in estimator.bidirectional(left, right))
        paths = bent_paths(flow_lr, flow_rl, neighbours)
        for t in times:
            yield self.warp(left, right, flow_lr, flow_rl, t, paths)


def _common_denominator(times: Sequence[float], max_denominator: int, tolerance: float = 1e-6) -> int:
    """Smallest ``D <= max_denominator`` with every ``t * D`` an integer, else :class:`InbetweenError`."""
    for denominator in range(1, max_denominator + 1):
        if all(abs(t * denominator - round(t * denominator)) < tolerance * denominator for t in times):
            return denominator
    raise InbetweenError(
        f"minterpolate can only make frames at evenly spaced times k/N (N <= {max_denominator}); "
        f"got times {list(times)}. Ask for evenly spaced in-betweens such as [1/3, 2/3], "
        "or use the flow_warp interpolator for arbitrary times."
    )


class MinterpolateInterpolator(Interpolator):
    """ffmpeg's ``minterpolate`` filter (block-matching motion-compensated interpolation).

    An external baseline. Each pair of keyframes is piped to the bundled ffmpeg as a
    1 fps rawvideo clip and re-timed to ``N`` fps, which yields the frames at times
    ``k / N``. So the requested times must all be multiples of ``1 / N`` for some
    ``N <= max_denominator`` (e.g. evenly spaced in-betweens ``k / (n + 1)``);
    other times raise :class:`InbetweenError`.

    ``mode``, ``mc_mode``, ``me_mode``, ``me``, ``mb_size``, ``search_param`` and
    ``vsbmc`` are the filter's ``mi_mode``, ``mc_mode``, ``me_mode``, ``me``,
    ``mb_size``, ``search_param`` and ``vsbmc`` options; scene-change detection is off.
    Frames go through full-range YUV 4:4:4 (the filter works in YUV), so no chroma is
    subsampled.
    """

    name = "minterpolate"
    needs_flow = False

    def __init__(
        self,
        mode: str = "mci",
        mc_mode: str = "aobmc",
        me_mode: str = "bidir",
        me: str = "epzs",
        mb_size: int = 8,
        search_param: int = 64,
        vsbmc: bool = True,
        max_denominator: int = 64,
    ) -> None:
        self.mode = mode
        self.mc_mode = mc_mode
        self.me_mode = me_mode
        self.me = me
        self.mb_size = mb_size
        self.search_param = search_param
        self.vsbmc = vsbmc
        self.max_denominator = max_denominator

    def _filter(self, fps: int) -> str:
        options = (
            f"fps={fps}:mi_mode={self.mode}:mc_mode={self.mc_mode}:me_mode={self.me_mode}:me={self.me}"
            f":mb_size={self.mb_size}:search_param={self.search_param}:vsbmc={int(self.vsbmc)}:scd=none"
        )
        return f"scale=out_range=full,format=yuvj444p,minterpolate={options},scale=in_range=full,format=rgb24"

    def _run(self, left: np.ndarray, right: np.ndarray, denominator: int) -> np.ndarray:
        """Frames at times ``k / denominator``, ``k = 0..denominator``: ``(denominator + 1, H, W, 3)`` uint8.

        The filter needs at least 16 x 16 pixels and searches whole blocks, so the frames
        are edge-padded on the right and bottom to a multiple of the block size (at least
        16) and cropped back. It emits an interval's frames only once the frame after
        it has arrived, so ``right`` is sent twice.
        """
        height, width, _ = left.shape
        padded_height, padded_width = (
            max(_MINTERPOLATE_MIN_SIZE, -(-size // self.mb_size) * self.mb_size) for size in (height, width)
        )
        padding = ((0, padded_height - height), (0, padded_width - width), (0, 0))
        stream = b"".join(np.pad(frame, padding, mode="edge").tobytes() for frame in (left, right, right))
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{padded_width}x{padded_height}", "-r", "1", "-i", "-",
            "-vf", self._filter(denominator), "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ]
        result = subprocess.run(command, input=stream, capture_output=True, check=False)
        wanted = (denominator + 1) * padded_height * padded_width * 3
        if result.returncode != 0 or len(result.stdout) < wanted:
            message = result.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"ffmpeg minterpolate failed (exit {result.returncode}): {message}")
        frames = np.frombuffer(result.stdout[:wanted], np.uint8)
        return frames.reshape(denominator + 1, padded_height, padded_width, 3)[:, :height, :width]

    def __call__(self, left, right, flow_lr, flow_rl, times):
        times = check_times(times)
        if not times:
            return _stack_times([], left)
        denominator = _common_denominator(times, self.max_denominator)
        indices = [round(t * denominator) for t in times]
        pairs = zip(to_uint8(left), to_uint8(right))
        frames = [self._run(item_left, item_right, denominator)[indices] for item_left, item_right in pairs]
        return from_uint8(np.stack(frames)).to(left.device, left.dtype)

