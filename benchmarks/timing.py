"""Timing helper shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from typing import Callable


def best_time(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``work()``, in seconds (after one warm-up)."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)
