"""End to end through the installed ``inbetween`` console script."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from inbetween.diffusion import resolve_precision
from inbetween.video import probe_video, read_image, write_png
from tests.conftest import load_run, run_cli, started_cli, textured_frames

OUTPUTS = ["keyframes", "frames", "flow", "video.mp4", "video.gif", "storyboard.png", "run.json"]

TWO_SHOTS = """
fps: 8
between: 2
shots:
  - prompts:
      - a large red circle at the left on a black background
      - a large red circle at the center on a black background
      - a large red circle at the right on a black background
  - prompts:
      - a small blue square at the top on a white background
      - a small blue square at the bottom on a white background
    between: 1
"""


def frame_files(output: Path) -> list[Path]:
    return sorted((output / "frames").glob("*.png"))


def test_interpolate_three_keyframes(tmp_path, keyframe_files):
    output = tmp_path / "out"
    images = "[" + ",".join(str(p) for p in keyframe_files) + "]"
    result = run_cli("interpolate", f"images={images}", "between=3", f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (output / name).exists(), name
    frames = frame_files(output)
    assert [p.name for p in frames] == [f"{i:06d}.png" for i in range(9)]
    for key_index, frame_index in enumerate([0, 4, 8]):
        key = read_image(output / "keyframes" / f"{key_index:02d}.png")
        assert np.array_equal(key, read_image(keyframe_files[key_index]))
        assert np.array_equal(read_image(frames[frame_index]), key)
    # output.scale=auto: the short side 48 is upscaled 6x to reach 256
    assert probe_video(output / "video.mp4") == {"codec": "h264", "width": 384, "height": 288}
    assert sorted(p.name for p in (output / "flow").iterdir()) == ["00-01.png", "01-02.png"]
    run = load_run(output)
    assert run["frame_count"] == 9 and run["choices"]["interpolate"] == "flow_warp"
    assert run["viewing_scale"] == 6 and run["warnings"] == [] and run["precision"] == {}
    assert not list(output.glob(".staging-*"))


def test_generate_world_storyboard_with_cut(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(TWO_SHOTS)
    output = tmp_path / "out"
    result = run_cli("generate", "keyframes=world", f"storyboard={board}", "keyframes.size=64",
                     f"output_dir={output}", "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = frame_files(output)
    assert len(frames) == (3 - 1) * 3 + 1 + (2 - 1) * 2 + 1 == 10
    keys = [read_image(output / "keyframes" / f"{k:02d}.png") for k in range(5)]
    # keyframe k of shot one is frame 3k; shot two starts at frame 7 (a cut: no blend of red into blue)
    for key, frame_index in zip(keys, [0, 3, 6, 7, 9]):
        assert np.array_equal(read_image(frames[frame_index]), key)
    assert read_image(frames[6])[:, :, 2].max() < 100  # last frame of shot one: red on black, no blue
    assert (read_image(frames[8]) > 100).mean() > 0.5  # the in-between of shot two is on white
    metrics = load_run(output)["metrics"]
    assert metrics["faithfulness_all_correct"] == 1.0
    assert probe_video(output / "video.mp4") == {"codec": "h264", "width": 256, "height": 256}


def test_default_generate_runs_the_demo(tmp_path):
    result = run_cli("generate", "between=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs" / "generate").iterdir()
    run = load_run(run_dir)
    assert run["keyframe_count"] == 6 and run["metrics"]["faithfulness_all_correct"] == 1.0
    # between=1 on the command line sets every shot's in-betweens (the file says 7, its second shot 11)
    assert len(frame_files(run_dir)) == run["frame_count"] == 2 * ((3 - 1) * 2 + 1)
    assert run["precision"] == {"keyframes": resolve_precision("auto", "cpu")}


def test_between_0_gives_the_keyframes_alone(tmp_path):
    output = tmp_path / "out"
    result = run_cli("generate", "keyframes=world", "keyframes.size=32", "between=0", f"output_dir={output}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = frame_files(output)
    assert len(frames) == load_run(output)["frame_count"] == 6
    assert all(np.array_equal(read_image(frame), read_image(output / "keyframes" / f"{k:02d}.png"))
               for k, frame in enumerate(frames))
    assert not list((output / "flow").iterdir())


def test_same_seed_same_pixels(tmp_path, keyframe_files):
    images = "[" + ",".join(str(p) for p in keyframe_files[:2]) + "]"
    outputs = []
    for name in ("a", "b"):
        result = run_cli("interpolate", f"images={images}", "between=2", "seed=5", f"output_dir={tmp_path / name}",
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append([read_image(p) for p in frame_files(tmp_path / name)])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))


def bad_input_cases(tmp_path: Path, keyframe_files: list[Path]) -> dict[str, tuple[list[str], str]]:
    """name -> (command-line arguments, words the error must contain)."""
    small = tmp_path / "small.png"
    write_png(small, textured_frames(1, 20, 30)[0])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("shots: [prompts: [a, b]\n")
    no_shots = tmp_path / "noshots.yaml"
    no_shots.write_text("fps: 3\n")
    a, b = (str(p) for p in keyframe_files[:2])
    return {
        "no images": (["interpolate"], "images is not set; pass images=VALUE"),
        "pretrained keyframes without model": (["generate", "keyframes=pretrained"], "keyframes.model is not set"),
        "evaluate pretrained keyframes without model": (["evaluate", "keyframe_methods=[world,pretrained]",
                                                         "datasets=[captions]"],
                                                        "pass +keyframe_method_options.pretrained.model=VALUE"),
        "missing image": (["interpolate", f"images=[{a},{tmp_path / 'nope.png'}]"], "does not exist"),
        "unreadable image": (["interpolate", f"images=[{a},{broken}]"], "could not be read"),
        "different sizes": (["interpolate", f"images=[{a},{small}]"], "same size"),
        "one keyframe": (["interpolate", f"images=[{a}]"], "two or more"),
        "negative between": (["interpolate", f"images=[{a},{b}]", "between=-1"], "0 or more"),
        "invalid yaml": (["generate", f"storyboard={invalid}"], "not valid YAML"),
        "no shots": (["generate", f"storyboard={no_shots}"], "'shots'"),
        "unknown caption word": (["generate", "keyframes=world", "storyboard=[a huge red circle]"], "huge"),
        "unknown option": (["generate", "interpolate=magic"], "Could not find 'interpolate/magic'"),
        "unknown key": (["generate", "betwen=3"], "betwen"),
        "unknown stage key": (["generate", "flow.presett=fast"], "presett"),
        "unknown command": (["render"], "unknown command 'render'"),
    }


@pytest.mark.parametrize("case", ["no images", "pretrained keyframes without model",
                                  "evaluate pretrained keyframes without model",
                                  "missing image", "unreadable image", "different sizes", "one keyframe",
                                  "negative between", "invalid yaml", "no shots", "unknown caption word",
                                  "unknown option", "unknown key", "unknown stage key", "unknown command"])
def test_bad_input_exits_2_with_clear_message(tmp_path, keyframe_files, case):
    args, words = bad_input_cases(tmp_path, keyframe_files)[case]
    output = tmp_path / "out"
    result = run_cli(*args, f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()  # not even Hydra's .hydra/ and log: nothing that looks like a run


def test_a_failed_run_keeps_an_existing_output_dir_and_its_files(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    result = run_cli("interpolate", f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert sorted(path.name for path in output.iterdir()) == ["notes.txt"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write into, root included (the immutable attribute where root runs the tests)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    root = os.geteuid() == 0
    locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True) if root else folder.chmod(0o555)
    if root and locked.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {locked.stderr.decode().strip()}")
    yield folder
    if root:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_output_dir_that_cannot_be_written_exits_2(tmp_path, read_only_folder):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = {a_file: "is a file, not a folder", a_file / "run": "cannot be made: '" + str(a_file) + "' is a file",
             read_only_folder / "run": "cannot be written", read_only_folder: "cannot be written"}
    for output, words in cases.items():
        result = run_cli("generate", "keyframes=world", f"output_dir={output}", cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"output_dir '{output}'" in result.stderr and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not list(read_only_folder.iterdir())


def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_run(tmp_path):
    output = tmp_path / "out"
    with started_cli("generate", "keyframes=world", "keyframes.size=256", "between=3000", f"output_dir={output}",
                     cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        deadline = time.monotonic() + 120
        while not list(output.glob(".staging-*/frames/000010.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert stderr.strip().splitlines()[-1] == "inbetween: interrupted." and "Traceback" not in stderr
    assert not output.exists()
    # announced before it started: 12006 frames of 256x256 are 2.4 GB of raw pixels
    assert "12006 frames of 256x256" in stdout + stderr


def test_ctrl_c_while_the_command_loads_prints_one_line_and_exits_130(tmp_path):
    """Half a second in, the command is still importing torch and Hydra (or, on a fast machine, has
    just started the run): either way one line, no traceback."""
    with started_cli("generate", "keyframes=world", "between=0", f"output_dir={tmp_path / 'out'}", cwd=tmp_path,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "inbetween: interrupted." and "Traceback" not in stderr


def test_multirun_sweep_leaves_summary_table(tmp_path, keyframe_files):
    images = "[" + ",".join(str(p) for p in keyframe_files[:2]) + "]"
    sweep = tmp_path / "sweep"
    result = run_cli("interpolate", "--multirun", f"images={images}", "between=1,2", "interpolate=linear,flow_warp",
                     f"output_dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert {(r["between"], r["interpolate"]) for r in rows} == {(b, i) for b in "12" for i in ("linear", "flow_warp")}
    assert all(float(r["metrics.interpolated_fps"]) > 0 for r in rows)
    header = (sweep / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| job |") and "| between |" in header and "| interpolate |" in header
    plot = read_image(sweep / "summary.png")  # a bar chart per metric
    assert plot.ndim == 3 and plot.shape[0] > 200 and plot.std() > 0


def test_redo_one_keyframe_keeps_the_others_and_is_reproducible_from_its_seed(tmp_path):
    storyboard = "storyboard=[a red circle at the left, a red circle at the center, a red circle at the right]"
    first, redone, fresh = tmp_path / "first", tmp_path / "redone", tmp_path / "fresh"
    assert run_cli("generate", storyboard, "between=0", f"output_dir={first}", cwd=tmp_path).returncode == 0
    result = run_cli("generate", storyboard, "between=0", f"reuse={first}", "redo=[1]", f"output_dir={redone}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    keyframe = lambda run, k: (run / "keyframes" / f"{k:02d}.png").read_bytes()  # noqa: E731
    assert keyframe(redone, 0) == keyframe(first, 0) and keyframe(redone, 2) == keyframe(first, 2)
    assert keyframe(redone, 1) != keyframe(first, 1)
    seeds = load_run(redone)["keyframe_seeds"]
    assert seeds[0] == seeds[2] == load_run(first)["keyframe_seeds"][1] != seeds[1]
    assert load_run(redone)["reused_keyframes"] == [0, 2]
    result = run_cli("generate", storyboard, "between=0", f"keyframe_seeds=[{','.join(map(str, seeds))}]",
                     f"output_dir={fresh}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert keyframe(fresh, 1) == keyframe(redone, 1)


@pytest.mark.parametrize("args, words", [
    (["redo=[1]"], "add reuse=EARLIER_OUTPUT_DIR"),
    (["reuse={first}", "redo=[5]"], "outside 0..2"),
    (["reuse={nowhere}"], "is not a finished run"),
    (["reuse={first}", "storyboard=[a red circle, a blue circle at the center, a red circle at the right]"],
     "prompts of keyframes [0, 1] differ"),
    (["keyframe_seeds=[1,2]"], "2 seeds for 3 keyframes"),
], ids=["redo without reuse", "redo out of range", "reuse not a run", "changed prompt", "seeds count"])
def test_redo_mistakes_exit_2(tmp_path, args, words):
    first = tmp_path / "first"
    storyboard = "storyboard=[a red circle at the left, a red circle at the center, a red circle at the right]"
    assert run_cli("generate", "keyframes=world", storyboard, "between=0", f"output_dir={first}",
                   cwd=tmp_path).returncode == 0
    args = [arg.format(first=first, nowhere=tmp_path / "nowhere") for arg in args]
    if not any(arg.startswith("storyboard=") for arg in args):
        args.append(storyboard)
    result = run_cli("generate", "keyframes=world", "between=0", *args, f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
