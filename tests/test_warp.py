"""inbetween.warp: backward warping, forward splatting, occlusion, flows to time t."""

from __future__ import annotations

import pytest
import torch

from inbetween.warp import (
    backward_warp,
    flows_at_time,
    forward_splat,
    linear_time_flows,
    occlusion_mask,
    time_flows,
    visibility,
)


def constant_flow(dx: float, dy: float, batch: int = 1, height: int = 16, width: int = 20, dtype=torch.float32):
    flow = torch.empty(batch, 2, height, width, dtype=dtype)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def moving_block(width: int = 40, height: int = 12, start: int = 10, size: int = 10, shift: int = 5):
    """A block of columns ``[start, start + size)`` moving ``shift`` px right over a static background.

    Returns ``(flow_0to1, flow_1to0)``; in frame 1 the block covers background columns
    ``[start + size, start + size + shift)`` and uncovers ``[start, start + shift)``.
    """
    flow_0to1 = torch.zeros(1, 2, height, width)
    flow_0to1[:, 0, :, start : start + size] = shift
    flow_1to0 = torch.zeros(1, 2, height, width)
    flow_1to0[:, 0, :, start + shift : start + shift + size] = -shift
    return flow_0to1, flow_1to0


class TestBackwardWarp:
    def test_zero_flow_is_exact_identity(self):
        image = torch.randn(2, 3, 11, 17)
        assert torch.equal(backward_warp(image, torch.zeros(2, 2, 11, 17)), image)

    @pytest.mark.parametrize("padding_mode", ["border", "zeros"])
    def test_integer_shift_is_exact(self, padding_mode):
        image = torch.randn(2, 3, 16, 20)
        out = backward_warp(image, constant_flow(3, -2, batch=2), padding_mode)
        # out(x, y) = image(x + 3, y - 2)
        assert torch.equal(out[:, :, 2:, :-3], image[:, :, :-2, 3:])

    def test_padding_modes_outside_the_image(self):
        image = torch.randn(1, 3, 8, 10)
        flow = constant_flow(4, 0, height=8, width=10)
        assert torch.equal(backward_warp(image, flow, "zeros")[..., -4:], torch.zeros(1, 3, 8, 4))
        border = backward_warp(image, flow, "border")[..., -4:]
        assert torch.equal(border, image[..., -1:].expand(-1, -1, -1, 4))
        with pytest.raises(ValueError):
            backward_warp(image, flow, "reflection")

    def test_subpixel_shift_of_smooth_image(self):
        height, width = 24, 32
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
        )

        def pattern(x, y):
            return torch.sin(0.15 * x + 0.1 * y) + 0.5 * torch.cos(0.07 * x - 0.12 * y)

        image = pattern(xs, ys)[None, None]
        out = backward_warp(image, constant_flow(0.5, -0.25, height=height, width=width, dtype=torch.float64))
        expected = pattern(xs + 0.5, ys - 0.25)
        # Bilinear error <= fx (1 - fx) / 2 max|f_xx| + fy (1 - fy) / 2 max|f_yy| ~ 4.7e-3 here,
        # against ~0.1 for a sample half a pixel off.
        assert (out[0, 0, 1:-1, 1:-1] - expected[1:-1, 1:-1]).abs().max() < 5e-3

    def test_any_size_and_channels(self):
        for shape in [(1, 1, 1, 1), (3, 5, 7, 9), (2, 2, 13, 4)]:
            image = torch.randn(shape)
            flow = torch.randn(shape[0], 2, *shape[2:]) * 2
            assert backward_warp(image, flow).shape == shape

    def test_gradients_reach_image_and_flow(self):
        torch.manual_seed(0)
        image = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
        # Keep positions off integers, where bilinear sampling has kinks.
        flow = (torch.rand(1, 2, 6, 7, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
        assert torch.autograd.gradcheck(lambda i, f: backward_warp(i, f, "zeros"), (image, flow))
        backward_warp(image, flow).sum().backward()
        assert image.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


class TestForwardSplat:
    def test_zero_flow_is_identity_with_unit_coverage(self):
        values = torch.randn(2, 4, 9, 13)
        splatted, coverage = forward_splat(values, torch.zeros(2, 2, 9, 13))
        assert torch.equal(splatted, values)
        assert torch.equal(coverage, torch.ones(2, 1, 9, 13))

    def test_constant_integer_shift_matches_roll(self):
        values = torch.randn(2, 3, 16, 20)
        splatted, coverage = forward_splat(values, constant_flow(2, 1, batch=2))
        rolled = torch.roll(values, shifts=(1, 2), dims=(2, 3))
        assert torch.equal(splatted[:, :, 1:, 2:], rolled[:, :, 1:, 2:])
        assert torch.equal(coverage[:, :, 1:, 2:], torch.ones(2, 1, 15, 18))
        # Nothing lands on the first row and the first two columns.
        assert coverage[:, :, :1].abs().max() == 0 and coverage[:, :, :, :2].abs().max() == 0
        assert splatted[:, :, :, :2].abs().max() == 0

    def test_subpixel_shift_spreads_bilinearly(self):
        values = torch.zeros(1, 1, 5, 5)
        values[0, 0, 2, 2] = 1.0
        flow = constant_flow(0.25, 0.5, height=5, width=5)
        _, coverage = forward_splat(values, flow, weights=values)
        expected = torch.zeros(5, 5)
        expected[2, 2], expected[2, 3], expected[3, 2], expected[3, 3] = 0.375, 0.125, 0.375, 0.125
        assert torch.allclose(coverage[0, 0], expected)

    def test_collisions_are_weighted_means(self):
        values = torch.tensor([[[[1.0, 5.0, 0.0]]]])
        flow = torch.tensor([[[[1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]]])  # the first pixel lands on the second
        splatted, coverage = forward_splat(values, flow)
        assert splatted[0, 0, 0, 1] == 3.0 and coverage[0, 0, 0, 1] == 2.0
        weights = torch.tensor([[[[3.0, 1.0, 1.0]]]])
        splatted, coverage = forward_splat(values, flow, weights)
        assert splatted[0, 0, 0, 1] == 2.0 and coverage[0, 0, 0, 1] == 4.0
        assert splatted[0, 0, 0, 0] == 0.0 and coverage[0, 0, 0, 0] == 0.0

    def test_gradients_reach_values_flow_and_weights(self):
        torch.manual_seed(0)
        values = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        flow = (torch.rand(1, 2, 5, 6, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
        weights = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 0.5).requires_grad_()
        assert torch.autograd.gradcheck(lambda v, f, w: forward_splat(v, f, w), (values, flow, weights))
        splatted, coverage = forward_splat(values, flow, weights)
        (splatted.sum() + coverage.sum()).backward()
        for tensor in (values, flow, weights):
            assert tensor.grad.abs().sum() > 0


class TestOcclusion:
    def test_consistent_flow_is_visible(self):
        flow = constant_flow(1.5, -0.5)
        mask = occlusion_mask(flow, -flow)
        assert mask.shape == (1, 1, 16, 20) and mask.dtype == torch.float32
        assert torch.equal(mask[..., 1:, :-2], torch.ones(1, 1, 15, 18))
        # Pixels that leave the frame are not visible in frame 1.
        assert mask[..., -1].max() == 0 and mask[..., 0, :].max() == 0

    def test_region_that_disappears_is_flagged(self):
        flow_0to1, flow_1to0 = moving_block()
        mask = occlusion_mask(flow_0to1, flow_1to0)[0, 0]
        covered = torch.zeros(40, dtype=torch.bool)
        covered[20:25] = True  # background the block covers in frame 1
        assert mask[:, covered].max() == 0
        assert mask[:, ~covered].min() == 1
        soft = visibility(flow_0to1, flow_1to0)[0, 0]
        assert soft[:, covered].max() < 1e-3 and soft[:, ~covered].min() == 1

    def test_disoccluded_region_is_flagged_backwards(self):
        flow_0to1, flow_1to0 = moving_block()
        mask = occlusion_mask(flow_1to0, flow_0to1)[0, 0]
        assert mask[:, 10:15].max() == 0  # frame-1 background the block hid in frame 0
        assert mask[:, :10].min() == 1 and mask[:, 15:].min() == 1


class TestFlowsAtTime:
    @pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.8, 1.0])
    def test_constant_translation(self, t):
        d = constant_flow(2.5, -1.25, batch=2, height=24, width=30)
        flow_t0, flow_t1 = flows_at_time(d, -d, t)
        assert flow_t0.shape == flow_t1.shape == (2, 2, 24, 30)
        interior = (slice(None), slice(None), slice(3, -3), slice(4, -4))
        assert torch.allclose(flow_t0[interior], -t * d[interior], atol=1e-5)
        assert torch.allclose(flow_t1[interior], (1 - t) * d[interior], atol=1e-5)

    def test_linear_approximation_is_exact_for_translation(self):
        d = constant_flow(3.0, 1.0)
        flow_t0, flow_t1 = linear_time_flows(d, -d, 0.3)
        assert torch.allclose(flow_t0, -0.3 * d) and torch.allclose(flow_t1, 0.7 * d)

    def test_moving_block_occlusion_reasoning(self):
        flow_0to1, flow_1to0 = moving_block()
        flows = time_flows(flow_0to1, flow_1to0, 0.4)  # block at columns [12, 22)
        block, ahead, behind = slice(12, 22), slice(22, 25), slice(10, 12)
        # The block wins where it lands on background (exactly, away from its edges,
        # where inconsistent background keeps its small floor weight).
        assert torch.allclose(flows.flow_t0[0, 0, :, 15:20], torch.tensor(-2.0))
        assert torch.allclose(flows.flow_t1[0, 0, :, 15:20], torch.tensor(3.0))
        assert torch.allclose(flows.flow_t0[0, 0, :, block], torch.tensor(-2.0), atol=0.1)
        assert torch.allclose(flows.flow_t1[0, 0, :, block], torch.tensor(3.0), atol=0.15)
        # Background the block is about to cover: seen in frame 0 only.
        assert flows.visible_0[0, 0, :, ahead].min() > 0.99 and flows.visible_1[0, 0, :, ahead].max() < 0.01
        assert flows.flow_t0[0, 0, :, ahead].abs().max() < 0.01
        # Background the block has just uncovered: seen in frame 1 only.
        assert flows.visible_1[0, 0, :, behind].min() > 0.99 and flows.visible_0[0, 0, :, behind].max() < 0.01
        assert flows.flow_t1[0, 0, :, behind].abs().max() < 0.01

    def test_block_passing_over_background_seen_in_both_keyframes_stays_in_front(self):
        # The block jumps from columns [4, 10) to [18, 24), so the background it covers at t = 0.5,
        # columns [11, 17), is consistent in both keyframes: only the motion priority puts it behind.
        flow_0to1, flow_1to0 = moving_block(start=4, size=6, shift=14)
        crossed = (0, 0, slice(None), slice(12, 16))
        in_front = time_flows(flow_0to1, flow_1to0, 0.5)
        assert torch.allclose(in_front.flow_t0[crossed], torch.tensor(-7.0), atol=0.05)
        assert torch.allclose(in_front.flow_t1[crossed], torch.tensor(7.0), atol=0.05)
        averaged = time_flows(flow_0to1, flow_1to0, 0.5, motion_priority=0.0)
        assert torch.allclose(averaged.flow_t0[crossed], torch.tensor(-3.5), atol=0.05)

    def test_holes_fall_back_to_linear_motion(self):
        # Both flows tear apart at column 10, so at t = 0.5 nothing lands on columns 9 and 10.
        flow_0to1 = torch.zeros(1, 2, 8, 20)
        flow_0to1[:, 0, :, :10], flow_0to1[:, 0, :, 10:] = -6, 6
        flow_1to0 = 0.5 * flow_0to1
        flows = time_flows(flow_0to1, flow_1to0, 0.5)
        approx_t0, approx_t1 = linear_time_flows(flow_0to1, flow_1to0, 0.5)
        hole = (..., slice(9, 11))
        assert torch.allclose(flows.flow_t0[hole], approx_t0[hole])
        assert torch.allclose(flows.flow_t1[hole], approx_t1[hole])
        assert approx_t0[:, 0, :, 9:11].abs().min() > 0.5  # and differs from either splat
        assert torch.equal(flows.visible_0[hole], torch.ones(1, 1, 8, 2))
        assert torch.equal(flows.visible_1[hole], torch.ones(1, 1, 8, 2))

    def test_gradients_reach_both_flows(self):
        torch.manual_seed(0)
        flow_0to1 = (torch.randn(1, 2, 8, 9) * 2).requires_grad_()
        flow_1to0 = (torch.randn(1, 2, 8, 9) * 2).requires_grad_()
        flows = time_flows(flow_0to1, flow_1to0, 0.3)
        (flows.flow_t0.sum() + flows.flow_t1.sum() + flows.visible_0.sum()).backward()
        assert flow_0to1.grad.abs().sum() > 0 and flow_1to0.grad.abs().sum() > 0
