"""Progress bars a person can read wherever a command runs.

Bars are drawn on standard error when it is a terminal and left out otherwise, unless asked
for (logs and pipes get log lines where a command has them, e.g. training). A terminal that reports no width
(some consoles and pseudo-terminals do) would get no bar at all from tqdm; it gets
:data:`FALLBACK_COLUMNS` x :data:`FALLBACK_ROWS` instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm import tqdm

FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24


def _size_if_unknown() -> dict[str, int]:
    """``ncols`` and ``nrows`` for tqdm when standard error is a terminal that reports size 0, else
    ``{}`` (tqdm measures it; with 0 it would draw nothing at all)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor
        return {}
    return {"ncols": FALLBACK_COLUMNS, "nrows": FALLBACK_ROWS} if size.columns == 0 else {}


def progress_bar(iterable: Iterable | None = None, *, show: bool | None = None, **options: Any) -> tqdm:
    """A ``tqdm`` bar (``options`` as tqdm's: ``total``, ``desc``, ``unit``, ...), shown on a terminal
    (``show=None``), always (``True``) or never (``False``); hidden bars still count (``n``)."""
    return tqdm(iterable, disable=None if show is None else not show, **_size_if_unknown(), **options)
