"""Flow end-point error of every flow estimator on frames whose true flow is known.

* ``sintel``: MPI-Sintel pairs in ``flow_gt/sintel`` (``alley_1``: small motion; ``market_5``: large
  motion, up to 125 px), frame 2 -> 3, ``clean`` and ``final`` renders, the true flow of
  ``gt/frame_0002.flo``; pixels marked in ``gt/invalid`` are left out. Evaluation only.
* ``world``: Shapes World clips of every motion kind (evaluation seeds), frame 0 -> frame ``gap``
  of ``clip_frames``, exact flow.

Per case: EPE (mean end-point error, pixels) of the flow 0 -> 1 and seconds per pair (both
directions estimated, as the interpolators do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from flow.metrics import endpoint_error
from inbetween.errors import InbetweenError
from inbetween.progress import progress_bar
from inbetween.video import from_uint8, read_image
from inbetween.world import Clip

_FLO_TAG = 202021.25


@dataclass
class FlowCase:
    """Two frames uint8 ``(2, H, W, 3)``, the true flow ``(2, H, W)`` from the first to the second, and
    ``valid`` bool ``(H, W)``: where that flow is scored."""

    subset: str
    name: str
    frames: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


def read_flo(path: str | Path) -> np.ndarray:
    """A Middlebury ``.flo`` file as float32 ``(2, H, W)`` ``(dx, dy)``."""
    raw = Path(path).read_bytes()
    tag = np.frombuffer(raw, np.float32, 1)[0]
    if tag != _FLO_TAG:
        raise InbetweenError(f"'{path}' is not a .flo file (tag {tag}, expected {_FLO_TAG}).")
    width, height = (int(value) for value in np.frombuffer(raw, np.int32, 2, offset=4))
    flow = np.frombuffer(raw, np.float32, 2 * width * height, offset=12).reshape(height, width, 2)
    return np.ascontiguousarray(flow.transpose(2, 0, 1))


def sintel_cases(root: str | Path) -> Iterator[FlowCase]:
    """Every sequence of a ``flow_gt`` folder's ``sintel/``, clean and final (see the module docstring)."""
    folder = Path(root) / "sintel"
    if not folder.is_dir():
        raise InbetweenError(f"Sintel folder '{folder}' does not exist. Point flow_gt.root (or data_root, or the "
                             "environment variable INBETWEEN_DATA) at the folder that holds flow_gt/sintel.")
    for sequence in sorted(path for path in folder.iterdir() if (path / "gt").is_dir()):
        truth = read_flo(sequence / "gt" / "frame_0002.flo")
        invalid = sequence / "gt" / "invalid" / "frame_0002.png"
        valid = read_image(invalid)[..., 0] < 128 if invalid.exists() else np.ones(truth.shape[1:], bool)
        for render in ("clean", "final"):
            frames = np.stack([read_image(sequence / render / f"frame_000{k}.png") for k in (2, 3)])
            yield FlowCase(f"{sequence.name} {render}", f"{sequence.name}-{render}", frames, truth, valid)


def world_flow_cases(gap: int, clip_frames: int, clips_per_kind: int, size: int, seed: int) -> Iterator[FlowCase]:
    """World clips (seeds from ``seed``, every kind): frame 0 -> frame ``gap``, exact flow."""
    t1 = gap / (clip_frames - 1)
    for kind, index, clip in Clip.every_kind(clips_per_kind, seed):
        frames = np.stack([clip.render(t, size) for t in (0.0, t1)])
        yield FlowCase(f"world gap {gap}", f"{kind}-{index}", frames, clip.flow(0.0, t1, size),
                       np.ones((size, size), bool))


def score_flow(estimator, case: FlowCase) -> dict[str, float]:
    """``epe`` (pixels, over ``case.valid``) of ``estimator``'s flow and ``s_per_pair`` (both directions)."""
    image0, image1 = (from_uint8(frame)[None] for frame in case.frames)
    started = time.perf_counter()
    flow_01, _ = estimator.bidirectional(image0, image1)
    seconds = time.perf_counter() - started
    epe = endpoint_error(flow_01[0].cpu(), torch.from_numpy(case.flow), torch.from_numpy(case.valid))
    return {"epe": epe, "s_per_pair": seconds}


def flow_rows(cases: Iterator[FlowCase], estimators: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (case, estimator)."""
    rows = []
    for case in progress_bar(cases, desc="flow", unit="pair"):
        for name, estimator in estimators.items():
            rows.append({"subset": case.subset, "case": case.name, "method": name, **score_flow(estimator, case)})
    return rows
