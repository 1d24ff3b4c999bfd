"""interpolate: cross-fade, flow warping and ffmpeg minterpolate."""

from __future__ import annotations

import cv2
import hydra.utils
import numpy as np
import pytest
import torch

from flow import DISFlow
from inbetween.errors import InbetweenError
from inbetween.video import to_uint8
from interpolate import FlowWarpInterpolator, Interpolator, LinearInterpolator, MinterpolateInterpolator
from interpolate.classical import WarpedToTime, agreement_blend, visibility_blend

HEIGHT, WIDTH, SIDE = 64, 96, 28
ORIGIN = (24, 18)  # top-left corner (x, y) of the square in the left keyframe


def texture(height: int, width: int, seed: int, sigma: float = 2.0) -> torch.Tensor:
    """A smooth random texture ``(3, H, W)`` spanning ``[-1, 1]``."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(-1, 1, (height, width, 3)).astype(np.float32), (0, 0), sigma)
    return torch.from_numpy(noise / np.abs(noise).max()).permute(2, 0, 1)


BACKGROUND = texture(HEIGHT, WIDTH, seed=0) * 0.6
SQUARE = texture(SIDE, SIDE, seed=1) * 0.9


def square_frame(x: int, y: int) -> torch.Tensor:
    """The textured square with its top-left corner at ``(x, y)`` over the textured background, ``(1, 3, H, W)``."""
    frame = BACKGROUND.clone()
    frame[:, y : y + SIDE, x : x + SIDE] = SQUARE
    return frame[None]


def square_flows(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``(flow_0to1, flow_1to0)`` for the square moving by ``(dx, dy)`` over a still background."""
    x, y = ORIGIN
    flow_0to1 = torch.zeros(1, 2, HEIGHT, WIDTH)
    flow_0to1[:, 0, y : y + SIDE, x : x + SIDE], flow_0to1[:, 1, y : y + SIDE, x : x + SIDE] = dx, dy
    flow_1to0 = torch.zeros(1, 2, HEIGHT, WIDTH)
    region = (slice(None), slice(y + dy, y + dy + SIDE), slice(x + dx, x + dx + SIDE))
    flow_1to0[:, 0][region], flow_1to0[:, 1][region] = -dx, -dy
    return flow_0to1, flow_1to0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    return 10 * torch.log10(4 / (a - b).square().mean()).item()


def interpolators() -> list[Interpolator]:
    return [LinearInterpolator(), FlowWarpInterpolator(), MinterpolateInterpolator()]


def random_flows(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    flow = torch.randn(batch, 2, height, width) * 2
    return flow, -flow


@pytest.mark.parametrize("interpolator", interpolators(), ids=lambda i: i.name)
@pytest.mark.parametrize(
    ("batch", "times", "height", "width"),
    [(1, [0.5], 17, 23), (2, [0.25, 0.5, 0.75], 9, 13), (3, [1 / 3, 2 / 3], 20, 16), (1, [], 8, 8)],
)
def test_output_shape_and_range(interpolator, batch, times, height, width):
    left, right = torch.rand(batch, 3, height, width) * 2 - 1, torch.rand(batch, 3, height, width) * 2 - 1
    frames = interpolator(left, right, *random_flows(batch, height, width), times)
    assert frames.shape == (batch, len(times), 3, height, width)
    assert frames.dtype == left.dtype
    if times:
        assert frames.min() >= -1 and frames.max() <= 1


@pytest.mark.parametrize("interpolator", interpolators(), ids=lambda i: i.name)
def test_frames_follow_the_order_of_times(interpolator):
    left, right = square_frame(*ORIGIN), square_frame(ORIGIN[0] + 8, ORIGIN[1])
    flows = square_flows(8, 0)
    forward = interpolator(left, right, *flows, [0.25, 0.5, 0.75])
    shuffled = interpolator(left, right, *flows, [0.75, 0.25, 0.5])
    assert torch.allclose(shuffled, forward[:, [2, 0, 1]], atol=1e-6)
    assert not torch.allclose(forward[:, 0], forward[:, 2], atol=0.05)


@pytest.mark.parametrize("interpolator", interpolators(), ids=lambda i: i.name)
def test_times_outside_unit_interval_are_refused(interpolator):
    image = torch.zeros(1, 3, 16, 16)
    with pytest.raises(InbetweenError, match=r"\[0, 1\]"):
        interpolator(image, image, *random_flows(1, 16, 16), [0.5, 1.5])


@pytest.mark.parametrize("interpolator", [LinearInterpolator(), FlowWarpInterpolator()], ids=lambda i: i.name)
def test_a_hold_is_filled_with_copies(interpolator):
    image = square_frame(*ORIGIN)
    frames = interpolator(image, image, *DISFlow().bidirectional(image, image), [0.25, 0.5])
    assert np.array_equal(to_uint8(frames[0]), to_uint8(image.expand(2, -1, -1, -1)))


def test_linear_is_the_cross_fade():
    left, right = torch.rand(2, 3, 5, 7) * 2 - 1, torch.rand(2, 3, 5, 7) * 2 - 1
    times = [0.0, 0.2, 0.5, 1.0]
    frames = LinearInterpolator()(left, right, None, None, times)
    for index, t in enumerate(times):
        assert torch.equal(frames[:, index], (1 - t) * left + t * right)
    assert not LinearInterpolator.needs_flow and not MinterpolateInterpolator.needs_flow
    assert FlowWarpInterpolator.needs_flow


def test_visibility_blend_takes_each_pixel_from_the_keyframe_that_shows_it():
    warped_left, warped_right = torch.full((1, 3, 2, 2), -1.0), torch.full((1, 3, 2, 2), 1.0)
    visible_left = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    visible_right = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    t = 0.25  # the plain mix is 0.75 * -1 + 0.25 * 1 = -0.5
    blended = visibility_blend(warped_left, warped_right, visible_left, visible_right, t, floor=1e-6)
    # Seen only in the left keyframe: left; only in the right: right; in both or neither: the plain mix.
    assert blended[0, 0].flatten().tolist() == pytest.approx([-1.0, 1.0, -0.5, -0.5], abs=1e-5)
    # A floor softens the evidence: seen only left with floor 1 weighs (0.75 * 2, 0.25 * 1).
    assert visibility_blend(warped_left, warped_right, visible_left, visible_right, t, floor=1.0)[0, 0, 0, 0].item() \
        == pytest.approx((-1.5 + 0.25) / 1.75)
    assert visibility_blend(warped_left, warped_right, 1.0, 1.0, t, floor=0.3).unique().tolist() == pytest.approx([-0.5])


def test_agreement_blend_follows_the_rendering_whose_two_warps_agree():
    # The first rendering's warped keyframes agree on the left column and differ by 40 levels on the
    # right one; the second's the other way round.
    level = 1 / 127.5
    agree_left = torch.tensor([[[[0.0, 40 * level]]]]).expand(1, 3, 1, 2)
    first = WarpedToTime(torch.zeros(1, 3, 1, 2), agree_left, None, torch.full((1, 3, 1, 2), -0.5))
    second = WarpedToTime(torch.zeros(1, 3, 1, 2), agree_left.flip(-1), None, torch.full((1, 3, 1, 2), 0.5))
    blended = agreement_blend(first, second, window=1, temperature=8.0, margin=0.0)[0, 0, 0]
    share_of_first = 1 / (1 + np.exp(-40 / 8))  # softmax of (0, -40 / 8)
    assert blended.tolist() == pytest.approx([0.5 - share_of_first, share_of_first - 0.5], abs=1e-5)
    # Where the two agree alike, the margin tips the blend towards the first rendering.
    tied = agreement_blend(first, first, window=1, temperature=8.0, margin=4.0)
    assert torch.allclose(tied, first.blend)
    same = WarpedToTime(first.left, first.right, None, torch.full((1, 3, 1, 2), 0.5))
    assert agreement_blend(first, same, window=1, temperature=8.0, margin=4.0)[0, 0, 0, 0].item() \
        == pytest.approx(-0.5 + 1 / (1 + np.exp(4 / 8)), abs=1e-5)


class TestFlowWarp:
    def test_endpoints_are_the_keyframes(self):
        left, right = square_frame(*ORIGIN), square_frame(ORIGIN[0] + 6, ORIGIN[1] - 4)
        frames = FlowWarpInterpolator()(left, right, *square_flows(6, -4), [0.0, 1.0])
        assert torch.allclose(frames[:, 0], left, atol=1e-6)
        assert torch.allclose(frames[:, 1], right, atol=1e-6)

    @pytest.mark.parametrize(("dx", "dy", "t"), [(8, 4, 0.5), (8, 4, 0.25), (12, -6, 0.5), (-8, 8, 0.75)])
    def test_translating_square_with_exact_flow(self, dx, dy, t):
        x, y = ORIGIN
        left, right = square_frame(x, y), square_frame(x + dx, y + dy)
        truth = square_frame(x + round(dx * t), y + round(dy * t))
        flows = square_flows(dx, dy)
        linear = psnr(LinearInterpolator()(left, right, None, None, [t])[:, 0], truth)
        warped = psnr(FlowWarpInterpolator()(left, right, *flows, [t])[:, 0], truth)
        plain = psnr(FlowWarpInterpolator(occlusion_aware=False)(left, right, *flows, [t])[:, 0], truth)
        assert warped >= linear + 5
        # Occlusion reasoning takes the uncovered background from the frame that shows it.
        assert warped >= plain + 2
        assert warped > 33

    def test_square_jumping_further_than_its_size_passes_in_front(self):
        # Half-way, the square covers background that both keyframes show: without the motion
        # priority its flows from t average with the background's and it is drawn as two ghosts.
        x, y = ORIGIN
        left, right, truth = square_frame(x, y), square_frame(x + 40, y + 6), square_frame(x + 20, y + 3)
        flows = square_flows(40, 6)
        in_front = psnr(FlowWarpInterpolator()(left, right, *flows, [0.5])[:, 0], truth)
        averaged = psnr(FlowWarpInterpolator(motion_priority=0.0)(left, right, *flows, [0.5])[:, 0], truth)
        assert in_front > 35 and in_front >= averaged + 8

    def test_translating_square_with_dis_flow(self):
        x, y = ORIGIN
        left, right, truth = square_frame(x, y), square_frame(x + 8, y + 4), square_frame(x + 4, y + 2)
        flows = DISFlow().bidirectional(left, right)
        linear = psnr(LinearInterpolator()(left, right, None, None, [0.5])[:, 0], truth)
        warped = psnr(FlowWarpInterpolator()(left, right, *flows, [0.5])[:, 0], truth)
        assert warped >= linear + 5

    def test_blend_with_dis_mends_a_wrong_flow_and_keeps_dis_flow_unchanged(self):
        # Given a flow that misses the square's motion, the frame rendered along DIS's flow takes over
        # where the wrong flow's two warps disagree; given DIS's own flow, nothing changes.
        x, y = ORIGIN
        left, right, truth = square_frame(x, y), square_frame(x + 8, y + 4), square_frame(x + 4, y + 2)
        still = torch.zeros(1, 2, HEIGHT, WIDTH)
        blending = FlowWarpInterpolator(blend_with_dis=True)
        wrong = psnr(FlowWarpInterpolator()(left, right, still, still, [0.5])[:, 0], truth)
        mended = psnr(blending(left, right, still, still, [0.5])[:, 0], truth)
        dis_flows = DISFlow().bidirectional(left, right)
        dis = psnr(FlowWarpInterpolator()(left, right, *dis_flows, [0.5])[:, 0], truth)
        assert mended >= wrong + 5 and mended >= dis - 1.5
        unblended = FlowWarpInterpolator()(left, right, *dis_flows, [0.5])
        assert torch.allclose(blending(left, right, *dis_flows, [0.5]), unblended, atol=1e-6)

    def test_needs_flow(self):
        image = torch.zeros(1, 3, 8, 8)
        with pytest.raises(InbetweenError, match="flow"):
            FlowWarpInterpolator()(image, image, None, None, [0.5])

    def test_instantiable_by_hydra(self):
        interpolator = hydra.utils.instantiate(
            {
                "_target_": "interpolate.FlowWarpInterpolator",
                "occlusion_aware": True,
                "alpha": 0.01,
                "beta": 0.5,
                "visibility_floor": 0.3,
            }
        )
        assert isinstance(interpolator, Interpolator) and interpolator.visibility_floor == 0.3


class TestMinterpolate:
    def locate_square(self, frame: torch.Tensor, max_dx: int) -> int:
        """Horizontal offset of the square from ``ORIGIN`` that best explains ``frame`` ``(3, H, W)``."""
        candidates = range(-1, max_dx + 2)
        errors = {dx: (frame - square_frame(ORIGIN[0] + dx, ORIGIN[1])[0]).abs().mean().item() for dx in candidates}
        return min(errors, key=errors.get)

    @pytest.mark.parametrize("times", [[0.25, 0.5, 0.75], [0.5], [0.75, 0.25]])
    def test_moving_square_is_at_the_intermediate_position(self, times):
        left, right = square_frame(*ORIGIN), square_frame(ORIGIN[0] + 8, ORIGIN[1])
        frames = MinterpolateInterpolator()(left, right, None, None, times)
        for index, t in enumerate(times):
            assert abs(self.locate_square(frames[0, index], 8) - 8 * t) <= 1
            truth = square_frame(ORIGIN[0] + round(8 * t), ORIGIN[1])
            linear = LinearInterpolator()(left, right, None, None, [t])[:, 0]
            assert psnr(frames[:, index], truth) > psnr(linear, truth) + 3

    def test_endpoints_are_the_keyframes_up_to_colour_conversion(self):
        left, right = square_frame(*ORIGIN), square_frame(ORIGIN[0] + 8, ORIGIN[1])
        frames = MinterpolateInterpolator()(left, right, None, None, [0.0, 1.0])
        assert psnr(frames[:, 0], left) > 45 and psnr(frames[:, 1], right) > 45

    @pytest.mark.parametrize("times", [[0.5, 0.51234], [0.123], [1 / 3, 0.5, 0.7071]])
    def test_times_off_an_even_grid_are_refused(self, times):
        image = torch.zeros(1, 3, 16, 16)
        with pytest.raises(InbetweenError, match="evenly spaced"):
            MinterpolateInterpolator()(image, image, None, None, times)

    def test_times_on_a_common_grid_are_accepted(self):
        image = torch.rand(1, 3, 16, 16) * 2 - 1
        frames = MinterpolateInterpolator()(image, image, None, None, [0.1, 0.35, 0.6])  # multiples of 1/20
        assert frames.shape == (1, 3, 3, 16, 16)
        assert psnr(frames[:, 1], image) > 45
