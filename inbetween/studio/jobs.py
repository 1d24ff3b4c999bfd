"""The studio's one job at a time: an ``inbetween generate`` command run off the request thread.

A job is the real command (``python -m inbetween generate OVERRIDES``), so the page and the command
line share one pipeline, one set of error messages and one run-folder layout. Its progress bars
report to a JSON-lines file (:data:`inbetween.progress.REPORT_VARIABLE`); its one-paragraph error
(``inbetween: error: ...``) becomes the job's message. A job that fails leaves no run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from inbetween.progress import REPORT_VARIABLE

ERROR_PREFIX = "inbetween: error: "


class Busy(Exception):
    """A job was asked for while another runs."""


@dataclass
class Job:
    """One command: ``action`` (what the page asked for), the run folder it writes, its state
    (``running``, ``done``, ``failed``), the latest count of each progress bar, and ``message``
    (the command's error when it failed)."""

    action: str
    run: str
    state: str = "running"
    bars: dict[str, dict[str, Any]] = field(default_factory=dict)
    message: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"action": self.action, "run": self.run, "state": self.state, "message": self.message,
                "progress": list(self.bars.values()), "seconds": self.seconds}


def error_message(stderr: str, returncode: int) -> str:
    """The command's own error paragraph, or its last lines when it stopped without one."""
    if ERROR_PREFIX in stderr:
        return stderr.split(ERROR_PREFIX, 1)[1].strip()
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return f"the command stopped with status {returncode}:\n{tail}"


class JobRunner:
    """Runs at most one command at a time in a background thread; ``current`` is the latest job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: Job | None = None

    def busy(self) -> bool:
        return self.current is not None and self.current.state == "running"

    def refuse_if_busy(self) -> None:
        """Raise :class:`Busy`, naming the running job, while one runs."""
        if self.busy():
            job = self.current
            raise Busy(f"a job is still running ({job.action}, run {job.run}); one job runs at a time: "
                       "wait for it to finish, then ask again.")

    def start(self, action: str, run_dir: Path, overrides: Sequence[str]) -> Job:
        """Start ``inbetween generate OVERRIDES output_dir=RUN_DIR``; raises :class:`Busy` while a job runs.
        ``run_dir`` is this job's own folder: it is removed if the command fails."""
        with self._lock:
            self.refuse_if_busy()
            self.current = Job(action, run_dir.name)
            job = self.current
        command = [sys.executable, "-m", "inbetween", "generate", *overrides, f"output_dir={run_dir}"]
        threading.Thread(target=self._run, args=(job, command, run_dir), daemon=True).start()
        return job

    def wait(self, timeout: float = 600.0) -> Job | None:
        """Block until the current job ends (for scripts and tests); returns it."""
        deadline = time.monotonic() + timeout
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.current

    def _run(self, job: Job, command: list[str], run_dir: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="inbetween-studio-") as scratch:
            report = Path(scratch) / "progress.jsonl"
            report.touch()
            env = {**os.environ, REPORT_VARIABLE: str(report)}
            with open(Path(scratch) / "stderr.txt", "w+", encoding="utf-8") as stderr:
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, text=True)
                while process.poll() is None:
                    _read_progress(report, job)
                    time.sleep(0.2)
                _read_progress(report, job)
                stderr.seek(0)
                errors = stderr.read()
        job.seconds = time.time() - job.started
        if process.returncode == 0:
            job.state = "done"
            return
        shutil.rmtree(run_dir, ignore_errors=True)
        job.message = error_message(errors, process.returncode)
        job.state = "failed"


def _read_progress(report: Path, job: Job) -> None:
    """Keep the latest line of each bar in ``report`` on ``job``."""
    for line in report.read_text(encoding="utf-8").splitlines():
        try:
            count = json.loads(line)
        except json.JSONDecodeError:  # a line still being written
            continue
        job.bars[count["desc"] or "work"] = count
