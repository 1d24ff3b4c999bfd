"""``inbetween evaluate`` end to end, and the metrics it reports."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from inbetween.evaluation import psnr, ssim, warping_error
from tests.conftest import REPO, SHARED_DATA, load_run, run_cli, textured_frames

BESIDE_REPOSITORY = REPO.parent / "shared" / "data" / "real"


def test_psnr_and_ssim_values():
    frame = textured_frames(1)[0][None]
    assert psnr(frame, frame) == pytest.approx(100.0)
    noisy = np.clip(frame.astype(int) + 5, 0, 255).astype(np.uint8)
    assert psnr(noisy, frame) == pytest.approx(10 * np.log10(255 ** 2 / np.mean((noisy.astype(float) - frame) ** 2)))
    assert ssim(frame, frame) == pytest.approx(1.0, abs=1e-4)
    assert ssim(noisy[:, ::-1].copy(), frame) < 0.5


def test_warping_error_is_zero_along_the_true_motion():
    frames = np.stack(textured_frames(3, shift=2))  # texture moves 2 px right per frame
    height, width = frames.shape[1:3]
    flows = np.zeros((2, 2, height, width), np.float32)
    flows[:, 0] = 2.0
    visible = np.zeros((2, height, width), bool)
    visible[:, :, : width - 4] = True
    assert warping_error(frames, flows, visible) < 0.5
    assert warping_error(frames, np.zeros_like(flows), visible) > 5


def read_table(path):
    with open(path) as handle:
        return {(row["subset"], row["method"]): row for row in csv.DictReader(handle)}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data/real")
def test_evaluate_every_dataset_small(tmp_path):
    output = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[world,triplets,videos]", "world.gaps=[2,8]", "world.clips_per_kind=1",
                     "world.size=64", "triplets.limit=1", "videos.max_frames=5", f"data_root={SHARED_DATA}", f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    world, triplets, videos = (read_table(output / f"eval_{name}.csv") for name in ("world", "triplets", "videos"))
    for table in (world, triplets, videos):
        assert {method for _, method in table} == {"linear", "flow_warp", "minterpolate"}
    assert int(world[("gap 8", "flow_warp")]["cases"]) == 8  # one clip of each motion kind
    assert int(triplets[("all", "linear")]["cases"]) == 4  # one triplet of each subset
    assert int(videos[("all", "linear")]["cases"]) == 4  # two videos, 5 frames -> 2 dropped frames each
    for table in (world, triplets, videos):
        for row in table.values():
            assert 5 < float(row["psnr"]) < 100 and 0 < float(row["ssim"]) <= 1
    assert float(world[("gap 2", "flow_warp")]["psnr"]) > float(world[("gap 2", "linear")]["psnr"])
    # world clips know the true flow: flow methods report the end-point error of theirs, growing with the gap
    assert 0 < float(world[("gap 2", "flow_warp")]["flow_epe"]) < float(world[("gap 8", "flow_warp")]["flow_epe"])
    assert world[("gap 2", "linear")]["flow_epe"] == "" and triplets[("all", "flow_warp")]["flow_epe"] == ""
    assert "## triplets" in result.stdout and "| subset | method |" in result.stdout
    assert load_run(output)["metrics"]["world.flow_warp.psnr"] > 0


def test_evaluate_unknown_method_and_missing_data(tmp_path):
    result = run_cli("evaluate", "methods=[linear,magic]", "datasets=[world]", f"output_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "unknown method 'magic'" in result.stderr
    result = run_cli("evaluate", "datasets=[triplets]", f"data_root={tmp_path / 'nowhere'}", f"output_dir={tmp_path}",
                     cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.skipif(not BESIDE_REPOSITORY.is_dir(), reason="needs ../shared/data/real beside the repository")
def test_real_data_is_found_beside_the_repository_from_any_folder(tmp_path):
    """``tmp_path`` has no ../shared: the default data_root is the repository's, not the current folder's."""
    env = {"INBETWEEN_DATA": ""}
    result = run_cli("evaluate", "datasets=[triplets]", "methods=[linear]", "triplets.limit=1",
                     f"output_dir={tmp_path / 'out'}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert load_run(tmp_path / "out")["config"]["data_root"] == str(BESIDE_REPOSITORY)


def test_missing_data_names_the_path_tried(tmp_path):
    result = run_cli("evaluate", "datasets=[triplets]", f"output_dir={tmp_path / 'out'}", cwd=tmp_path,
                     env={"INBETWEEN_DATA": str(tmp_path / "nowhere")})
    assert result.returncode == 2
    assert f"triplet folder '{tmp_path / 'nowhere' / 'adacof_testsets'}' does not exist" in result.stderr
    assert "INBETWEEN_DATA" in result.stderr


def test_each_flow_using_interpolator_runs_with_each_flow_in_one_run(tmp_path):
    output = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[world]", "world.gaps=[8]", "world.clips_per_kind=1", "world.size=48",
                     "methods=[linear,flow_warp]", "interpolation_flows=[dis,farneback]", f"output_dir={output}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_table(output / "eval_world.csv")
    assert {method for _, method in table} == {"linear", "flow_warp+dis", "flow_warp+farneback"}
    dis, farneback = (table[("gap 8", f"flow_warp+{flow}")] for flow in ("dis", "farneback"))
    assert dis["flow_epe"] != farneback["flow_epe"] and dis["psnr"] != farneback["psnr"]
    assert table[("gap 8", "linear")]["flow_epe"] == ""


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data/real")
def test_shot_datasets_score_each_interpolator_with_and_without_the_neighbours(tmp_path):
    output = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[world_shots,video_shots]", "methods=[linear,flow_warp]",
                     "world_shots.clips_per_kind=1", "world_shots.size=32", "world_shots.between=3",
                     "videos.max_frames=13", f"data_root={SHARED_DATA}", f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    world, videos = (read_table(output / f"eval_{name}.csv") for name in ("world_shots", "video_shots"))
    for table in (world, videos):
        assert {method for _, method in table} == {"linear", "flow_warp", "flow_warp+neighbours"}
        assert {subset for subset, _ in table} >= {"first gap", "middle gap", "last gap", "all"}
    assert int(world[("ease", "flow_warp+neighbours")]["cases"]) == 3  # one shot of 4 keyframes per kind
    assert int(world[("middle gap", "linear")]["cases"]) == 8
    assert int(videos[("all", "flow_warp")]["cases"]) == 6  # two videos, 13 frames: one shot of 3 gaps each
    # without neighbours it is flow_warp as on any gap; with them, other frames
    assert world[("all", "flow_warp")]["psnr"] != world[("all", "flow_warp+neighbours")]["psnr"]
    assert float(world[("all", "flow_warp")]["psnr"]) > float(world[("all", "linear")]["psnr"])


def _lossless_video(path, frames):
    """Write uint8 ``frames`` ``(N, H, W, 3)`` to ``path`` with FFV1 (lossless), for exact comparisons."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), frames.shape[2:0:-1], pix_fmt_in="rgb24", pix_fmt_out="bgr0",
                                         codec="ffv1", macro_block_size=1)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def test_videos_read_from_first_frame_on_and_name_cases_by_their_frame_in_the_video(tmp_path):
    from inbetween.errors import InbetweenError
    from inbetween.evaluation import video_cases, video_shot_cases

    frames = np.random.default_rng(0).integers(0, 256, (20, 16, 24, 3), dtype=np.uint8)
    _lossless_video(tmp_path / "clip.mkv", frames)
    cases = list(video_cases([str(tmp_path)], max_frames=5, first_frame=11))  # frames 11 .. 15
    assert [case.name for case in cases] == ["clip-0012", "clip-0014"]
    np.testing.assert_array_equal(cases[1].keys, frames[[13, 15]])
    np.testing.assert_array_equal(cases[1].truth, frames[14:15])
    shots = list(video_shot_cases([str(tmp_path)], max_frames=9, keyframes=3, stride=2, first_frame=11))
    assert [case.name for case in shots] == ["clip-0011 gap 1", "clip-0011 gap 2", "clip-0015 gap 1", "clip-0015 gap 2"]
    np.testing.assert_array_equal(shots[3].keys, frames[[17, 19]])
    assert [case.name for case in video_cases([str(tmp_path)], max_frames=3)] == ["clip-0001"]
    with pytest.raises(InbetweenError, match="first_frame must be 0 or more"):
        next(video_cases([str(tmp_path)], max_frames=3, first_frame=-1))
    with pytest.raises(InbetweenError, match="ends before videos.first_frame=20"):
        next(video_shot_cases([str(tmp_path)], max_frames=3, keyframes=2, stride=2, first_frame=20))
