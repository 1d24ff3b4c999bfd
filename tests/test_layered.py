"""Layered real photographs (inbetween.layered): exact flow, reproducible clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from inbetween.layered import Motion, photo_paths, random_clip
from inbetween.video import from_uint8
from inbetween.warp import backward_warp
from tests.conftest import SHARED_DATA

PHOTOS = SHARED_DATA / "train" / "photos"
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/real/train/photos")


def test_motion_is_identity_at_zero_and_composes_its_parts():
    motion = Motion(centre=(10.0, 20.0), shift=(6.0, -4.0), angle=np.pi / 2, zoom=2.0)
    assert np.allclose(motion.matrix(0.0), np.eye(3))
    # at t = 1 the centre moves by the shift, and a point 1 px right of it turns a quarter and doubles
    centre, right = motion.matrix(1.0) @ [10, 20, 1], motion.matrix(1.0) @ [11, 20, 1]
    assert np.allclose(centre[:2], [16, 16]) and np.allclose(right[:2] - centre[:2], [0, 2])


def _warp_error(clip, t0: float, t1: float, flow: np.ndarray) -> np.ndarray:
    """Mean absolute 8-bit error ``(H, W)`` between the frame at ``t0`` and the frame at ``t1`` warped back
    along ``flow``; both blurred first (sigma 1.5 px), so that resampling detailed photographs twice
    (rendering, then warping) does not hide how well the flow lines them up."""
    frame0, frame1 = (from_uint8(cv2.GaussianBlur(clip.render(t), (0, 0), 1.5))[None] for t in (t0, t1))
    warped = backward_warp(frame1, torch.from_numpy(flow)[None])
    return ((warped - frame0).abs().mean(dim=1)[0] * 127.5).numpy()


@needs_photos
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_back_along_the_flow_reproduces_the_frame_where_visible(seed):
    clip = random_clip(photo_paths(PHOTOS), seed, 96, 128)
    for t0, t1 in ((0.0, 1.0), (1.0, 0.0), (0.25, 0.75)):
        flow, visible = clip.flow_and_visible(t0, t1)
        assert flow.shape == (2, 96, 128) and visible.shape == (96, 128)
        error = _warp_error(clip, t0, t1, flow)[visible].mean()
        one_pixel_off = _warp_error(clip, t0, t1, flow + np.float32([1, 0])[:, None, None])[visible].mean()
        assert error < 3.5 and error < 0.8 * one_pixel_off, (seed, t0, t1, error, one_pixel_off)
        if (~visible).sum() > 50:  # hidden at t1: the flow says where they went, but nothing shows them
            assert _warp_error(clip, t0, t1, flow)[~visible].mean() > 3 * error
    assert np.abs(clip.flow(0.0, 1.0)).max() > 8  # layers do move


@needs_photos
def test_same_seed_same_clip_other_seed_other_clip():
    photos = photo_paths(PHOTOS)
    first = random_clip(photos, 5, 64).render(0.5)
    assert np.array_equal(first, random_clip(photos, 5, 64).render(0.5))
    assert not np.array_equal(first, random_clip(photos, 6, 64).render(0.5))


def test_missing_photo_folder_names_it(tmp_path):
    from inbetween.errors import InbetweenError

    with pytest.raises(InbetweenError, match=f"photo folder '{tmp_path / 'none'}' does not exist"):
        photo_paths(tmp_path / "none")
    with pytest.raises(InbetweenError, match="no photographs"):
        photo_paths(tmp_path)
