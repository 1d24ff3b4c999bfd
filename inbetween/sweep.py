"""Run records and results tables, and one table at the end of a ``--multirun`` sweep.

Every command leaves a ``run.json`` (:func:`write_run_record`). :class:`SweepSummary` is a
Hydra callback (configured in ``conf/common.yaml``): when a sweep ends it reads every
job's ``run.json`` and writes ``summary.csv`` and ``summary.md`` in the sweep folder, one
row per job with the overrides it ran with and its metrics (numbers flattened to
``metrics.NAME`` columns, timings likewise), and ``summary.png``: one bar chart per metric,
a bar per job labelled with its overrides.
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


def plot_summary(path: Path, rows: list[dict[str, Any]], overrides: list[str]) -> None:
    """Bar charts of every ``metrics.*`` column, one bar per job labelled by its ``overrides``."""
    import matplotlib  # noqa: PLC0415 - only sweeps draw

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    metrics = [column for column in dict.fromkeys(c for row in rows for c in row) if column.startswith("metrics.")]
    if not metrics:
        return
    labels = [" ".join(f"{key}={row.get(key, '')}" for key in overrides) or row["job"] for row in rows]
    figure, axes = pyplot.subplots(len(metrics), 1, figsize=(8, 0.3 * len(rows) * len(metrics) + 1.2 * len(metrics)),
                                   squeeze=False)
    for axis, metric in zip(axes[:, 0], metrics):
        axis.barh(range(len(rows)), [row.get(metric, float("nan")) for row in rows])
        axis.set_yticks(range(len(rows)), labels, fontsize=7)
        axis.invert_yaxis()
        axis.set_title(metric.removeprefix("metrics."), fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    pyplot.close(figure)


def write_summary(sweep_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Collect ``sweep_dir/*/run.json`` into ``summary.csv``, ``summary.md`` and ``summary.png``;
    return the rows and the markdown table."""
    runs = sorted(sweep_dir.glob(f"*/{RUN_RECORD}"), key=lambda path: (len(path.parent.name), path.parent.name))
    records = [json.loads(path.read_text()) for path in runs]
    rows = [summary_row(path.parent.name, record) for path, record in zip(runs, records)]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    overrides = list(dict.fromkeys(key for record in records for key in _override_columns(record.get("overrides", []))))
    plot_summary(sweep_dir / "summary.png", rows, overrides)
    return rows, write_table(sweep_dir, "summary", rows, columns)


class SweepSummary(Callback):
    """Writes the sweep's summary table when a ``--multirun`` ends (and prints it)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows, markdown = write_summary(sweep_dir)
        print(f"\nSweep summary ({len(rows)} runs): {sweep_dir / 'summary.md'}")
        print(markdown)
