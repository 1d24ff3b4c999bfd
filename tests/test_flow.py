"""flow: OpenCV estimators, end-point error, colour coding."""

from __future__ import annotations

import os

import cv2
import hydra.utils
import numpy as np
import pytest
import torch

from flow import DISFlow, FarnebackFlow, FlowEstimator, endpoint_error, flow_to_color, save_flow_png
from flow.viz import color_wheel
from inbetween.errors import InbetweenError

HEIGHT, WIDTH = 96, 128


def smooth_texture(seed: int = 0, height: int = HEIGHT, width: int = WIDTH, sigma: float = 2.0) -> np.ndarray:
    """A smooth random RGB texture, float32 in [0, 1], ``(H, W, 3)``."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (height, width, 3)).astype(np.float32), (0, 0), sigma)
    return (noise - noise.min()) / (noise.max() - noise.min())


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by ``(dx, dy)`` px (so the true flow is ``(dx, dy)``)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def to_tensor(*images: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` [0, 1] arrays -> ``(B, 3, H, W)`` in [-1, 1]."""
    return torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in images]) * 2 - 1


def constant(dx: float, dy: float, batch: int = 1, height: int = HEIGHT, width: int = WIDTH) -> torch.Tensor:
    return torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1).expand(batch, 2, height, width)


def interior(margin: int = 10, batch: int = 1) -> torch.Tensor:
    mask = torch.zeros(batch, 1, HEIGHT, WIDTH)
    mask[..., margin:-margin, margin:-margin] = 1
    return mask


ESTIMATORS = [(DISFlow, 0.25), (FarnebackFlow, 0.5)]


@pytest.mark.parametrize(("estimator", "bound"), ESTIMATORS)
@pytest.mark.parametrize("shift", [(1.7, -0.6), (-0.4, 0.3), (4.3, 2.2)])
def test_subpixel_shift_is_recovered(estimator, bound, shift):
    image = smooth_texture()
    flow = estimator()(to_tensor(image), to_tensor(shifted(image, *shift)))
    assert flow.shape == (1, 2, HEIGHT, WIDTH) and flow.dtype == torch.float32
    assert endpoint_error(flow, constant(*shift), interior()) < bound


def test_dis_follows_large_motion_coarse_to_fine():
    image = smooth_texture(seed=1)
    flow = DISFlow()(to_tensor(image), to_tensor(shifted(image, 9.4, -6.2)))
    assert endpoint_error(flow, constant(9.4, -6.2), interior(margin=16)) < 0.5


@pytest.mark.parametrize("estimator", [DISFlow, FarnebackFlow])
def test_batch_items_are_independent_and_bidirectional(estimator):
    first, second = smooth_texture(seed=2), smooth_texture(seed=3)
    image0 = to_tensor(first, second)
    image1 = to_tensor(shifted(first, 2.0, 0.5), shifted(second, -1.0, 1.5))
    forward, backward = estimator().bidirectional(image0, image1)
    mask = interior()
    for item, shift in enumerate([(2.0, 0.5), (-1.0, 1.5)]):
        assert endpoint_error(forward[item : item + 1], constant(*shift), mask) < 0.5
        assert endpoint_error(backward[item : item + 1], constant(-shift[0], -shift[1]), mask) < 0.5


@pytest.mark.parametrize("estimator", [DISFlow, FarnebackFlow])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 7), (13, 31)])
def test_tiny_and_odd_sizes(estimator, height, width):
    image = torch.rand(2, 3, height, width) * 2 - 1
    flow = estimator()(image, image.flip(-1))
    assert flow.shape == (2, 2, height, width) and torch.isfinite(flow).all()


def test_instantiable_by_hydra_with_plain_numbers():
    dis = hydra.utils.instantiate(
        {"_target_": "flow.DISFlow", "preset": "fast", "patch_size": 8, "variational_alpha": 20.0}
    )
    farneback = hydra.utils.instantiate({"_target_": "flow.FarnebackFlow", "winsize": 9})
    assert isinstance(dis, FlowEstimator) and isinstance(farneback, FlowEstimator)
    image = to_tensor(smooth_texture())
    assert dis(image, image).abs().max() < 0.05
    with pytest.raises(InbetweenError, match="preset"):
        DISFlow(preset="slow")
    with pytest.raises(InbetweenError, match="same size"):
        dis(image, image[..., :-1])


class TestEndpointError:
    def test_mean_of_vector_lengths(self):
        gt = torch.zeros(2, 2, 4, 5)
        pred = gt.clone()
        pred[:, 0], pred[:, 1] = 3.0, 4.0
        assert endpoint_error(pred, gt) == pytest.approx(5.0)
        assert endpoint_error(gt, gt) == 0.0

    def test_mask_selects_pixels(self):
        gt = torch.zeros(1, 2, 4, 4)
        pred = gt.clone()
        pred[:, 0, :2] = 2.0  # wrong by 2 px in the top half only
        top = torch.zeros(1, 1, 4, 4)
        top[..., :2, :] = 1
        assert endpoint_error(pred, gt, top) == pytest.approx(2.0)
        assert endpoint_error(pred, gt, 1 - top) == 0.0
        assert endpoint_error(pred, gt) == pytest.approx(1.0)
        assert endpoint_error(pred, gt, top[:, 0].bool()) == pytest.approx(2.0)
        with pytest.raises(ValueError):
            endpoint_error(pred, gt, torch.zeros(1, 1, 4, 4))


def hue_degrees(rgb: np.ndarray) -> float:
    """OpenCV hue of one uint8 RGB colour, in degrees."""
    return float(cv2.cvtColor(rgb.reshape(1, 1, 3), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]) * 360 / 256


def saturation(rgb: np.ndarray) -> float:
    rgb = rgb.astype(float)
    return 1 - rgb.min() / rgb.max()


class TestFlowToColor:
    def test_zero_flow_is_white(self):
        assert (flow_to_color(torch.zeros(2, 3, 4)) == 255).all()
        assert (flow_to_color(torch.zeros(1, 2, 3, 4), max_magnitude=1.0) == 255).all()

    def test_wheel_is_the_middlebury_one(self):
        wheel = color_wheel()
        assert wheel.shape == (55, 3)
        assert list(wheel[0]) == [255, 0, 0] and list(wheel[15]) == [255, 255, 0] and list(wheel[21]) == [0, 255, 0]

    def test_direction_sets_hue_and_magnitude_sets_saturation(self):
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        for angle in angles:
            flow = torch.zeros(2, 1, 3)
            for column, magnitude in enumerate((1.0, 2.0, 4.0)):
                flow[0, 0, column], flow[1, 0, column] = magnitude * np.cos(angle), magnitude * np.sin(angle)
            colors = flow_to_color(flow)[0]
            hues = [hue_degrees(color) for color in colors]
            # Same direction: same hue (within quantisation); longer: more saturated.
            assert max(abs((h - hues[2] + 180) % 360 - 180) for h in hues) < 4
            assert saturation(colors[0]) < saturation(colors[1]) < saturation(colors[2]) == pytest.approx(1.0)
        directions = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}
        hues = {}
        for name, (dx, dy) in directions.items():
            flow = torch.tensor([dx, dy], dtype=torch.float32).view(2, 1, 1)
            hues[name] = hue_degrees(flow_to_color(flow)[0, 0])
        assert hues["right"] < 10 or hues["right"] > 350  # red
        assert 150 < hues["left"] < 210  # cyan-ish, opposite red
        assert 30 < hues["down"] < 70  # orange-yellow
        assert 240 < hues["up"] < 280  # blue-violet

    def test_max_magnitude_saturates_and_clips(self):
        flow = torch.tensor([[[1.0, 2.0, 4.0]], [[0.0, 0.0, 0.0]]])
        colors = flow_to_color(flow, max_magnitude=2.0)[0]
        assert saturation(colors[1]) == pytest.approx(1.0) and colors[1].max() == 255
        assert colors[2].max() < 255  # beyond the maximum: darkened


def test_save_flow_png_is_atomic_and_readable(tmp_path):
    flow = torch.randn(1, 2, 9, 11)
    path = tmp_path / "flow.png"
    save_flow_png(flow, path)
    save_flow_png(flow, path)  # overwriting works
    assert os.listdir(tmp_path) == ["flow.png"]
    written = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(written, flow_to_color(flow))
