"""Progress bars a person can read wherever a command runs.

Bars are drawn on standard error when it is a terminal and left out otherwise, unless asked
for (logs and pipes get log lines where a command has them, e.g. training). A terminal that reports no width
(some consoles and pseudo-terminals do) would get no bar at all from tqdm; it gets
:data:`FALLBACK_COLUMNS` x :data:`FALLBACK_ROWS` instead.

For programs that run a command and show its progress themselves (``inbetween studio``): with
the environment variable :data:`REPORT_VARIABLE` naming a file, every bar that is updated by hand
(``bar.update(n)``) also appends ``{"desc": ..., "n": ..., "total": ...}`` as one JSON line there,
shown or not.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Iterable

from tqdm import tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24
REPORT_VARIABLE = "INBETWEEN_PROGRESS_FILE"


def _size_if_unknown() -> dict[str, int]:
    """``ncols`` and ``nrows`` for tqdm when standard error is a terminal that reports size 0, else
    ``{}`` (tqdm measures it; with 0 it would draw nothing at all)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor
        return {}
    return {"ncols": FALLBACK_COLUMNS, "nrows": FALLBACK_ROWS} if size.columns == 0 else {}


class _ReportingBar(tqdm):
    """A tqdm bar that also appends its count to the JSON-lines file ``report`` at start and on every update."""

    def __init__(self, *args: Any, report: str, **options: Any) -> None:
        self._report, self._desc, self._total = report, options.get("desc"), options.get("total")
        self._done = options.get("initial", 0)
        super().__init__(*args, **options)
        self._write()

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        self._done += n or 0
        self._write()
        return shown

    def _write(self) -> None:
        with open(self._report, "a", encoding="utf-8") as report:
            report.write(json.dumps({"desc": self._desc, "n": self._done, "total": self._total}) + "\n")


def progress_bar(iterable: Iterable | None = None, *, show: bool | None = None, **options: Any) -> tqdm:
    """A ``tqdm`` bar (``options`` as tqdm's: ``total``, ``desc``, ``unit``, ...), shown on a terminal
    (``show=None``), always (``True``) or never (``False``). Reported
    to the file :data:`REPORT_VARIABLE` names, when it is set."""
    report = os.environ.get(REPORT_VARIABLE)
    bar = functools.partial(_ReportingBar, report=report) if report else tqdm
    return bar(iterable, disable=None if show is None else not show, **_size_if_unknown(), **options)
