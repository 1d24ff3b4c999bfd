"""``inbetween studio``: its JSON API through Flask's test client (jobs are the real command), and the page
itself in headless Chromium (slow: needs Debian's chromium and the ``browser-test`` extra)."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

flask = pytest.importorskip("flask", reason="the studio extra: pip install -e '.[studio]'")

from inbetween import studio  # noqa: E402
from inbetween.studio.app import create_app  # noqa: E402
from inbetween.video import read_image, write_png  # noqa: E402
from tests.conftest import load_run, run_cli  # noqa: E402

TWO_SHOTS = {"fps": 12, "between": 2, "shots": [
    {"prompts": ["a large red circle at the left on a black background",
                 "a large red circle at the right on a black background"]},
    {"prompts": ["a small blue square at the top on a white background",
                 "a small blue square at the bottom on a white background"], "between": 3},
]}
WORLD = {"choices": {"keyframes": "world"}}
# The shipped keyframe model, cut to two sampling steps: seeds matter, and it is quick.
QUICK_DIFFUSION = {"choices": {"keyframes": "diffusion"}, "settings": {"keyframes.steps": 2}}


@pytest.fixture
def studio_app(tmp_path: Path):
    app = create_app(tmp_path / "workspace")
    return app, app.test_client(), app.extensions["inbetween_studio"]


def run_job(client, runner, action: str, **body) -> dict:
    """Start a job, wait for it, return its end state."""
    response = client.post(f"/api/jobs/{action}", json=body)
    assert response.status_code == 202, response.get_json()
    runner.wait()
    return client.get("/api/job").get_json()


def files_of(folder: Path, pattern: str) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.glob(pattern))}


def test_stage_choices_are_the_config_files(studio_app):
    _, client, _ = studio_app
    options = client.get("/api/options").get_json()
    config = Path(studio.__file__).parents[1].parent / "conf"
    for group in ("keyframes", "flow", "interpolate"):
        assert [option["name"] for option in options["groups"][group]] == sorted(
            path.stem for path in (config / group).glob("*.yaml"))
    assert options["defaults"] == {"keyframes": "diffusion", "flow": "dis", "interpolate": "flow_warp"}
    learned = next(option for option in options["groups"]["flow"] if option["name"] == "learned")
    max_tokens = next(setting for setting in learned["settings"] if setting["key"] == "max_tokens")
    assert isinstance(max_tokens["value"], int) and "1/8" in max_tokens["help"]


def test_two_shots_give_the_cli_run(studio_app, tmp_path: Path):
    """Draw (a second job meanwhile is refused), then fill: the same files, pixel for pixel, as one
    `inbetween generate` of the same storyboard and seed."""
    _, client, jobs = studio_app
    runner, runs = jobs["runner"], jobs["workspace"].runs
    assert client.post("/api/jobs/keyframes", json={"storyboard": TWO_SHOTS, "seed": 3, "stages": WORLD}).status_code == 202
    second = client.post("/api/jobs/keyframes", json={"storyboard": TWO_SHOTS, "stages": WORLD})
    assert second.status_code == 409 and "one job runs at a time" in second.get_json()["error"]
    keys = runner.wait().summary()
    assert keys["state"] == "done" and keys["progress"][0] == {"desc": "keyframes", "n": 4, "total": 4}
    fill = run_job(client, runner, "fill", storyboard=TWO_SHOTS, seed=3, stages=WORLD, from_run=keys["run"])
    assert fill["state"] == "done", fill["message"]
    studio_run = runs / fill["run"]

    board = tmp_path / "board.yaml"
    board.write_text(yaml.safe_dump(TWO_SHOTS))
    cli_run = tmp_path / "cli"
    assert run_cli("generate", f"storyboard={board}", "seed=3", "keyframes=world", f"output_dir={cli_run}",
                   cwd=tmp_path).returncode == 0
    for pattern in ("frames/*.png", "keyframes/*.png", "flow/*.png", "storyboard.png", "video.mp4"):
        assert files_of(studio_run, pattern) == files_of(cli_run, pattern), pattern
    assert len(files_of(studio_run, "frames/*.png")) == 4 + 5  # (K - 1) * (between + 1) + 1 per shot
    ours, theirs = load_run(studio_run), load_run(cli_run)
    for key in ("shots", "keyframe_seeds", "frame_count", "fps", "choices"):
        assert ours[key] == theirs[key], key
    assert ours["reused_keyframes"] == [0, 1, 2, 3]

    page = client.get(f"/api/runs/{fill['run']}").get_json()
    assert page["flows"] == ["00-01.png", "02-03.png"] and page["storyboard"] == TWO_SHOTS
    video = client.get(f"/runs/{fill['run']}/video.mp4")
    assert video.status_code == 200 and video.data == (studio_run / "video.mp4").read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/runs/{fill['run']}.zip").data))
    assert f"{fill['run']}/run.json" in archive.namelist() and f"{fill['run']}/input/storyboard.yaml" in archive.namelist()


def test_redraw_and_upload_change_only_that_keyframe(studio_app):
    _, client, jobs = studio_app
    runner, runs = jobs["runner"], jobs["workspace"].runs
    board = {"between": 1, "shots": [{"prompts": ["a large red circle at the left on a black background",
                                                  "a large red circle at the center on a black background",
                                                  "a large red circle at the right on a black background"]}]}
    first = run_job(client, runner, "keyframes", storyboard=board, stages=QUICK_DIFFUSION)
    redrawn = run_job(client, runner, "redraw", storyboard=board, stages=QUICK_DIFFUSION, from_run=first["run"], index=1)
    assert redrawn["state"] == "done", redrawn["message"]
    before, after = files_of(runs / first["run"], "keyframes/*.png"), files_of(runs / redrawn["run"], "keyframes/*.png")
    assert [name for name in before if before[name] != after[name]] == ["keyframes/01.png"]
    seeds_before, seeds_after = load_run(runs / first["run"])["keyframe_seeds"], load_run(runs / redrawn["run"])["keyframe_seeds"]
    assert seeds_before[0::2] == seeds_after[0::2] and seeds_before[1] != seeds_after[1]

    drawn = np.zeros((64, 64, 3), np.uint8)
    drawn[20:44, 10:30] = (0, 200, 90)
    write_png(runs.parent / "drawn.png", drawn)
    picture = io.BytesIO((runs.parent / "drawn.png").read_bytes())
    upload = client.post("/api/upload", data={"image": (picture, "drawn.png")}, content_type="multipart/form-data")
    assert upload.status_code == 200
    board["shots"][0]["prompts"][2] = {"image": upload.get_json()["image"], "prompt": "my own circle"}
    replaced = run_job(client, runner, "redraw", storyboard=board, stages=QUICK_DIFFUSION, from_run=redrawn["run"], index=2)
    assert replaced["state"] == "done", replaced["message"]
    final = files_of(runs / replaced["run"], "keyframes/*.png")
    assert [name for name in after if after[name] != final[name]] == ["keyframes/02.png"]
    assert np.array_equal(read_image(runs / replaced["run"] / "keyframes" / "02.png"), drawn)
    redraw_seeds = [load_run(runs / job["run"])["seed"] for job in (first, redrawn, replaced)]
    assert redraw_seeds[0] == 0 and len(set(redraw_seeds)) == 3  # every redraw draws with a fresh seed

    saved = yaml.safe_dump(board).encode()  # as the page saves it: uploaded pictures by name
    assert client.post("/api/storyboard/read", data=saved).get_json() == board

    not_a_picture = client.post("/api/upload", data={"image": (io.BytesIO(b"hello"), "notes.txt")},
                                content_type="multipart/form-data")
    assert not_a_picture.status_code == 400 and "could not be read" in not_a_picture.get_json()["error"]


def test_bad_input_gets_the_cli_message_and_leaves_no_run(studio_app, tmp_path: Path):
    _, client, jobs = studio_app
    runner, runs = jobs["runner"], jobs["workspace"].runs
    bad = {"shots": [{"prompts": ["a red circle", "a blue square"], "between": -1}]}
    refused = client.post("/api/jobs/keyframes", json={"storyboard": bad, "stages": WORLD})
    assert refused.status_code == 400
    board = tmp_path / "bad.yaml"
    board.write_text(yaml.safe_dump(bad))
    cli = run_cli("generate", f"storyboard={board}", "keyframes=world", f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    cli_message = cli.stderr.split("inbetween: error: ", 1)[1].strip()
    unplaced = re.sub(r"'[^']*storyboard.yaml'", "'FILE'", refused.get_json()["error"])
    assert unplaced == cli_message.replace(f"'{board}'", "'FILE'")
    assert "must be 0 or more" in cli_message
    unreadable = client.post("/api/storyboard/read", data=b"shots: []\n")
    assert unreadable.status_code == 400 and "non-empty list of shots" in unreadable.get_json()["error"]

    # A mistake only the command finds (an interpolator folder that is not one): the job fails with its message.
    keys = run_job(client, runner, "keyframes", storyboard=TWO_SHOTS, stages=WORLD)
    failed = run_job(client, runner, "fill", storyboard=TWO_SHOTS, from_run=keys["run"],
                     stages={"choices": {"keyframes": "world", "interpolate": "diffusion"},
                             "settings": {"interpolate.checkpoint": str(tmp_path)}})
    assert failed["state"] == "failed" and "is not an interpolator model folder" in failed["message"]
    assert "Traceback" not in failed["message"]
    assert sorted(path.name for path in runs.iterdir()) == [keys["run"]]

    unknown = client.post("/api/jobs/keyframes", json={"storyboard": TWO_SHOTS,
                                                       "stages": {"choices": {"flow": "raft"}}})
    assert unknown.status_code == 400 and "unknown stage choice flow='raft'" in unknown.get_json()["error"]


def test_serving_beyond_this_machine_needs_a_flag(capsys):
    assert studio.main(["--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CHROMIUM = Path(os.environ.get("INBETWEEN_CHROMIUM", "/usr/bin/chromium"))


@pytest.mark.slow
def test_page_in_a_real_browser(tmp_path: Path):
    """Open the page, give the demo storyboard's last keyframe a picture of our own, draw the others
    (Shapes World renders), fill the motion, play it.

    Needs Debian's chromium (``apt-get install chromium``) and ``pip install -e '.[studio,browser-test]'``;
    the screenshot is ``page.png`` in the test's tmp folder (the README's picture)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[browser-test]'")
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set INBETWEEN_CHROMIUM")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "inbetween", "studio", "--port", str(port), "--workspace",
                               str(tmp_path / "workspace")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in server.stdout.readline()
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector(".shot")
            page.select_option("#choice-keyframes", "world")
            own = np.zeros((128, 128, 3), np.uint8)
            own[32:96, 16:112] = (40, 220, 60)
            write_png(tmp_path / "own.png", own)
            page.locator(".shot").nth(1).locator("input[type=file]").last.set_input_files(str(tmp_path / "own.png"))
            page.wait_for_selector(".shot >> nth=1 >> img")  # the editor shows the picture in place of the prompt
            page.click("#draw")
            page.wait_for_selector("#keyframes figure img", timeout=120_000)
            assert page.locator("#keyframes figure").count() == 6
            page.click("#fill")
            page.wait_for_selector("#video-panel:not([hidden])", timeout=300_000)
            duration = page.evaluate("""() => new Promise((resolve) => {
                const video = document.getElementById('video');
                const report = () => resolve(video.duration);
                if (video.readyState >= 1) report(); else video.addEventListener('loadedmetadata', report);
            })""")
            assert duration > 0
            playing = page.evaluate("""() => new Promise((resolve) => {
                const video = document.getElementById('video');
                video.muted = true;
                video.play().then(() => setTimeout(() => resolve(video.currentTime), 700), () => resolve(-1));
            })""")
            assert playing > 0
            assert page.locator("#error").is_hidden()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
        assert (tmp_path / "page.png").stat().st_size > 10_000
        (run,) = [folder for folder in (tmp_path / "workspace" / "runs").iterdir() if folder.name.endswith("-fill")]
        assert np.array_equal(read_image(run / "keyframes" / "05.png"), own)
        if os.environ.get("INBETWEEN_SCREENSHOT"):
            shutil.copyfile(tmp_path / "page.png", os.environ["INBETWEEN_SCREENSHOT"])
    finally:
        server.terminate()
        server.wait(timeout=30)
