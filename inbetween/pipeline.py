"""Storyboard -> keyframes -> flow -> in-betweens -> files on disk.

The pipeline meets the stages only through their interfaces
(:class:`keyframes.base.KeyframeGenerator`, :class:`flow.base.FlowEstimator`,
:class:`interpolate.base.Interpolator`), so any of them can be swapped by config.

Frame numbering: a shot of ``K`` keyframes with ``between = N`` gives
``(K - 1) * (N + 1) + 1`` frames, keyframe ``k`` being its frame ``k * (N + 1)``, pixel
identical to its PNG in ``keyframes/``. Shots follow each other; interpolation never
crosses a cut.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import kornia
import numpy as np
import torch
from tqdm import tqdm

import inbetween
from flow.viz import save_flow_png
from inbetween.errors import InbetweenError
from inbetween.storyboard import Shot, Storyboard
from inbetween.sweep import RUN_RECORD, write_run_record
from inbetween.video import contact_sheet, to_uint8, upscale, write_gif, write_mp4, write_png
from inbetween.world import faithfulness, identity_scores, parse_caption

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("keyframes", "frames", "flow", "video.mp4", "video.gif", "storyboard.png", RUN_RECORD)


@dataclass
class Stages:
    """The three swappable stages a run is made of."""

    keyframes: Any  # keyframes.base.KeyframeGenerator
    flow: Any  # flow.base.FlowEstimator
    interpolator: Any  # interpolate.base.Interpolator


@dataclass
class ShotResult:
    """One shot's pixels: ``keyframes`` ``(K, H, W, 3)`` and ``frames`` ``(F, H, W, 3)`` uint8,
    and the forward flow of each gap, ``(2, H, W)`` float32 (empty when ``between`` is 0)."""

    keyframes: np.ndarray
    frames: np.ndarray
    flows: list[np.ndarray] = field(default_factory=list)


def shot_seed(seed: int, shot_index: int) -> int:
    """The seed of one shot, derived from the run's seed (independent streams per shot)."""
    return int(np.random.SeedSequence([seed, shot_index]).generate_state(1)[0])


def in_between_times(between: int) -> list[float]:
    """Times of ``between`` evenly spaced in-betweens in ``(0, 1)``."""
    return [j / (between + 1) for j in range(1, between + 1)]


def make_keyframes(storyboard: Storyboard, generator, seed: int) -> list[torch.Tensor]:
    """Each shot's keyframes ``(K, 3, H, W)``; every keyframe of the run has one size."""
    shots = []
    progress = tqdm(total=len(storyboard.prompts), desc="keyframes", unit="key", disable=None)
    for index, shot in enumerate(storyboard.shots):
        keys = generator(list(shot.prompts), shot_seed(seed, index))
        shots.append(keys)
        progress.update(len(shot.prompts))
    progress.close()
    sizes = {tuple(keys.shape[-2:]) for keys in shots}
    if len(sizes) > 1:
        raise InbetweenError(f"every keyframe of a run must have one size; the shots have sizes (H, W) {sorted(sizes)}.")
    return shots


def fill_shot(keys: torch.Tensor, shot: Shot, stages: Stages, progress: tqdm) -> ShotResult:
    """Interpolate every gap of one shot; keyframes are copied in, never re-rendered."""
    key_pixels = to_uint8(keys)
    if shot.between == 0 or len(keys) == 1:
        return ShotResult(key_pixels, key_pixels)
    times = in_between_times(shot.between)
    frames, flows = [key_pixels[:1]], []
    for left, right, right_pixels in zip(keys[:-1], keys[1:], key_pixels[1:]):
        flow_lr, flow_rl = stages.flow.bidirectional(left[None], right[None])
        between = stages.interpolator(left[None], right[None], flow_lr, flow_rl, times)[0]
        frames += [to_uint8(between), right_pixels[None]]
        flows.append(flow_lr[0].numpy())
        progress.update(len(times))
    return ShotResult(key_pixels, np.concatenate(frames), flows)


def _write_frames(folder: Path, frames: np.ndarray, digits: int) -> None:
    folder.mkdir()
    for index, frame in enumerate(tqdm(frames, desc=f"writing {folder.name}", unit="png", disable=None)):
        write_png(folder / f"{index:0{digits}d}.png", frame)


def write_outputs(folder: Path, storyboard: Storyboard, results: list[ShotResult], scale: int) -> None:
    """Write every output but ``run.json`` into ``folder`` (see :data:`OUTPUT_NAMES`)."""
    keyframes = np.concatenate([result.keyframes for result in results])
    frames = np.concatenate([result.frames for result in results])
    _write_frames(folder / "keyframes", keyframes, digits=2)
    _write_frames(folder / "frames", frames, digits=6)
    (folder / "flow").mkdir()
    first_key = 0
    for result in results:
        for gap, flow in enumerate(result.flows):
            save_flow_png(flow, folder / "flow" / f"{first_key + gap:02d}-{first_key + gap + 1:02d}.png")
        first_key += len(result.keyframes)
    write_png(folder / "storyboard.png", contact_sheet(list(keyframes), storyboard.prompts))
    viewing = upscale(frames, scale)
    write_mp4(folder / "video.mp4", viewing, storyboard.fps)
    write_gif(folder / "video.gif", viewing, storyboard.fps)


def publish(staging: Path, output_dir: Path) -> None:
    """Move staged outputs into ``output_dir``, replacing old ones; ``run.json`` goes last,
    so its presence means the run's outputs are complete."""
    stale = output_dir / RUN_RECORD
    if stale.exists():
        stale.unlink()
    for name in OUTPUT_NAMES:
        source, target = staging / name, output_dir / name
        if not source.exists():
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(source, target)


def versions() -> dict[str, str]:
    return {
        "inbetween": inbetween.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "kornia": kornia.__version__,
    }


def keyframe_metrics(storyboard: Storyboard, keyframes: list[np.ndarray]) -> dict[str, float]:
    """Shapes World faithfulness of the keyframes when every prompt is a world caption, and, when a
    shot has several keyframes, how well shots keep their object (:func:`identity_scores`)."""
    try:
        for prompt in storyboard.prompts:
            parse_caption(prompt)
    except InbetweenError:
        return {}
    scores = {f"faithfulness_{name}": value
              for name, value in faithfulness(list(np.concatenate(keyframes)), storyboard.prompts).items()}
    if any(len(shot.prompts) > 1 for shot in storyboard.shots):
        identity = identity_scores(keyframes, [shot.prompts for shot in storyboard.shots])
        scores |= {f"shots_{name}": value for name, value in identity.items()}
    return scores


def run(storyboard: Storyboard, stages: Stages, seed: int, output_dir: str | os.PathLike,
        scale: int = 1, record: dict | None = None) -> dict:
    """Make the video of ``storyboard`` and write every output into ``output_dir``.

    ``record`` (resolved config, stage choices, ...) is stored in ``run.json`` beside
    the seeds, versions, timings and metrics. Returns the ``run.json`` content.
    """
    if scale < 1:
        raise InbetweenError(f"output.scale must be a whole number of at least 1, got {scale}.")
    torch.manual_seed(seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with torch.inference_mode():
        keys = make_keyframes(storyboard, stages.keyframes, seed)
        timings["keyframes_s"] = time.perf_counter() - started
        in_betweens = sum(shot.frame_count - len(shot.prompts) for shot in storyboard.shots)
        progress = tqdm(total=in_betweens, desc="in-betweens", unit="frame", disable=None)
        results = [fill_shot(k, shot, stages, progress) for k, shot in zip(keys, storyboard.shots)]
        progress.close()
    timings["fill_s"] = time.perf_counter() - started - timings["keyframes_s"]
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=output_dir) as staging:
        write_outputs(Path(staging), storyboard, results, scale)
        timings["write_s"] = time.perf_counter() - started - timings["keyframes_s"] - timings["fill_s"]
        timings["total_s"] = time.perf_counter() - started
        frame_count = sum(len(result.frames) for result in results)
        summary = {
            **(record or {}),
            "seed": seed,
            "shot_seeds": [shot_seed(seed, index) for index in range(len(storyboard.shots))],
            "shots": [{"prompts": list(shot.prompts), "between": shot.between} for shot in storyboard.shots],
            "fps": storyboard.fps,
            "frame_count": frame_count,
            "keyframe_count": len(storyboard.prompts),
            "size_hw": list(results[0].frames.shape[1:3]),
            "timings": timings,
            "metrics": {
                "seconds_per_keyframe": timings["keyframes_s"] / len(storyboard.prompts),
                "interpolated_fps": in_betweens / timings["fill_s"] if in_betweens else None,
                **keyframe_metrics(storyboard, [result.keyframes for result in results]),
            },
            "versions": versions(),
        }
        write_run_record(Path(staging), summary)
        publish(Path(staging), output_dir)
    log.info("wrote %d frames to %s", frame_count, output_dir)
    return summary
