"""``inbetween evaluate``: interpolators against ground truth, every method in one run.

Keyframe generators are scored on the ``captions`` and ``shots`` datasets by
:mod:`inbetween.keyframe_eval`. Interpolation datasets (each yields :class:`Case` objects: two keyframes, the times between them and
the true frames at those times):

* ``world``: seeded Shapes World clips of every motion kind, keyframes ``gap`` frames
  apart (``gap - 1`` in-betweens), exact ground-truth flow.
* ``triplets``: every triplet of ``adacof_testsets`` (Middlebury-other, DAVIS, UCF101,
  and the odd frames of ``sample_video`` from its even frames). Evaluation only.
* ``videos``: real videos with every other frame dropped; the dropped frame is the truth.
* ``world_shots`` and ``video_shots``: shots of several keyframes (world clips with keyframes at
  ``t = 0, 1/3, 2/3, 1``; the videos with a keyframe every 4th frame), one case per gap with the
  keyframes beyond it in the shot (:class:`interpolate.base.Neighbours`). Interpolators that can
  follow them run twice, ``NAME`` (the gap alone) and ``NAME+neighbours``; rows per kind or video,
  per gap of the shot (``first gap``, ``middle gap``, ``last gap``) and over all.

Flow estimators (``flow_methods``) are scored on the ``flow`` dataset: Sintel pairs and world
clips with true flow (:mod:`inbetween.flow_eval`), end-point error and seconds per pair.

Metrics per case, averaged per (subset, method): PSNR (dB, 8-bit frames, peak 255), SSIM
(Gaussian window 11, on [0, 1]), warping error (temporal consistency: mean absolute
difference in 8-bit units between each frame of ``[left, in-betweens..., right]`` and its
successor warped back by the *reference* flow, over pixels the reference marks visible;
the reference flow is exact on world clips and DIS between true frames on real data, the
same for every method), seconds per in-between frame (flow estimation included), and on
world clips the end-point error of the flow a method used against the exact flow (``flow_epe``).
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import hydra
import kornia
import numpy as np
import torch
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, MissingMandatoryValue

from flow.metrics import endpoint_error
from inbetween import keyframe_eval
from inbetween.config import missing_setting
from inbetween.errors import InbetweenError
from inbetween.flow_eval import flow_rows, sintel_cases, world_flow_cases
from inbetween.progress import progress_bar
from inbetween.sweep import write_run_record, write_table
from inbetween.video import find_videos, from_uint8, read_image, read_video, to_uint8
from inbetween.warp import backward_warp, occlusion_mask
from inbetween.world import Clip
from interpolate.base import Neighbour, Neighbours

PSNR_CAP = 100.0


@dataclass
class Case:
    """One interpolation problem with its answer.

    ``keys``: uint8 ``(2, H, W, 3)``; ``times``: ``T`` times in ``(0, 1)``; ``truth``:
    uint8 ``(T, H, W, 3)``. ``reference_flows`` ``(T + 1, 2, H, W)`` and ``reference_visible``
    ``(T + 1, H, W)`` describe the motion between consecutive frames of
    ``[left, truth..., right]`` (``None`` until :func:`with_reference_flow` fills them).
    ``key_flow`` ``(2, H, W)`` is the true flow from left to right keyframe, where known.
    In a shot of several keyframes, ``before`` and ``after`` uint8 ``(H, W, 3)`` are the keyframes
    just beyond the gap (None where there is none) and ``part`` says which gap of the shot it is.
    """

    subset: str
    name: str
    keys: np.ndarray
    times: list[float]
    truth: np.ndarray
    reference_flows: np.ndarray | None = None
    reference_visible: np.ndarray | None = None
    key_flow: np.ndarray | None = None
    before: np.ndarray | None = None
    after: np.ndarray | None = None
    part: str | None = None

    @property
    def sequence(self) -> np.ndarray:
        """``[left, truth..., right]``, uint8 ``(T + 2, H, W, 3)``."""
        return between_keys(self.keys, self.truth)


def between_keys(keys: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``[keys[0], frames..., keys[1]]``: uint8 ``(2, H, W, 3)`` and ``(T, H, W, 3)`` -> ``(T + 2, H, W, 3)``."""
    return np.concatenate([keys[:1], frames, keys[1:]])


# ----------------------------------------------------------------------------- datasets


def world_cases(gaps: Sequence[int], clip_frames: int, clips_per_kind: int, size: int, seed: int) -> Iterator[Case]:
    """Shapes World clips with keyframes ``gap`` frames apart; clip seeds start at ``seed``.

    A clip spans ``t`` in ``[0, 1]`` as ``clip_frames`` frames (frame ``k`` at
    ``t = k / (clip_frames - 1)``); each case takes frames ``0`` and ``gap`` as keyframes,
    so the motion between keyframes grows with the gap.
    """
    step = 1.0 / (clip_frames - 1)
    for gap in gaps:
        if not 2 <= gap < clip_frames:
            raise InbetweenError(f"world gaps must be between 2 and clip_frames - 1 = {clip_frames - 1}, got {gap}.")
        frame_times = [k * step for k in range(gap + 1)]
        pairs = list(zip(frame_times[:-1], frame_times[1:]))
        for kind, index, clip in Clip.every_kind(clips_per_kind, seed):
            frames = np.stack([clip.render(t, size) for t in frame_times])
            flows, visible = zip(*(clip.flow_and_visible(t0, t1, size) for t0, t1 in pairs))
            yield Case(
                subset=f"gap {gap}",
                name=f"{kind}-{index}",
                keys=frames[[0, -1]],
                times=[j / gap for j in range(1, gap)],
                truth=frames[1:-1],
                reference_flows=np.stack(flows),
                reference_visible=np.stack(visible),
                key_flow=clip.flow(0.0, frame_times[-1], size),
            )


def _gap_part(gap: int, gaps: int) -> str:
    """``first gap``, ``middle gap`` or ``last gap`` of a shot of ``gaps`` gaps (one gap: ``only gap``)."""
    if gaps == 1:
        return "only gap"
    return "first gap" if gap == 0 else "last gap" if gap == gaps - 1 else "middle gap"


def shot_cases(subset: str, name: str, frames: np.ndarray, stride: int, keyframes: int,
               flows: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
               key_flows: Sequence[np.ndarray] | None = None) -> Iterator[Case]:
    """The gaps of one shot as cases: ``frames`` uint8 ``(N, H, W, 3)`` with ``N >= (keyframes - 1)
    stride + 1``, a keyframe every ``stride`` frames from the first, the frames between them the truth.
    ``flows[k]`` (exact, where known): the flow ``(2, H, W)`` from frame ``k`` to ``k + 1`` and its
    visibility ``(H, W)``; ``key_flows[g]``: the true flow across gap ``g``."""
    keys_at = [gap * stride for gap in range(keyframes)]
    for gap in range(keyframes - 1):
        first, last = keys_at[gap], keys_at[gap + 1]
        reference = (None, None) if flows is None else (np.stack([f for f, _ in flows[first:last]]),
                                                        np.stack([v for _, v in flows[first:last]]))
        yield Case(
            subset=subset,
            name=f"{name} gap {gap + 1}",
            keys=frames[[first, last]],
            times=[j / stride for j in range(1, stride)],
            truth=frames[first + 1:last],
            reference_flows=reference[0],
            reference_visible=reference[1],
            key_flow=None if key_flows is None else key_flows[gap],
            before=frames[keys_at[gap - 1]] if gap > 0 else None,
            after=frames[keys_at[gap + 2]] if gap + 2 < keyframes else None,
            part=_gap_part(gap, keyframes - 1),
        )


def world_shot_cases(keyframes: int, between: int, clips_per_kind: int, size: int, seed: int) -> Iterator[Case]:
    """Shapes World clips (seeds from ``seed``) as shots of ``keyframes`` keyframes evenly spaced over
    ``t`` in ``[0, 1]``, ``between`` in-betweens per gap, exact reference flow; subsets are the kinds."""
    if keyframes < 2 or between < 1:
        raise InbetweenError(f"world_shots needs keyframes >= 2 and between >= 1, got {keyframes} and {between}.")
    stride = between + 1
    frame_count = (keyframes - 1) * stride + 1
    frame_times = [k / (frame_count - 1) for k in range(frame_count)]
    for kind, index, clip in Clip.every_kind(clips_per_kind, seed):
        frames = np.stack([clip.render(t, size) for t in frame_times])
        flows = [clip.flow_and_visible(t0, t1, size) for t0, t1 in zip(frame_times[:-1], frame_times[1:])]
        key_flows = [clip.flow(frame_times[k], frame_times[k + stride], size)
                     for k in range(0, frame_count - 1, stride)]
        yield from shot_cases(kind, f"{kind}-{index}", frames, stride, keyframes, flows, key_flows)


def _video_frames(paths: Sequence[str], max_frames: int, first_frame: int = 0) -> Iterator[tuple[Path, np.ndarray]]:
    """Each video among ``paths`` with its frames ``first_frame .. first_frame + max_frames - 1``
    (fewer where it ends sooner), uint8 ``(N, H, W, 3)``."""
    if first_frame < 0:
        raise InbetweenError(f"videos.first_frame must be 0 or more, got {first_frame}.")
    for path in find_videos(paths, "videos.paths"):
        frames = read_video(path, max_frames, first_frame)
        if not len(frames):
            raise InbetweenError(f"video '{path}' ends before videos.first_frame={first_frame}; give a smaller "
                                 "first_frame or leave that video out of videos.paths.")
        yield path, frames


def video_shot_cases(paths: Sequence[str], max_frames: int, keyframes: int, stride: int,
                     first_frame: int = 0) -> Iterator[Case]:
    """Real videos (``max_frames`` frames of each from ``first_frame``) as shots of ``keyframes``
    keyframes ``stride`` frames apart, one shot after the other; subsets are the videos, a case's name
    gives its shot's first frame in the video."""
    if keyframes < 2 or stride < 2:
        raise InbetweenError(f"video_shots needs keyframes >= 2 and stride >= 2, got {keyframes} and {stride}.")
    span = (keyframes - 1) * stride
    for path, frames in _video_frames(paths, max_frames, first_frame):
        for start in range(0, len(frames) - span, span):
            yield from shot_cases(path.stem, f"{path.stem}-{first_frame + start:04d}", frames[start:start + span + 1],
                                  stride, keyframes)


def _triplet_files(root: Path) -> Iterator[tuple[str, str, tuple[Path, Path, Path]]]:
    """``(subset, name, (first, middle, last))`` for every triplet under ``root``."""
    for subset in ("middlebury_others", "davis"):
        for sequence in sorted((root / subset / "input").glob("*")):
            gt = root / subset / "gt" / sequence.name / "frame10i11.png"
            yield subset, sequence.name, (sequence / "frame10.png", gt, sequence / "frame11.png")
    for folder in sorted((root / "ucf101").glob("*"), key=lambda p: int(p.name) if p.name.isdigit() else 0):
        yield "ucf101", folder.name, tuple(folder / f"frame{i}.png" for i in range(3))
    frames = sorted((root / "sample_video").glob("*.png"))
    for start in range(0, len(frames) - 2, 2):
        yield "sample_video", frames[start + 1].stem, tuple(frames[start:start + 3])


def triplet_cases(root: str | Path, limit: int | None = None) -> Iterator[Case]:
    """Every triplet of an ``adacof_testsets`` folder (``limit`` per subset, if given)."""
    root = Path(root)
    if not root.is_dir():
        raise InbetweenError(
            f"triplet folder '{root}' does not exist. Point triplets.root (or data_root, or the "
            "environment variable INBETWEEN_DATA) at the folder that holds adacof_testsets, e.g. "
            "data_root=../shared/data/real."
        )
    taken: dict[str, int] = {}
    for subset, name, paths in _triplet_files(root):
        if limit is not None and taken.get(subset, 0) >= limit:
            continue
        taken[subset] = taken.get(subset, 0) + 1
        first, middle, last = (read_image(path) for path in paths)
        yield Case(subset, name, np.stack([first, last]), [0.5], middle[None])


def video_cases(paths: Sequence[str], max_frames: int, first_frame: int = 0) -> Iterator[Case]:
    """Real videos with every other frame dropped: counting from ``first_frame``, frames ``2i`` and
    ``2i + 2`` are the keyframes, frame ``2i + 1`` the truth, over ``max_frames`` frames of each video;
    a case's name gives its truth's frame in the video."""
    for path, frames in _video_frames(paths, max_frames, first_frame):
        for start in range(0, len(frames) - 2, 2):
            yield Case(path.stem, f"{path.stem}-{first_frame + start + 1:04d}", frames[[start, start + 2]], [0.5],
                       frames[start + 1:start + 2])


# ----------------------------------------------------------------------------- metrics


def psnr(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean PSNR in dB over frames of uint8 ``(T, H, W, 3)`` arrays (peak 255); an exact
    frame counts as :data:`PSNR_CAP` dB rather than infinity."""
    error = (prediction.astype(np.float64) - truth.astype(np.float64)) ** 2
    mse = error.reshape(len(error), -1).mean(axis=1)
    return float(np.mean(np.minimum(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), PSNR_CAP)))


def ssim(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over frames of uint8 ``(T, H, W, 3)`` arrays (window 11, images in [0, 1])."""
    unit = [(from_uint8(pixels) + 1) / 2 for pixels in (prediction, truth)]
    return float(kornia.metrics.ssim(*unit, 11).mean())


def warping_error(frames: np.ndarray, flows: np.ndarray, visible: np.ndarray) -> float:
    """Temporal consistency of uint8 frames ``(N, H, W, 3)`` under reference ``flows``
    ``(N - 1, 2, H, W)`` and masks ``visible`` ``(N - 1, H, W)``: mean absolute 8-bit
    difference between frame ``k`` and frame ``k + 1`` warped back to it."""
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    warped = backward_warp(images[1:], torch.from_numpy(flows))
    difference = (images[:-1] - warped).abs().mean(dim=1)
    mask = torch.from_numpy(visible).float()
    return float((difference * mask).sum() / mask.sum().clamp(min=1))


def with_reference_flow(case: Case, flow_estimator) -> Case:
    """Fill a real case's reference flows by estimating them between its true frames."""
    if case.reference_flows is not None:
        return case
    sequence = from_uint8(case.sequence)
    forward, backward = flow_estimator.bidirectional(sequence[:-1], sequence[1:])
    case.reference_flows = forward.numpy()
    case.reference_visible = occlusion_mask(forward, backward)[:, 0].numpy() > 0.5
    return case


# ----------------------------------------------------------------------------- running


@dataclass
class Interpolated:
    """One method's answer to a case: uint8 ``frames`` ``(T, H, W, 3)``, the ``seconds`` it took
    (flow included) and the flow it used from left to right, ``(2, H, W)`` (None without flow)."""

    frames: np.ndarray
    seconds: float
    flow: torch.Tensor | None


def case_neighbours(case: Case, flow_estimator) -> Neighbours:
    """The keyframes beyond a shot case's gap, with the flow between each and the gap's nearer keyframe."""
    def neighbour(pixels: np.ndarray | None, nearer: np.ndarray) -> Neighbour | None:
        if pixels is None:
            return None
        image = from_uint8(pixels[None])
        from_gap, to_gap = flow_estimator.bidirectional(from_uint8(nearer[None]), image)
        return Neighbour(image, from_gap, to_gap)

    return Neighbours(neighbour(case.before, case.keys[0]), neighbour(case.after, case.keys[1]))


def interpolate_case(method, flow_estimator, case: Case) -> Interpolated:
    """Run one method on one case (with the keyframes beyond the gap, if it uses them; their flow is
    counted in the seconds, though a shot shares it between gaps)."""
    left, right = from_uint8(case.keys[:1]), from_uint8(case.keys[1:])
    started = time.perf_counter()
    flow_lr = flow_rl = None
    if method.needs_flow:
        flow_lr, flow_rl = flow_estimator.bidirectional(left, right)
    extra = {"neighbours": case_neighbours(case, flow_estimator)} if method.uses_neighbours else {}
    frames = method(left, right, flow_lr, flow_rl, case.times, **extra)[0]
    return Interpolated(to_uint8(frames), time.perf_counter() - started, None if flow_lr is None else flow_lr[0])


def score_case(answer: Interpolated, case: Case) -> dict[str, float]:
    """PSNR, SSIM, warping error, seconds per frame and, where the true flow is known and the
    method used flow, the flow's end-point error ``flow_epe`` (pixels)."""
    sequence = between_keys(case.keys, answer.frames)
    scores = {
        "psnr": psnr(answer.frames, case.truth),
        "ssim": ssim(answer.frames, case.truth),
        "warp_error": warping_error(sequence, case.reference_flows, case.reference_visible),
        "s_per_frame": answer.seconds / len(case.times),
    }
    if case.key_flow is not None and answer.flow is not None:
        scores["flow_epe"] = endpoint_error(answer.flow, torch.from_numpy(case.key_flow))
    return scores


def evaluate_cases(cases: Iterator[Case], methods: dict[str, Any], flow_estimator,
                   description: str, method_flows: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Score every method on every case; one row per (case, method). ``flow_estimator`` gives real
    cases their reference flow and the methods their flow, unless ``method_flows[NAME]`` names another."""
    method_flows = method_flows or {}
    rows = []
    for case in progress_bar(cases, desc=description, unit="case"):
        with_reference_flow(case, flow_estimator)
        for name, method in methods.items():
            answer = interpolate_case(method, method_flows.get(name, flow_estimator), case)
            part = {"part": case.part} if case.part else {}
            rows.append({"subset": case.subset, **part, "case": case.name, "method": name, **score_case(answer, case)})
    return rows


def with_each_flow(methods: dict[str, Any], flows: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(methods, method_flows)`` for :func:`evaluate_cases`: each method that needs flow once per flow
    estimator, named ``METHOD+FLOW``; methods without flow once, under their own name."""
    expanded, method_flows = {}, {}
    for name, method in methods.items():
        if not method.needs_flow:
            expanded[name] = method
            continue
        for flow_name, estimator in flows.items():
            expanded[f"{name}+{flow_name}"] = method
            method_flows[f"{name}+{flow_name}"] = estimator
    return expanded, method_flows


def with_neighbour_variants(methods: dict[str, Any], method_flows: dict[str, Any] | None = None
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(methods, method_flows)`` with each method that accepts the keyframes beyond a gap twice: under
    its name without them and as ``NAME+neighbours`` with them (same options, same flow)."""
    expanded, flows = {}, dict(method_flows or {})
    for name, method in methods.items():
        if not method.accepts_neighbours:
            expanded[name] = method
            continue
        for suffix, uses in (("", False), ("+neighbours", True)):
            variant = copy.copy(method)
            variant.uses_neighbours = uses
            expanded[name + suffix] = variant
            if name in flows:
                flows[name + suffix] = flows[name]
    return expanded, flows


METRICS = ("psnr", "ssim", "warp_error", "s_per_frame", "flow_epe")


def summarise(rows: list[dict[str, Any]], metrics: Sequence[str] = METRICS) -> list[dict[str, Any]]:
    """Mean of each of ``metrics`` per (subset, method), then per (part of a shot, method) where rows
    have a ``part``, then per method over all cases (last); a metric no case of a group has
    (``flow_epe`` without true flow or for methods without flow) is left out."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["subset"], row["method"]), []).append(row)
    for row in rows:
        if "part" in row:
            groups.setdefault((row["part"], row["method"]), []).append(row)
    for row in rows:
        groups.setdefault(("all", row["method"]), []).append(row)
    table = []
    for (subset, method), members in groups.items():
        means = {metric: float(np.mean([m[metric] for m in members]))
                 for metric in metrics if all(metric in m for m in members)}
        table.append({"subset": subset, "method": method, "cases": len(members), **means})
    return table


KEYFRAME_DATASETS = ("captions", "shots")
INTERPOLATION_DATASETS = ("world", "world_shots", "triplets", "videos", "video_shots")
#: Interpolation datasets whose cases are gaps of shots, with the keyframes beyond them.
SHOT_DATASETS = ("world_shots", "video_shots")
FLOW_DATASETS = ("flow",)
FLOW_METRICS = ("epe", "s_per_pair")


def dataset_cases(name: str, cfg: DictConfig) -> Iterator[Case]:
    """The cases of interpolation dataset ``name`` as configured under ``cfg[name]``."""
    if name == "world":
        world = cfg.world
        return world_cases(list(world.gaps), world.clip_frames, world.clips_per_kind, world.size, world.seed)
    if name == "world_shots":
        shots = cfg.world_shots
        return world_shot_cases(shots.keyframes, shots.between, shots.clips_per_kind, shots.size, shots.seed)
    if name == "triplets":
        return triplet_cases(cfg.triplets.root, cfg.triplets.limit)
    if name == "video_shots":
        return video_shot_cases(list(cfg.videos.paths), cfg.videos.max_frames, cfg.video_shots.keyframes,
                                cfg.video_shots.stride, cfg.videos.first_frame)
    return video_cases(list(cfg.videos.paths), cfg.videos.max_frames, cfg.videos.first_frame)


def load_methods(names: Sequence[str], group: str = "interpolate", options: Any = None,
                 options_key: str = "method_options") -> dict[str, Any]:
    """Instantiate each named config of ``group`` (``conf/GROUP/NAME.yaml``), with ``options[NAME]``
    (a mapping of constructor options, e.g. ``{"checkpoint": DIR}``, set on the command line as
    ``+OPTIONS_KEY.NAME.OPTION=VALUE``) merged over it."""
    options = options or {}
    unused = sorted(set(options) - set(names))
    if unused:
        raise InbetweenError(f"options are given for {', '.join(unused)}, which is not among the methods evaluated "
                             f"({', '.join(names)}); add it to the methods or drop its options.")
    methods = {}
    for name in names:
        try:
            node = hydra.compose(overrides=[f"+{group}={name}"])[group]
        except MissingConfigException:
            raise InbetweenError(f"unknown method '{name}': there is no conf/{group}/{name}.yaml.") from None
        node.merge_with(options.get(name, {}))
        try:
            methods[name] = hydra.utils.instantiate(node)
        except MissingMandatoryValue as error:
            key = f"{options_key}.{name}.{error.full_key.split('.', 1)[-1]}"
            raise missing_setting(key, f"+{key}=VALUE") from None
    return methods


def _check_datasets(names: Sequence[str]) -> None:
    known = KEYFRAME_DATASETS + INTERPOLATION_DATASETS + FLOW_DATASETS
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InbetweenError(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(known)}.")


def _keyframe_shots(name: str, cfg: DictConfig) -> list[list[str]]:
    if name == "captions":
        return keyframe_eval.caption_shots(cfg.captions.count, cfg.captions.seed)
    return keyframe_eval.moving_shots(cfg.shots.count, cfg.shots.keyframes, cfg.shots.seed)


def _keyframe_tables(cfg: DictConfig, datasets: Sequence[str], output_dir: Path) -> dict[str, float]:
    """Score ``cfg.keyframe_methods`` on the keyframe datasets; write their storyboards and tables."""
    methods = load_methods(list(cfg.keyframe_methods), "keyframes", cfg.keyframe_method_options, "keyframe_method_options")
    scorer = hydra.utils.instantiate(cfg.clip_score)
    metrics: dict[str, float] = {}
    for dataset in datasets:
        shots = _keyframe_shots(dataset, cfg)
        keyframe_eval.write_storyboard(output_dir / f"storyboard_{dataset}.yaml", shots)
        table = keyframe_eval.keyframe_table(methods, shots, cfg.seed, scorer)
        columns = list(table[0])
        markdown = write_table(output_dir, f"eval_{dataset}", table, columns)
        print(f"\n## {dataset}\n\n{markdown}")
        metrics.update({f"{dataset}.{row['method']}.{key}": row[key]
                        for row in table for key in columns[2:]})
    return metrics


def _interpolation_tables(cfg: DictConfig, datasets: Sequence[str], output_dir: Path) -> dict[str, float]:
    """Score ``cfg.methods`` on the interpolation datasets, each flow-using method with ``cfg.flow`` or,
    when ``cfg.interpolation_flows`` lists estimators, once with each; write one table per dataset."""
    methods = load_methods(list(cfg.methods), options=cfg.method_options)
    flow_estimator = hydra.utils.instantiate(cfg.flow)
    method_flows = None
    if cfg.interpolation_flows:
        flows = load_methods(list(cfg.interpolation_flows), "flow", cfg.flow_method_options, "flow_method_options")
        methods, method_flows = with_each_flow(methods, flows)
    metrics: dict[str, float] = {}
    for dataset in datasets:
        cases = dataset_cases(dataset, cfg)
        dataset_methods, dataset_flows = (with_neighbour_variants(methods, method_flows) if dataset in SHOT_DATASETS
                                          else (methods, method_flows))
        table = summarise(evaluate_cases(cases, dataset_methods, flow_estimator, dataset, dataset_flows))
        markdown = write_table(output_dir, f"eval_{dataset}", table, ["subset", "method", "cases", *METRICS])
        print(f"\n## {dataset}\n\n{markdown}")
        metrics.update({f"{dataset}.{row['method']}.{metric}": row[metric]
                        for row in table if row["subset"] == "all" for metric in METRICS if metric in row})
    return metrics


def _flow_table(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    """End-point error of every ``cfg.flow_methods`` estimator on Sintel and on world clips keyframes
    ``max(world.gaps)`` frames apart (:mod:`inbetween.flow_eval`); writes ``eval_flow``."""
    estimators = load_methods(list(cfg.flow_methods), "flow", cfg.flow_method_options, "flow_method_options")
    world = cfg.world
    cases = itertools.chain(sintel_cases(cfg.flow_gt.root), world_flow_cases(
        max(world.gaps), world.clip_frames, world.clips_per_kind, world.size, world.seed))
    table = [row for row in summarise(flow_rows(cases, estimators), FLOW_METRICS) if row["subset"] != "all"]
    markdown = write_table(output_dir, "eval_flow", table, ["subset", "method", "cases", *FLOW_METRICS])
    print(f"\n## flow\n\n{markdown}")
    return {f"flow.{row['subset']}.{row['method']}.epe": row["epe"] for row in table}


def run_from_config(cfg: DictConfig, record: dict[str, Any]) -> dict[str, Any]:
    """Evaluate on ``cfg.datasets``: keyframe generators on the keyframe datasets, interpolators on
    the others; print and write one table per dataset, then ``run.json``."""
    datasets = list(cfg.datasets)
    _check_datasets(datasets)
    output_dir = Path(cfg.output_dir)
    metrics: dict[str, float] = {}
    torch.manual_seed(cfg.seed)
    with torch.inference_mode():
        keyframe_sets = [name for name in datasets if name in KEYFRAME_DATASETS]
        if keyframe_sets:
            metrics |= _keyframe_tables(cfg, keyframe_sets, output_dir)
        interpolation_sets = [name for name in datasets if name in INTERPOLATION_DATASETS]
        if interpolation_sets:
            metrics |= _interpolation_tables(cfg, interpolation_sets, output_dir)
        if "flow" in datasets:
            metrics |= _flow_table(cfg, output_dir)
    summary = {**record, "metrics": metrics}
    write_run_record(output_dir, summary)
    return summary
