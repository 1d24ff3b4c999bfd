"""Shared test helpers: run the real ``inbetween`` console script, make keyframe files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from inbetween.config import data_root
from inbetween.video import write_png

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(data_root())  # $INBETWEEN_DATA, else ../shared/data/real beside the repository

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n auto (the default, pyproject.toml) runs a worker per core: one thread each, and for the
    # commands they start, or the workers' torch threads would fight over the same cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def inbetween_executable() -> list[str]:
    """The installed console script (falls back to the module when not on PATH)."""
    script = shutil.which("inbetween")
    return [script] if script else [sys.executable, "-m", "inbetween"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``inbetween ARGS...`` in ``cwd`` (with ``env`` added to the environment); returns the
    finished process (text output)."""
    return subprocess.run([*inbetween_executable(), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@contextlib.contextmanager
def started_cli(*args: str, cwd: Path, **popen) -> Iterator[subprocess.Popen]:
    """``inbetween ARGS...`` started in ``cwd`` (``popen``: more :class:`subprocess.Popen` arguments), as a
    process that Ctrl-C stops even where this test run ignores SIGINT (a shell's background job does,
    and its children inherit that); killed if it is still running when the test ends."""
    process = subprocess.Popen([*inbetween_executable(), *args], cwd=cwd,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def load_run(output_dir: Path) -> dict:
    return json.loads((output_dir / "run.json").read_text())


def textured_frames(count: int, height: int = 48, width: int = 64, shift: int = 3, seed: int = 0) -> list[np.ndarray]:
    """``count`` uint8 RGB frames of a smooth random texture moving ``shift`` px right per frame."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height + 8, width + shift * count + 8, 3))
    import cv2  # noqa: PLC0415

    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    return [(texture[4:4 + height, 4 + shift * (count - i):4 + shift * (count - i) + width] * 255).astype(np.uint8)
            for i in range(count)]


@pytest.fixture
def keyframe_files(tmp_path: Path) -> list[Path]:
    """Three same-size PNG keyframes on disk."""
    paths = []
    for index, frame in enumerate(textured_frames(3)):
        path = tmp_path / f"key{index}.png"
        write_png(path, frame)
        paths.append(path)
    return paths
