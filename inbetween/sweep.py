"""Run records and results tables, and one table at the end of a ``--multirun`` sweep.

Every command leaves a ``run.json`` (:func:`write_run_record`). :class:`SweepSummary` is a
Hydra callback (configured in ``conf/common.yaml``): when a sweep ends it reads every
job's ``run.json`` and writes ``summary.csv`` and ``summary.md`` in the sweep folder, one
row per job with the overrides it ran with and its metrics (numbers flattened to
``metrics.NAME`` columns, timings likewise).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from inbetween.video import atomic_path

RUN_RECORD = "run.json"


def write_run_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as ``folder/run.json``, atomically."""
    with atomic_path(folder / RUN_RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))


def _override_columns(overrides: list[str]) -> dict[str, str]:
    """``["seed=1", "interpolate=linear"]`` -> ``{"seed": "1", "interpolate": "linear"}``."""
    return dict(item.split("=", 1) for item in overrides if "=" in item)


def summary_row(job: str, run: dict[str, Any]) -> dict[str, Any]:
    """A flat table row from one job's ``run.json``."""
    row: dict[str, Any] = {"job": job, **_override_columns(run.get("overrides", []))}
    for section in ("metrics", "timings"):
        for name, value in run.get(section, {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"{section}.{name}"] = value
    return row


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub-flavoured markdown table; missing cells stay empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[c]) if c in row else "" for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(folder: Path, stem: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Write ``rows`` as ``folder/STEM.csv`` and ``folder/STEM.md``, atomically; return the markdown."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(folder / f"{stem}.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    markdown = markdown_table(rows, columns)
    with atomic_path(folder / f"{stem}.md") as tmp:
        tmp.write_text(markdown)
    return markdown


def write_summary(sweep_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Collect ``sweep_dir/*/run.json`` into ``summary.csv`` and ``summary.md``; return the
    rows and the markdown table."""
    runs = sorted(sweep_dir.glob(f"*/{RUN_RECORD}"), key=lambda path: (len(path.parent.name), path.parent.name))
    rows = [summary_row(path.parent.name, json.loads(path.read_text())) for path in runs]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    return rows, write_table(sweep_dir, "summary", rows, columns)


class SweepSummary(Callback):
    """Writes the sweep's summary table when a ``--multirun`` ends (and prints it)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows, markdown = write_summary(sweep_dir)
        print(f"\nSweep summary ({len(rows)} runs): {sweep_dir / 'summary.md'}")
        print(markdown)
