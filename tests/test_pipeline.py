"""The pipeline's frame loop: frames stream to disk as they are made, progress goes frame by
frame, and a huge run is announced before it starts."""

from __future__ import annotations

import io

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tqdm import tqdm

from flow import DISFlow
from inbetween.pipeline import FrameWriter, KeyframePlan, Stages, fill_shot, large_run_notice, make_keyframes
from inbetween.storyboard import Shot, Storyboard
from inbetween.video import from_uint8, read_image, to_uint8, write_png
from interpolate import FlowWarpInterpolator, LinearInterpolator
from keyframes import ImageKeyframes, WorldKeyframes
from tests.conftest import textured_frames


@pytest.mark.parametrize("interpolator", [LinearInterpolator(), FlowWarpInterpolator()], ids=lambda i: i.name)
def test_one_time_per_call_gives_the_frames_of_all_at_once(interpolator):
    """What lets the pipeline ask these interpolators for one frame at a time."""
    assert interpolator.times_per_call == 1
    left, right = (from_uint8(frame)[None] for frame in textured_frames(2, 32, 48, shift=4))
    flow_lr, flow_rl = DISFlow().bidirectional(left, right)
    times = [0.25, 0.5, 0.75]
    together = interpolator(left, right, flow_lr, flow_rl, times)
    one_by_one = torch.cat([interpolator(left, right, flow_lr, flow_rl, [t]) for t in times], dim=1)
    assert torch.equal(together, one_by_one)


def test_frames_stream_to_disk_and_progress_counts_each_frame(tmp_path):
    keys = from_uint8(np.stack(textured_frames(3, 32, 48)))
    shot = Shot(("a", "b", "c"), between=5)
    stages = Stages(ImageKeyframes(), DISFlow(), FlowWarpInterpolator())
    (tmp_path / "flow").mkdir()
    shown = io.StringIO()
    progress = tqdm(total=10, file=shown, mininterval=0, miniters=1, ascii=True)
    with FrameWriter(tmp_path, shot.frame_count, 32, 48, fps=12, scale=2, gif_max_frames=5) as writer:
        added = []
        original_add = writer.add

        def add_and_look(frames):
            original_add(frames)
            added.append(len(list((tmp_path / "frames").iterdir())))  # on disk before the next frame is made

        writer.add = add_and_look
        with torch.inference_mode():
            fill_shot(keys, shot, stages, writer, first_key=4, progress=progress)
        assert not (tmp_path / "video.mp4").exists()  # the videos appear when the writer closes
    assert added == list(range(1, shot.frame_count + 1))
    assert all(f"{done}/10" in shown.getvalue() for done in range(1, 11))
    assert sorted(path.name for path in (tmp_path / "flow").iterdir()) == ["04-05.png", "05-06.png"]
    assert np.array_equal(read_image(tmp_path / "frames" / "000012.png"), textured_frames(3, 32, 48)[2])
    gif = iio.imread(tmp_path / "video.gif", index=None)
    assert writer.gif_stride == 3 and gif.shape == (5, 64, 96, 3)  # frames 0, 3, 6, 9, 12, upscaled 2x


def test_a_huge_run_is_announced():
    assert large_run_notice(9, 768, 1024, gif_stride=1) is None
    notice = large_run_notice(20001, 768, 1024, gif_stride=84)
    assert notice.startswith("this run makes 20001 frames of 1024x768 (47.2 GB of raw pixels)")
    assert "every 84th frame" in notice and "written to disk as they are made" in notice


def test_own_pictures_are_taken_as_they_are_and_the_rest_drawn(tmp_path):
    own = textured_frames(1, 64, 64)[0]
    write_png(tmp_path / "own.png", own)
    prompts = ("a large red circle at the left on a black background", "mine", "a small blue square on a white background")
    storyboard = Storyboard((Shot(prompts[:2], 3, (None, str(tmp_path / "own.png"))), Shot(prompts[2:], 3)), fps=12)
    world = WorldKeyframes(size=64)
    keys = make_keyframes(storyboard, world, seed=0, plan=KeyframePlan([1, 1, 2]))
    assert np.array_equal(to_uint8(keys[0][1]), own)
    assert torch.equal(keys[0][0], world([prompts[0]], 1)[0]) and torch.equal(keys[1][0], world([prompts[2]], 2)[0])
