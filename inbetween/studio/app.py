"""The studio's web app (Flask): one page and a small JSON API over ``inbetween generate``.

Workspace layout (``inbetween studio --workspace DIR``):

* ``runs/NAME/``: one folder per job, exactly as ``inbetween generate output_dir=runs/NAME`` writes it
  (``run.json`` last), plus ``input/``: the storyboard YAML the command read and the keyframe
  pictures it names, so that a run can be made again from its folder alone.
* ``uploads/SHA256.png``: keyframe pictures sent from the page, by content.

The page's storyboard is the YAML's own structure as JSON (``{"fps", "between", "shots": [{"prompts":
[TEXT | {"image": UPLOAD, "prompt": TEXT}], "between"}]}``). Jobs: ``keyframes`` (draw every keyframe:
a run with ``between=0``), ``redraw`` (one keyframe with a new seed, or with its uploaded picture; the
others are taken from the earlier run pixel for pixel: ``reuse`` + ``redo``), ``fill`` (the motion
between an earlier run's keyframes: ``reuse``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml
from flask import Flask, Response, jsonify, request, send_from_directory

from inbetween.errors import InbetweenError
from inbetween.storyboard import load_storyboard
from inbetween.studio.jobs import Busy, JobRunner
from inbetween.studio.stages import stage_options, stage_overrides
from inbetween.sweep import RUN_RECORD
from inbetween.video import read_image, write_png

STATIC = Path(__file__).parent / "static"
DEMO_STORYBOARD = Path(__file__).parents[1] / "assets" / "demo_storyboard.yaml"
_RUN_NAME = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z]+(-[0-9]+)?$")
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{64}\.png$")
MAX_UPLOAD_BYTES = 32 * 1024 * 1024


class Workspace:
    """The studio's folders: ``runs/`` and ``uploads/`` under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.runs, self.uploads = self.root / "runs", self.root / "uploads"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    def new_run(self, action: str) -> Path:
        """A new, empty run folder ``runs/YYYYMMDD-HHMMSS-ACTION[-N]``."""
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{action}"
        for number in range(1, 1000):
            folder = self.runs / (stem if number == 1 else f"{stem}-{number}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
        raise InbetweenError(f"too many runs named {stem} in {self.runs}.")

    def finished_run(self, name: Any) -> Path:
        """The folder of the finished run ``name``; raises :class:`InbetweenError` for any other name."""
        folder = self.runs / str(name)
        if not isinstance(name, str) or not _RUN_NAME.match(name) or not (folder / RUN_RECORD).is_file():
            raise InbetweenError(f"{name!r} is not a finished run of this studio; draw the keyframes first.")
        return folder

    def save_upload(self, data: bytes) -> str:
        """Check that ``data`` is a picture, store it as PNG by content; returns its name."""
        with tempfile.TemporaryDirectory() as scratch:
            received = Path(scratch) / "upload"
            received.write_bytes(data)
            pixels = read_image(received)  # raises a readable error for anything that is not a picture
        name = hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest() + ".png"
        if not (self.uploads / name).exists():
            write_png(self.uploads / name, pixels)
        return name

    def write_input(self, run_dir: Path, storyboard: Any) -> Path:
        """Write the page's storyboard into ``run_dir/input/storyboard.yaml`` with the pictures it names
        copied beside it; returns the YAML's path. Checks it as the command line will."""
        folder = run_dir / "input"
        folder.mkdir()
        if isinstance(storyboard, dict):
            for shot in storyboard.get("shots") or []:
                for entry in (shot.get("prompts") or []) if isinstance(shot, dict) else []:
                    if isinstance(entry, dict) and _UPLOAD_NAME.match(str(entry.get("image"))):
                        shutil.copyfile(self.uploads / entry["image"], folder / entry["image"])
        path = folder / "storyboard.yaml"
        path.write_text(yaml.safe_dump(storyboard, sort_keys=False, allow_unicode=True), encoding="utf-8")
        load_storyboard(path)
        return path


def _stage_overrides(body: dict[str, Any], storyboard: Path) -> list[str]:
    """The command's overrides shared by every job: storyboard, stages and their settings."""
    stages = body.get("stages") or {}
    return [f"storyboard={storyboard}", *stage_overrides(stages.get("choices") or {}, stages.get("settings") or {})]


def _page_seed(body: dict[str, Any]) -> int:
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InbetweenError(f"seed must be a whole number 0 or more, got {seed!r}.")
    return seed


def _action_overrides(workspace: Workspace, action: str, body: dict[str, Any]) -> list[str]:
    """The overrides that make the command do ``action`` (see the module's docstring). A redraw runs
    with a fresh seed, so that each redraw of a keyframe gives a new picture (``run.json`` keeps it)."""
    if action == "keyframes":
        return [f"seed={_page_seed(body)}", "between=0"]
    earlier = workspace.finished_run(body.get("from_run"))
    if action == "fill":
        return [f"seed={_page_seed(body)}", f"reuse={earlier}"]
    index = body.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise InbetweenError(f"redraw needs the keyframe's number, got {index!r}.")
    return [f"seed={secrets.randbelow(2**31)}", f"reuse={earlier}", f"redo=[{index}]", "between=0"]


def _start_job(workspace: Workspace, runner: JobRunner, action: str) -> tuple[Response, int]:
    """Check the request, write the run's input, start the command; 202 with the job, or a readable error."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="send the job as a JSON object."), 400
    try:
        runner.refuse_if_busy()  # before a run folder is made; start() checks again under its lock
    except Busy as error:
        return jsonify(error=str(error)), 409
    run_dir = workspace.new_run(action)
    try:
        storyboard = workspace.write_input(run_dir, body.get("storyboard"))
        overrides = _stage_overrides(body, storyboard) + _action_overrides(workspace, action, body)
        job = runner.start(action, run_dir, overrides)
    except (InbetweenError, Busy) as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        return jsonify(error=str(error)), 409 if isinstance(error, Busy) else 400
    return jsonify(job.summary()), 202


def _run_summary(folder: Path) -> dict[str, Any]:
    """A finished run as the page shows it: its record and the files to show."""
    record = json.loads((folder / RUN_RECORD).read_text(encoding="utf-8"))
    return {
        "run": folder.name,
        "record": record,
        "keyframes": sorted(path.name for path in (folder / "keyframes").glob("*.png")),
        "flows": sorted(path.name for path in (folder / "flow").glob("*.png")),
        "storyboard": yaml.safe_load((folder / "input" / "storyboard.yaml").read_text(encoding="utf-8")),
    }


def _zip_run(folder: Path) -> bytes:
    """The whole run folder as a zip archive, paths under the run's name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def create_app(workspace_root: Path) -> Flask:
    """The studio app over the workspace ``workspace_root`` (made if missing)."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    app.json.sort_keys = False  # stage groups in the order of the command line
    workspace, runner = Workspace(workspace_root), JobRunner()
    app.extensions["inbetween_studio"] = {"workspace": workspace, "runner": runner}

    @app.get("/")
    def page() -> Response:
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name: str) -> Response:
        return send_from_directory(STATIC, name)

    @app.get("/api/options")
    def options() -> Response:
        return jsonify(stage_options())

    @app.get("/api/demo")
    def demo() -> Response:
        return jsonify(yaml.safe_load(DEMO_STORYBOARD.read_text(encoding="utf-8")))

    @app.post("/api/storyboard/read")
    def read_storyboard() -> tuple[Response, int]:
        """A storyboard YAML (the request's body) as the page's JSON, or the command line's message. It is
        checked from ``uploads/``, so the pictures of a storyboard the page saved are found."""
        with tempfile.NamedTemporaryFile(dir=workspace.uploads, prefix=".read-", suffix=".yaml") as file:
            file.write(request.get_data())
            file.flush()
            try:
                load_storyboard(Path(file.name))
            except InbetweenError as error:
                return jsonify(error=str(error)), 400
            return jsonify(yaml.safe_load(Path(file.name).read_text(encoding="utf-8"))), 200

    @app.post("/api/upload")
    def upload() -> tuple[Response, int]:
        file = request.files.get("image")
        if file is None:
            return jsonify(error="send the picture as the form field 'image'."), 400
        try:
            return jsonify(image=workspace.save_upload(file.read())), 200
        except InbetweenError as error:
            return jsonify(error=str(error)), 400

    @app.get("/uploads/<name>")
    def uploaded(name: str) -> Response:
        return send_from_directory(workspace.uploads, name)

    @app.post("/api/jobs/<action>")
    def start(action: str) -> tuple[Response, int]:
        if action not in ("keyframes", "redraw", "fill"):
            return jsonify(error=f"unknown job {action!r}; jobs are keyframes, redraw and fill."), 404
        return _start_job(workspace, runner, action)

    @app.get("/api/job")
    def job() -> Response:
        return jsonify(runner.current.summary() if runner.current else {"state": "idle"})

    @app.get("/api/runs/<name>")
    def run(name: str) -> tuple[Response, int]:
        try:
            return jsonify(_run_summary(workspace.finished_run(name))), 200
        except InbetweenError as error:
            return jsonify(error=str(error)), 404

    @app.get("/runs/<name>/<path:file>")
    def run_file(name: str, file: str) -> Response:
        return send_from_directory(workspace.runs / name, file, conditional=True, max_age=0)

    @app.get("/runs/<name>.zip")
    def run_zip(name: str) -> tuple[Response, int] | Response:
        try:
            folder = workspace.finished_run(name)
        except InbetweenError as error:
            return jsonify(error=str(error)), 404
        return Response(_zip_run(folder), mimetype="application/zip",
                        headers={"Content-Disposition": f"attachment; filename={name}.zip"})

    return app
