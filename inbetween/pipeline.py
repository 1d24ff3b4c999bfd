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

import contextlib
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import cv2
import kornia
import numpy as np
import torch
from tqdm import tqdm

import inbetween
from flow.viz import save_flow_png
from inbetween.errors import InbetweenError
from inbetween.progress import progress_bar
from inbetween.storyboard import Shot, Storyboard
from inbetween.sweep import RUN_RECORD, write_run_record
from inbetween.video import (contact_sheet, from_uint8, mp4_writer, read_image, to_uint8, upscale, viewing_scale,
                             write_gif, write_png)
from inbetween.world import faithfulness, identity_scores, parse_caption
from interpolate.base import Neighbour, Neighbours

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("keyframes", "frames", "flow", "video.mp4", "video.gif", "storyboard.png", RUN_RECORD)
#: Runs whose frames hold more raw pixel bytes than this are announced before they start.
LARGE_RUN_BYTES = 2 * 1024**3


@dataclass
class Stages:
    """The three swappable stages a run is made of."""

    keyframes: Any  # keyframes.base.KeyframeGenerator
    flow: Any  # flow.base.FlowEstimator
    interpolator: Any  # interpolate.base.Interpolator


def shot_seed(seed: int, shot_index: int) -> int:
    """The seed of one shot, derived from the run's seed (independent streams per shot)."""
    return int(np.random.SeedSequence([seed, shot_index]).generate_state(1)[0])


def in_between_times(between: int) -> list[float]:
    """Times of ``between`` evenly spaced in-betweens in ``(0, 1)``."""
    return [j / (between + 1) for j in range(1, between + 1)]


def redo_seed(seed: int, keyframe: int) -> int:
    """The seed keyframe ``keyframe`` is redrawn with in a run of seed ``seed`` (see :class:`KeyframePlan`)."""
    return int(np.random.SeedSequence([seed, 1, keyframe]).generate_state(1)[0])


@dataclass
class KeyframePlan:
    """How each keyframe of a run is made, numbered across shots: ``seeds[k]``, the seed it is drawn
    with, and ``reused``: keyframes taken pixel for pixel from an earlier run instead (uint8 ``(H, W, 3)``).

    A shot's keyframes that share a seed are drawn together, in one generator call with that seed
    (so ``shared_noise`` keeps them one object); by default every keyframe of shot ``s`` has
    :func:`shot_seed` ``(seed, s)``. Redrawing keyframe ``k`` gives it :func:`redo_seed` ``(seed, k)``, so it
    is drawn alone; a run given the same ``seeds`` draws it again pixel for pixel.
    """

    seeds: list[int]
    reused: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def default(cls, storyboard: Storyboard, seed: int) -> KeyframePlan:
        return cls([shot_seed(seed, index) for index, shot in enumerate(storyboard.shots) for _ in shot.prompts])


def reuse_plan(storyboard: Storyboard, seed: int, earlier: Path, redo: Sequence[int]) -> KeyframePlan:
    """Take every keyframe but ``redo`` from the finished run in ``earlier`` (its ``keyframes/`` and its
    ``run.json``'s seeds); redraw the ``redo`` ones with :func:`redo_seed`. Raises :class:`InbetweenError`
    when ``earlier`` is not a finished run of this storyboard's keyframes."""
    record = earlier / RUN_RECORD
    if not record.is_file():
        raise InbetweenError(f"reuse={earlier} is not a finished run (no {RUN_RECORD}); give the output_dir of an "
                             "earlier `inbetween generate` run.")
    run = json.loads(record.read_text())
    earlier_prompts = [prompt for shot in run.get("shots", []) for prompt in shot["prompts"]]
    count = len(storyboard.prompts)
    if len(earlier_prompts) != count or "keyframe_seeds" not in run:
        raise InbetweenError(f"reuse={earlier} has {len(earlier_prompts)} keyframes (and seeds: {'keyframe_seeds' in run}); "
                             f"this storyboard has {count}. Reuse a run of the same storyboard.")
    outside = [index for index in redo if not 0 <= index < count]
    if outside:
        raise InbetweenError(f"redo={list(redo)} names keyframes {outside}, outside 0..{count - 1}.")
    changed = [index for index, (old, new) in enumerate(zip(earlier_prompts, storyboard.prompts))
               if old != new and index not in redo]
    if changed:
        raise InbetweenError(f"the prompts of keyframes {changed} differ from the earlier run's; add them to redo "
                             "(redo='[...]') or give them their earlier prompts.")
    seeds = [redo_seed(seed, index) if index in redo else old for index, old in enumerate(run["keyframe_seeds"])]
    reused = {index: read_image(earlier / "keyframes" / f"{index:02d}.png") for index in range(count) if index not in redo}
    return KeyframePlan(seeds, reused)


def make_keyframes(storyboard: Storyboard, generator, seed: int, plan: KeyframePlan | None = None) -> list[torch.Tensor]:
    """Each shot's keyframes ``(K, 3, H, W)`` by ``plan`` (default: :meth:`KeyframePlan.default`), the
    storyboard's own images (:attr:`Storyboard.images`) taken as they are; every keyframe of the run has one size."""
    plan = plan or KeyframePlan.default(storyboard, seed)
    made: dict[int, torch.Tensor] = {k: from_uint8(pixels) for k, pixels in plan.reused.items()}
    made |= {k: from_uint8(read_image(path)) for k, path in enumerate(storyboard.images) if path}
    progress = progress_bar(total=len(storyboard.prompts), desc="keyframes", unit="key", initial=len(made))
    shots, first = [], 0
    for shot in storyboard.shots:
        numbers = range(first, first + len(shot.prompts))
        for group_seed in dict.fromkeys(plan.seeds[k] for k in numbers if k not in made):
            group = [k for k in numbers if k not in made and plan.seeds[k] == group_seed]
            made |= dict(zip(group, generator([storyboard.prompts[k] for k in group], group_seed)))
            progress.update(len(group))
        shots.append(list(numbers))
        first += len(shot.prompts)
    progress.close()
    sizes = {tuple(key.shape[-2:]) for key in made.values()}
    if len(sizes) > 1:
        raise InbetweenError(f"every keyframe of a run must have one size; the keyframes have sizes (H, W) "
                             f"{sorted(sizes)}.")
    return [torch.stack([made[k] for k in numbers]) for numbers in shots]


class FrameWriter:
    """Writes a run's frames as they are made, so memory holds one call's frames, not the video.

    Into ``folder``: ``frames/NNNNNN.png`` at working size, ``video.mp4`` (streamed to ffmpeg) and
    ``video.gif`` (every ``gif_stride``-th frame, kept in memory until the end), both upscaled by
    ``scale``. Use as a context manager; the videos appear only when it closes without error.
    """

    def __init__(self, folder: Path, frame_count: int, height: int, width: int, fps: float, scale: int,
                 gif_max_frames: int) -> None:
        self.folder, self.fps, self.scale = folder, fps, scale
        self.viewing_size = (height * scale, width * scale)
        self.gif_stride = max(1, math.ceil(frame_count / gif_max_frames))
        self.written = 0
        self.seconds = 0.0  # spent writing, so that callers can tell it from making frames
        self.gif_frames: list[np.ndarray] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> FrameWriter:
        (self.folder / "frames").mkdir()
        self._send_mp4 = self._stack.enter_context(mp4_writer(self.folder / "video.mp4", *self.viewing_size, self.fps))
        return self

    def add(self, frames: np.ndarray) -> None:
        """Append uint8 ``(n, H, W, 3)`` frames to the video."""
        started = time.perf_counter()
        for frame in frames:
            write_png(self.folder / "frames" / f"{self.written:06d}.png", frame)
            viewing = upscale(frame, self.scale)
            self._send_mp4(viewing)
            if self.written % self.gif_stride == 0:
                self.gif_frames.append(viewing)
            self.written += 1
        self.seconds += time.perf_counter() - started

    def __exit__(self, *error) -> None:
        started = time.perf_counter()
        self._stack.__exit__(*error)
        if error[0] is None:
            write_gif(self.folder / "video.gif", self.gif_frames, self.fps / self.gif_stride)
        self.seconds += time.perf_counter() - started


def in_between_chunks(interpolator, left: torch.Tensor, right: torch.Tensor, flow_lr: torch.Tensor,
                      flow_rl: torch.Tensor, times: Sequence[float],
                      neighbours: Neighbours | None = None) -> Iterator[torch.Tensor]:
    """One gap's in-betweens ``(T, 3, H, W)`` in order, asked for ``interpolator.times_per_call`` at a
    time; ``neighbours`` are passed on to an interpolator that uses them."""
    per_call = interpolator.times_per_call or len(times)
    extra = {"neighbours": neighbours} if interpolator.uses_neighbours else {}
    for first in range(0, len(times), per_call):
        yield interpolator(left[None], right[None], flow_lr, flow_rl, times[first:first + per_call], **extra)[0]


def gap_neighbours(keys: torch.Tensor, flows: Mapping[int, tuple[torch.Tensor, torch.Tensor]], gap: int) -> Neighbours:
    """The keyframes of a shot just beyond its gap ``gap`` (from ``keys[gap]`` to ``keys[gap + 1]``).

    ``keys`` ``(K, 3, H, W)``: the shot's keyframes; ``flows[g]``: gap ``g``'s flow ``(1, 2, H, W)``
    from its left keyframe to its right one and back (needed for ``g = gap - 1`` and ``gap + 1``).
    """
    before = after = None
    if gap > 0:
        forward, backward = flows[gap - 1]
        before = Neighbour(keys[gap - 1][None], flow_from_gap=backward, flow_to_gap=forward)
    if gap + 2 < len(keys):
        forward, backward = flows[gap + 1]
        after = Neighbour(keys[gap + 2][None], flow_from_gap=forward, flow_to_gap=backward)
    return Neighbours(before, after)


def fill_shot(keys: torch.Tensor, shot: Shot, stages: Stages, writer: FrameWriter, first_key: int,
              progress: tqdm) -> None:
    """Write one shot's frames in order (keyframes copied in, never re-rendered) and its gaps' flow
    pictures ``flow/AA-BB.png``, ``AA`` counting keyframes across the run from ``first_key``. An
    interpolator that uses them gets each gap's neighbouring keyframes in the shot (never across a cut)."""
    key_pixels = to_uint8(keys)
    writer.add(key_pixels[:1])
    if shot.between == 0:
        writer.add(key_pixels[1:])
        return
    times = in_between_times(shot.between)
    flows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # gaps gap - 1 .. gap + 1 only
    for gap, (left, right) in enumerate(zip(keys[:-1], keys[1:])):
        for needed in range(gap, min(gap + 2, len(keys) - 1)):
            if needed not in flows:
                flows[needed] = stages.flow.bidirectional(keys[needed][None], keys[needed + 1][None])
        flows.pop(gap - 2, None)
        flow_lr, flow_rl = flows[gap]
        save_flow_png(flow_lr[0].numpy(), writer.folder / "flow" / f"{first_key + gap:02d}-{first_key + gap + 1:02d}.png")
        neighbours = gap_neighbours(keys, flows, gap)
        for frames in in_between_chunks(stages.interpolator, left, right, flow_lr, flow_rl, times, neighbours):
            writer.add(to_uint8(frames))
            progress.update(len(frames))
        writer.add(key_pixels[gap + 1:gap + 2])


def write_keyframes(folder: Path, storyboard: Storyboard, keys: list[torch.Tensor]) -> None:
    """``keyframes/NN.png`` (numbered across shots) and the contact sheet ``storyboard.png``."""
    pixels = to_uint8(torch.cat(keys))
    for index, key in enumerate(pixels):
        write_png(folder / "keyframes" / f"{index:02d}.png", key)
    write_png(folder / "storyboard.png", contact_sheet(list(pixels), storyboard.prompts))


def large_run_notice(frame_count: int, height: int, width: int, gif_stride: int) -> str | None:
    """What a user should know before a run of ``frame_count`` frames starts, or None for ordinary runs."""
    raw_bytes = frame_count * height * width * 3
    if raw_bytes < LARGE_RUN_BYTES:
        return None
    return (f"this run makes {frame_count} frames of {width}x{height} ({raw_bytes / 1e9:.1f} GB of raw pixels); "
            f"frames are written to disk as they are made (frames/, video.mp4), video.gif keeps every "
            f"{gif_stride}th frame (output.gif_max_frames). Lower `between` for a shorter run.")


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


def shot_record(shot: Shot) -> dict[str, Any]:
    """What ``run.json`` keeps of a shot: prompts, ``between``, and its own keyframe images if any."""
    images = {"images": list(shot.images)} if any(shot.images) else {}
    return {"prompts": list(shot.prompts), "between": shot.between, **images}


def stage_precisions(stages: Stages) -> dict[str, str]:
    """The resolved numeric precision (bf16 / fp32) of each stage that runs a network."""
    named = {"keyframes": stages.keyframes, "flow": stages.flow, "interpolate": stages.interpolator}
    return {name: stage.precision for name, stage in named.items() if hasattr(stage, "precision")}


def run(storyboard: Storyboard, stages: Stages, seed: int, output_dir: str | os.PathLike,
        scale: int | str = 1, record: dict | None = None, gif_max_frames: int = 240,
        plan: KeyframePlan | None = None) -> dict:
    """Make the video of ``storyboard`` and write every output into ``output_dir``.

    Frames are written as they are made (see :class:`FrameWriter`) into a staging folder that
    is moved into place at the end. ``scale`` is the viewing upscale (:func:`viewing_scale`).
    ``record`` (resolved config, stage choices, ...) is stored in ``run.json`` beside the
    seeds, versions, timings, warnings and metrics. ``plan`` says how each keyframe is made
    (default :meth:`KeyframePlan.default`). Returns the ``run.json`` content.
    """
    if gif_max_frames < 1:
        raise InbetweenError(f"output.gif_max_frames must be 1 or more, got {gif_max_frames}.")
    torch.manual_seed(seed)
    plan = plan or KeyframePlan.default(storyboard, seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    warnings = stages.keyframes.warnings([prompt for prompt, image in zip(storyboard.prompts, storyboard.images)
                                          if image is None])
    for warning in warnings:
        log.warning(warning)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    frame_count = sum(shot.frame_count for shot in storyboard.shots)
    in_betweens = frame_count - len(storyboard.prompts)
    with torch.inference_mode(), tempfile.TemporaryDirectory(prefix=".staging-", dir=output_dir) as staging:
        keys = make_keyframes(storyboard, stages.keyframes, seed, plan)
        timings["keyframes_s"] = time.perf_counter() - started
        height, width = keys[0].shape[-2:]
        folder = Path(staging)
        write_keyframes(folder, storyboard, keys)
        (folder / "flow").mkdir()
        viewing = viewing_scale(scale, height, width)
        with FrameWriter(folder, frame_count, height, width, storyboard.fps, viewing, gif_max_frames) as writer:
            notice = large_run_notice(frame_count, height, width, writer.gif_stride)
            if notice:
                log.warning(notice)
                warnings.append(notice)
            progress = progress_bar(total=in_betweens, desc="in-betweens", unit="frame")
            first_key = 0
            for shot_keys, shot in zip(keys, storyboard.shots):
                fill_shot(shot_keys, shot, stages, writer, first_key, progress)
                first_key += len(shot.prompts)
            progress.close()
        timings["write_s"] = writer.seconds
        timings["fill_s"] = time.perf_counter() - started - timings["keyframes_s"] - writer.seconds
        timings["total_s"] = time.perf_counter() - started
        summary = {
            **(record or {}),
            "seed": seed,
            "keyframe_seeds": plan.seeds,
            "reused_keyframes": sorted(plan.reused),
            "shots": [shot_record(shot) for shot in storyboard.shots],
            "fps": storyboard.fps,
            "frame_count": frame_count,
            "keyframe_count": len(storyboard.prompts),
            "size_hw": [height, width],
            "viewing_scale": viewing,
            "gif_stride": writer.gif_stride,
            "precision": stage_precisions(stages),
            "warnings": warnings,
            "timings": timings,
            "metrics": {
                "seconds_per_keyframe": timings["keyframes_s"] / len(storyboard.prompts),
                "interpolated_fps": in_betweens / timings["fill_s"] if in_betweens else None,
                **keyframe_metrics(storyboard, [to_uint8(shot_keys) for shot_keys in keys]),
            },
            "versions": versions(),
        }
        write_run_record(folder, summary)
        publish(folder, output_dir)
    log.info("wrote %d frames to %s", frame_count, output_dir)
    return summary
