"""The keyframes beyond a gap: polynomial paths, flow_warp with neighbours, the pipeline that passes
them and the shot datasets of ``inbetween evaluate``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tqdm import tqdm

from flow import DISFlow
from inbetween.evaluation import psnr, world_shot_cases
from inbetween.pipeline import FrameWriter, Stages, fill_shot, gap_neighbours
from inbetween.storyboard import Shot
from inbetween.video import from_uint8, to_uint8
from inbetween.warp import ArcPath, polynomial_path
from inbetween.world import CLIP_KINDS, Clip
from interpolate import DiffusionInterpolator, FlowWarpInterpolator, LinearInterpolator, Neighbours
from interpolate.base import Neighbour
from interpolate import classical
from interpolate.classical import NeighbourPaths
from interpolate.diffusion import InterpolatorModel
from keyframes import ImageKeyframes
from tests.conftest import textured_frames
from tests.test_interpolator import TINY_CONFIG, randomised


def field(dx: float, dy: float, height: int = 4, width: int = 5) -> torch.Tensor:
    flow = torch.empty(1, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


@pytest.mark.parametrize("s", [0.25, 0.5, -0.6])
def test_polynomial_path_follows_quadratic_and_cubic_motion_exactly(s):
    velocity, acceleration, jerk = np.array([3.0, -1.0]), np.array([-2.0, 0.5]), np.array([0.4, 1.2])

    def at(time: float) -> torch.Tensor:
        return field(*(velocity * time + acceleration * time ** 2 + jerk * time ** 3))

    cubic = polynomial_path({-1: at(-1), 1: at(1), 2: at(2)}, s)
    assert torch.allclose(cubic, at(s), atol=1e-5)
    jerk[:] = 0
    assert torch.allclose(polynomial_path({-1: at(-1), 1: at(1)}, s), at(s), atol=1e-5)
    assert torch.allclose(polynomial_path({1: at(1)}, s), s * at(1))  # one keyframe: a straight line


def on_circle(s: float, jerk: float = -0.02, radius: float = 30.0, centre=(4.0, -7.0)) -> torch.Tensor:
    """The displacement from time 0 of a point eased along a circle: angle ``0.3 + 0.6 s + 0.08 s^2 + jerk s^3``."""
    def position(time: float) -> np.ndarray:
        angle = 0.3 + 0.6 * time + 0.08 * time ** 2 + jerk * time ** 3
        return np.asarray(centre) + radius * np.array([np.cos(angle), np.sin(angle)])

    return field(*(position(s) - position(0)))


@pytest.mark.parametrize("s", [0.25, 0.5, 0.8, -0.6])
def test_an_arc_path_follows_eased_circular_motion_exactly(s):
    through = {node: on_circle(node) for node in (-1, 1, 2)}
    torch.testing.assert_close(ArcPath(through).at(s), on_circle(s), atol=1e-3, rtol=0)
    assert (polynomial_path(through, s) - on_circle(s)).abs().max() > 0.01  # the cubic cuts the arc's corner
    # three keyframes (a first gap) pin the circle and a quadratic angle
    first_gap = {node: on_circle(node, jerk=0.0) for node in (1, 2)}
    torch.testing.assert_close(ArcPath(first_gap).at(s), on_circle(s, jerk=0.0), atol=1e-3, rtol=0)


def test_an_arc_path_is_the_polynomial_on_a_line_and_with_one_keyframe():
    along = {node: field(2.0 * node + 0.3 * node ** 2, -1.0 * node - 0.15 * node ** 2) for node in (-1, 1, 2)}
    torch.testing.assert_close(ArcPath(along).at(0.4), polynomial_path(along, 0.4))
    assert torch.equal(ArcPath({1: along[1]}).at(0.4), 0.4 * along[1])
    # a step that turns back on itself is noise, not an arc: the polynomial again
    zigzag = {-1: field(3.0, 0.0), 1: field(3.0, 0.2), 2: field(0.2, 0.1)}
    torch.testing.assert_close(ArcPath(zigzag).at(0.5), polynomial_path(zigzag, 0.5))


def test_a_neighbour_whose_flow_fails_its_round_trip_does_not_bend_the_path():
    def flow(dx: float, dy: float) -> torch.Tensor:
        return field(dx, dy, 24, 24)

    flow_lr, flow_rl = flow(4.0, 0.0), flow(-4.0, 0.0)
    bent = Neighbour(torch.zeros(1, 3, 24, 24), flow_from_gap=flow(-3.0, 2.0), flow_to_gap=flow(3.0, -2.0))
    straight = NeighbourPaths(flow_lr, flow_rl, Neighbours()).at(0.5)
    through = NeighbourPaths(flow_lr, flow_rl, Neighbours(before=bent)).at(0.5)
    inner = (..., slice(8, 16), slice(8, 16))  # pixels whose flows stay inside the frame
    for path, line in zip(through, straight):
        assert (path - line)[inner].norm(dim=1).amin() > 0.2
    broken = Neighbour(bent.image, bent.flow_from_gap, flow_to_gap=flow(9.0, 9.0))
    for path, line in zip(NeighbourPaths(flow_lr, flow_rl, Neighbours(before=broken)).at(0.5), straight):
        torch.testing.assert_close(path, line)


def test_a_bent_path_stays_within_its_share_of_the_gap_flow_of_the_straight_one(monkeypatch):
    def flow(dx: float, dy: float) -> torch.Tensor:
        return field(dx, dy, 24, 24)

    before = Neighbour(torch.zeros(1, 3, 24, 24), flow_from_gap=flow(-3.0, 2.0), flow_to_gap=flow(3.0, -2.0))
    inner = (..., slice(8, 16), slice(8, 16))

    def left_bend(across: float) -> torch.Tensor:
        """The left keyframe's inner pixels' departure from the straight path at t = 0.5, ``(2, 8, 8)``."""
        flow_lr = flow(across, 0.0)
        return (NeighbourPaths(flow_lr, -flow_lr, Neighbours(before=before)).at(0.5)[0] - 0.5 * flow_lr)[inner][0]

    capped = {across: left_bend(across) for across in (4.0, 40.0)}
    monkeypatch.setattr(classical, "NEIGHBOUR_BEND_SHARE", math.inf)
    free = {across: left_bend(across) for across in (4.0, 40.0)}
    # a short path bends no further than its share allows (0.32 px of 0.4): untouched
    assert free[4.0].norm(dim=0).amin() > 0.3
    torch.testing.assert_close(capped[4.0], free[4.0])
    # a long one would depart 7.1 px: cut to 0.1 of 40 px, in the same direction
    assert free[40.0].norm(dim=0).amin() > 7
    torch.testing.assert_close(capped[40.0].norm(dim=0), torch.full((8, 8), 4.0))
    torch.testing.assert_close(capped[40.0], free[40.0] * 4.0 / free[40.0].norm(dim=0))


def middle_gap_left_path(before: float, after: float, across: float = 6.0) -> torch.Tensor:
    """The left keyframe's pixels at ``t = 0.5`` of a middle gap moving ``across`` px to the right, with
    the keyframe before it ``before`` px to its left and the one after the gap ``after`` px right of
    the right keyframe (uniform flows, 24 x 48), as a displacement ``(2,)`` at a pixel whose flows stay
    inside the frame."""
    def flow(dx: float) -> torch.Tensor:
        return field(dx, 0.0, 24, 48)

    image = torch.zeros(1, 3, 24, 48)
    neighbours = Neighbours(before=Neighbour(image, flow_from_gap=flow(-before), flow_to_gap=flow(before)),
                            after=Neighbour(image, flow_from_gap=flow(after), flow_to_gap=flow(-after)))
    return NeighbourPaths(flow(across), flow(-across), neighbours).at(0.5)[0][0, :, 12, 16]


def test_a_middle_gap_bends_only_as_far_as_both_neighbours_agree(monkeypatch):
    """The keyframes on either side of a middle gap each imply a bend: a steady acceleration is
    followed (both agree), a speed change that only one side shows (a stutter in capture) is not."""
    monkeypatch.setattr(classical, "NEIGHBOUR_BEND_SHARE", math.inf)
    # steady acceleration (steps of 4, 8 and 12 px between the keyframes): t = 0.5 is 3.5 px on, not 4
    torch.testing.assert_close(middle_gap_left_path(4.0, 12.0, 8.0), torch.tensor([3.5, 0.0]))
    # steady speed before the gap, faster after it: the straight path
    torch.testing.assert_close(middle_gap_left_path(6.0, 9.0), torch.tensor([3.0, 0.0]))
    # both sides faster than the gap (they disagree: slow down, then speed up): straight
    torch.testing.assert_close(middle_gap_left_path(9.0, 9.0), torch.tensor([3.0, 0.0]))
    # both accelerate, by different amounts: the smaller bend
    smaller = middle_gap_left_path(4.0, 12.0, 8.0)
    torch.testing.assert_close(middle_gap_left_path(4.0, 14.0, 8.0), smaller)
    torch.testing.assert_close(middle_gap_left_path(3.0, 12.0, 8.0), smaller)


def world_shot(kind: str, seed: int, size: int = 64, keyframes: int = 4, stride: int = 6):
    """A world clip as a shot: frames uint8 ``(N, S, S, 3)``, keyframe tensors and exact gap flows."""
    clip = Clip.random(seed, kind)
    times = np.linspace(0, 1, (keyframes - 1) * stride + 1)
    frames = np.stack([clip.render(t, size) for t in times])
    key_times = times[::stride]
    flows = [tuple(torch.from_numpy(clip.flow(a, b, size))[None] for a, b in ((t0, t1), (t1, t0)))
             for t0, t1 in zip(key_times[:-1], key_times[1:])]
    return frames, from_uint8(frames[::stride]), flows


@pytest.mark.parametrize("kind, least_mean, least", [("ease", 1.5, 0.05), ("arc", 1.5, 0.5)])
def test_flow_warp_follows_eased_and_curved_motion_through_the_neighbours(kind, least_mean, least):
    """Exact keyframe flows of eased world clips (motion from rest to rest over the shot) and of arcs:
    the straight path misplaces the shapes, the path through the keyframes beyond the gap much less.
    Measured: ease 0.08 to 2.6 dB, mean 1.85; arcs 0.7 to 3.0 dB, mean 1.97 (without the cap on the
    bend, :data:`interpolate.classical.NEIGHBOUR_BEND_SHARE`, 2.3 and 2.4)."""
    stride = 6
    times = [j / stride for j in range(1, stride)]
    gains = []
    for seed in (500000, 500001, 500002):
        frames, keys, flows = world_shot(kind, seed, stride=stride)
        for gap in range(3):
            truth = frames[gap * stride + 1:(gap + 1) * stride]
            pair = (keys[gap:gap + 1], keys[gap + 1:gap + 2], *flows[gap], times)
            alone = FlowWarpInterpolator()(*pair)[0]
            beyond = FlowWarpInterpolator(neighbours=True)(*pair, neighbours=gap_neighbours(keys, flows, gap))[0]
            gains.append(psnr(to_uint8(beyond), truth) - psnr(to_uint8(alone), truth))
    assert np.mean(gains) > least_mean and min(gains) > least


def test_without_neighbours_the_frames_are_those_of_the_gap_alone():
    frames, keys, flows = world_shot("arc", 500003)
    interpolator = FlowWarpInterpolator(neighbours=True)
    times = [0.3, 0.7]
    alone = FlowWarpInterpolator()(keys[1:2], keys[2:3], *flows[1], times)
    assert torch.equal(interpolator(keys[1:2], keys[2:3], *flows[1], times), alone)
    assert torch.equal(interpolator(keys[1:2], keys[2:3], *flows[1], times, neighbours=Neighbours()), alone)
    # a first gap has only the keyframe after it, and bends with it
    first = interpolator(keys[0:1], keys[1:2], *flows[0], times, neighbours=gap_neighbours(keys, flows, 0))
    assert not torch.equal(first, FlowWarpInterpolator()(keys[0:1], keys[1:2], *flows[0], times))


def test_diffusion_is_conditioned_on_the_bent_paths_and_is_unchanged_without_neighbours(tmp_path):
    _, keys, flows = world_shot("ease", 500004)
    model = InterpolatorModel.build(TINY_CONFIG)
    randomised(model.unet).eval()
    model.save(tmp_path)
    times = [0.3, 0.7]
    pair = (keys[1:2], keys[2:3], *flows[1])
    neighbours = gap_neighbours(keys, flows, 1)
    blend, _ = model.conditioning(*pair, torch.tensor([times]), neighbours)
    torch.testing.assert_close(blend, FlowWarpInterpolator(neighbours=True)(*pair, times, neighbours=neighbours))
    interpolator = DiffusionInterpolator(str(tmp_path), neighbours=True)
    assert interpolator.accepts_neighbours and interpolator.uses_neighbours
    assert not DiffusionInterpolator(str(tmp_path)).uses_neighbours
    alone = interpolator(*pair, times)
    assert torch.equal(interpolator(*pair, times, neighbours=Neighbours()), alone)
    assert (interpolator(*pair, times, neighbours=neighbours) - alone).abs().max() > 0.05


class RecordingInterpolator(LinearInterpolator):
    """A cross-fade that keeps the neighbours the pipeline gave each call."""

    accepts_neighbours = uses_neighbours = True

    def __init__(self):
        self.seen: list[Neighbours] = []

    def __call__(self, left, right, flow_lr, flow_rl, times, neighbours=None):
        self.seen.append(neighbours)
        return super().__call__(left, right, flow_lr, flow_rl, times)


def fill(tmp_path, keys: torch.Tensor, interpolator, between: int = 2) -> np.ndarray:
    """Run ``fill_shot`` over one shot of ``keys``; returns the frames it wrote, uint8 ``(N, H, W, 3)``."""
    shot = Shot(tuple("abcdefgh"[:len(keys)]), between=between)
    (tmp_path / "flow").mkdir(parents=True, exist_ok=True)
    written = []
    with FrameWriter(tmp_path, shot.frame_count, *keys.shape[2:], fps=12, scale=1, gif_max_frames=4) as writer:
        add = writer.add
        writer.add = lambda frames: (written.append(frames), add(frames))
        with torch.inference_mode():
            fill_shot(keys, shot, Stages(ImageKeyframes(), DISFlow(), interpolator), writer, 0,
                      tqdm(total=shot.frame_count, disable=True))
    return np.concatenate(written)


def test_the_pipeline_passes_each_gap_the_keyframes_beyond_it_within_its_shot(tmp_path):
    keys = from_uint8(np.stack(textured_frames(4, 32, 48, shift=2)))
    recorder = RecordingInterpolator()
    fill(tmp_path, keys, recorder)
    assert len(recorder.seen) == 3 * 2  # one call per in-between (times_per_call 1)
    first, middle, last = recorder.seen[0], recorder.seen[2], recorder.seen[4]
    assert first.before is None and torch.equal(first.after.image, keys[2:3])
    assert torch.equal(middle.before.image, keys[0:1]) and torch.equal(middle.after.image, keys[3:4])
    assert last.after is None and torch.equal(last.before.image, keys[1:2])
    # flow_from_gap leaves the gap's nearer keyframe: right keyframe 2 -> keyframe 3
    expected = DISFlow().bidirectional(keys[2:3], keys[3:4])
    assert torch.equal(middle.after.flow_from_gap, expected[0]) and torch.equal(middle.after.flow_to_gap, expected[1])
    # a shot of two keyframes (as every shot after a cut starts anew) has none
    recorder.seen.clear()
    fill(tmp_path / "two", keys[:2], recorder)
    assert all(seen.before is None and seen.after is None for seen in recorder.seen)
    straight = fill(tmp_path / "plain", keys[:2], FlowWarpInterpolator())
    assert np.array_equal(fill(tmp_path / "bent", keys[:2], FlowWarpInterpolator(neighbours=True)), straight)


def test_world_shot_cases_are_the_gaps_of_a_shot_with_their_neighbours():
    cases = list(world_shot_cases(keyframes=4, between=3, clips_per_kind=1, size=32, seed=1_000_000))
    assert len(cases) == 3 * len(CLIP_KINDS)
    first, middle, last = cases[:3]
    assert [case.part for case in (first, middle, last)] == ["first gap", "middle gap", "last gap"]
    assert first.before is None and last.after is None
    assert np.array_equal(middle.before, first.keys[0]) and np.array_equal(middle.after, last.keys[1])
    assert np.array_equal(first.keys[1], middle.keys[0]) and first.times == [0.25, 0.5, 0.75]
    assert first.truth.shape == (3, 32, 32, 3) and first.reference_flows.shape == (4, 2, 32, 32)
    assert first.key_flow.shape == (2, 32, 32)
