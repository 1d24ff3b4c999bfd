import os

import numpy as np
import pytest
import torch

from inbetween.errors import InbetweenError
from inbetween.video import (atomic_path, contact_sheet, from_uint8, mp4_writer, probe_video, read_image, read_video,
                             to_uint8, upscale, viewing_scale, write_gif, write_mp4, write_png)
from tests.conftest import textured_frames


def test_uint8_round_trip_is_exact():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    images = from_uint8(pixels)
    assert images.shape == (2, 3, 5, 7) and images.min() >= -1 and images.max() <= 1
    assert np.array_equal(to_uint8(images), pixels)


def test_from_uint8_keeps_a_tensor_on_its_device():
    """A training batch on the GPU is converted where it is (``meta`` stands in for a device NumPy cannot read)."""
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8))
    assert torch.equal(from_uint8(pixels), from_uint8(pixels.numpy()))
    on_device = from_uint8(pixels.to("meta"))
    assert on_device.device.type == "meta" and on_device.shape == (2, 3, 5, 7) and on_device.dtype == torch.float32


def test_png_round_trip_and_no_temporary_left(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", pixels)
    assert np.array_equal(read_image(tmp_path / "a.png"), pixels)
    assert os.listdir(tmp_path) == ["a.png"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_read_image_converts_grey_and_rgba(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "grey.png"), np.full((4, 4), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([np.full((4, 4, 3), (10, 20, 30), np.uint8), np.zeros((4, 4), np.uint8)]))
    assert (read_image(tmp_path / "grey.png") == 77).all()
    assert tuple(read_image(tmp_path / "rgba.png")[0, 0]) == (30, 20, 10)


def test_read_image_errors(tmp_path):
    with pytest.raises(InbetweenError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InbetweenError, match="could not be read"):
        read_image(tmp_path / "bad.png")


def test_mp4_is_h264_with_every_frame(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (6, 33, 45, 3), dtype=np.uint8)
    write_mp4(tmp_path / "v.mp4", frames, fps=12)
    assert probe_video(tmp_path / "v.mp4") == {"codec": "h264", "width": 46, "height": 34}
    assert len(read_video(tmp_path / "v.mp4")) == 6


def test_gif_has_every_frame(tmp_path):
    import imageio.v3 as iio

    frames = np.zeros((5, 8, 8, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(5)[:, None, None] * 50
    write_gif(tmp_path / "v.gif", frames, fps=10)
    assert iio.imread(tmp_path / "v.gif", index=None).shape[0] == 5


def test_upscale_and_contact_sheet():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(upscale(frame, 2)[::2, ::2], frame)
    sheet = contact_sheet([np.zeros((64, 64, 3), np.uint8)] * 5, ["a caption"] * 5, columns=4, tile=128)
    assert sheet.shape[1] == 4 * 128 + 8 and sheet.shape[0] > 2 * 128
    assert (sheet[4:132, 4:132] == 0).all()


@pytest.mark.parametrize("height, width, scale", [(64, 64, 4), (128, 128, 2), (48, 64, 6), (256, 300, 1),
                                                  (768, 1024, 1), (300, 100, 3)])
def test_auto_viewing_scale_brings_the_short_side_to_256(height, width, scale):
    assert viewing_scale("auto", height, width) == scale
    assert viewing_scale(3, height, width) == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, "big", True])
def test_bad_viewing_scale_names_the_setting(bad):
    with pytest.raises(InbetweenError, match="output.scale must be 'auto' or a whole number"):
        viewing_scale(bad, 64, 64)


def test_streamed_mp4_appears_only_when_complete(tmp_path):
    frames = np.stack(textured_frames(4, 31, 45))  # odd sizes are padded to even for yuv420p
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError, match="stopped"):
        with mp4_writer(path, 31, 45, fps=12) as send:
            send(frames[0])
            raise RuntimeError("stopped")
    assert not list(tmp_path.iterdir())
    with mp4_writer(path, 31, 45, fps=12) as send:
        for frame in frames:
            send(frame)
    assert probe_video(path) == {"codec": "h264", "width": 46, "height": 32}
    assert len(read_video(path)) == 4
