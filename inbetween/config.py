"""Structured-config schemas: the types of every top-level key.

The values (the defaults) live in ``conf/``; these dataclasses only fix which keys exist
and their types, so a typo or a wrong type fails at start with Hydra's message naming the
key. Stage groups (``keyframes``, ``flow``, ``interpolate``) are free-form here: each
stage's YAML names its ``_target_`` class, whose constructor checks its own arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from inbetween.errors import InbetweenError

#: How to fill a required setting that is left unset, by its last key.
_MISSING_HINTS = {
    "images": "give two or more same-size keyframe images, e.g. images='[a.png,b.png,c.png]'",
    "model": "a local diffusers pipeline folder, or one .safetensors file with keyframes.config (nothing is downloaded)",
    "checkpoint": ("it names a trained model folder (`inbetween train stage=interpolator output_dir=OUT` "
                   "writes OUT/model; no trained interpolator ships yet), or use a method that needs none, "
                   "such as flow_warp"),
}


@dataclass
class OutputConfig:
    scale: Any = MISSING  # upscale of video.mp4 / video.gif for viewing: "auto" or a whole number >= 1
    gif_max_frames: int = MISSING  # video.gif keeps every k-th frame so that it has at most this many


@dataclass
class CommonConfig:
    seed: int = MISSING
    output_dir: str = MISSING


@dataclass
class FlowCommandConfig(CommonConfig):
    flow: Any = MISSING  # the optical-flow stage


@dataclass
class RunConfig(FlowCommandConfig):
    between: Optional[int] = None  # in-betweens per gap; None: the storyboard's, else 7
    fps: Optional[float] = None  # None: the storyboard's, else 12
    output: OutputConfig = field(default_factory=OutputConfig)
    keyframes: Any = MISSING
    interpolate: Any = MISSING


@dataclass
class GenerateConfig(RunConfig):
    storyboard: Any = MISSING  # YAML file path, or a list of prompts (one shot)
    reuse: Optional[str] = None  # an earlier run's output_dir: its keyframes are taken, but those in redo
    redo: list[int] = field(default_factory=list)  # keyframes (numbered across shots) to draw anew; needs reuse
    keyframe_seeds: Optional[list[int]] = None  # a seed per keyframe (as run.json records them); None: from seed


@dataclass
class InterpolateConfig(RunConfig):
    images: Any = MISSING  # list of keyframe image paths (one shot)


@dataclass
class WorldEvalConfig:
    gaps: list[int] = MISSING  # keyframes this many frames apart
    clip_frames: int = MISSING  # frames a clip spans over t in [0, 1]
    clips_per_kind: int = MISSING
    size: int = MISSING
    seed: int = MISSING  # first clip seed; keep training seeds away from these


@dataclass
class WorldShotsEvalConfig:
    keyframes: int = MISSING  # keyframes per shot, evenly spaced over a world clip's t in [0, 1]
    between: int = MISSING  # in-betweens per gap
    clips_per_kind: int = MISSING
    size: int = MISSING
    seed: int = MISSING  # first clip seed; keep training seeds away from these


@dataclass
class VideoShotsEvalConfig:
    keyframes: int = MISSING  # keyframes per shot (shots follow each other through videos.max_frames frames)
    stride: int = MISSING  # video frames from one keyframe to the next


@dataclass
class TripletEvalConfig:
    root: str = MISSING
    limit: Optional[int] = None  # triplets per subset; None: all


@dataclass
class VideoEvalConfig:
    paths: list[str] = MISSING  # video files or folders of videos
    max_frames: int = MISSING  # frames read from each video, from first_frame on
    first_frame: int = 0  # the first frame read (0: the evaluation frames)


@dataclass
class FlowGtEvalConfig:
    root: str = MISSING  # folder holding sintel/ (frames with true flow)


@dataclass
class CaptionsEvalConfig:
    count: int = MISSING  # seeded random captions, one shot each
    seed: int = MISSING


@dataclass
class ShotsEvalConfig:
    count: int = MISSING  # shots that move one object
    keyframes: int = MISSING  # prompts per shot (distinct positions)
    seed: int = MISSING


@dataclass
class EvaluateConfig(FlowCommandConfig):
    data_root: str = MISSING
    methods: list[str] = MISSING  # names of conf/interpolate/*.yaml
    keyframe_methods: list[str] = MISSING  # names of conf/keyframes/*.yaml
    method_options: dict[str, Any] = field(default_factory=dict)  # per interpolator: constructor options
    keyframe_method_options: dict[str, Any] = field(default_factory=dict)  # per keyframe generator
    flow_methods: list[str] = MISSING  # names of conf/flow/*.yaml scored on the flow dataset
    interpolation_flows: list[str] = MISSING  # conf/flow/*.yaml each flow-using interpolator runs with; []: `flow`
    flow_method_options: dict[str, Any] = field(default_factory=dict)  # per flow estimator
    datasets: list[str] = MISSING  # captions, shots (keyframes); world, world_shots, triplets, videos, video_shots; flow
    clip_score: Any = MISSING  # the CLIP model of the clip_score metric (instantiated)
    captions: CaptionsEvalConfig = field(default_factory=CaptionsEvalConfig)
    shots: ShotsEvalConfig = field(default_factory=ShotsEvalConfig)
    world: WorldEvalConfig = field(default_factory=WorldEvalConfig)
    world_shots: WorldShotsEvalConfig = field(default_factory=WorldShotsEvalConfig)
    triplets: TripletEvalConfig = field(default_factory=TripletEvalConfig)
    flow_gt: FlowGtEvalConfig = field(default_factory=FlowGtEvalConfig)
    videos: VideoEvalConfig = field(default_factory=VideoEvalConfig)
    video_shots: VideoShotsEvalConfig = field(default_factory=VideoShotsEvalConfig)


@dataclass
class TrainerConfig:
    """``trainer:`` of ``conf/stage/NAME.yaml``: how :func:`inbetween.training.train` trains."""

    steps: int = MISSING  # optimizer steps in all (a rerun resumes until it has done these)
    batch_size: int = MISSING  # global batch, split evenly over torchrun's processes
    lr: float = MISSING  # AdamW learning rate after warmup (constant)
    weight_decay: float = MISSING
    warmup_steps: int = MISSING  # linear warmup from lr / warmup_steps; 0: none
    ema_decay: float = MISSING  # of the weights' moving average, the weights sampled and exported
    grad_clip: float = MISSING  # max global gradient norm; 0: no clipping
    precision: str = MISSING  # auto (bf16 where the hardware runs it faster than fp32: CUDA, AMX; else fp32), bf16 (autocast) or fp32
    checkpoint_every: int = MISSING  # steps between checkpoints (and loss.png redraws)
    sample_every: int = MISSING  # steps between sample grids
    log_every: int = MISSING  # steps between metrics.jsonl lines
    num_workers: int = 0  # DataLoader worker processes per rank; 0: load in the training process


@dataclass
class TrainConfig(CommonConfig):
    task: Any = MISSING  # the stage's inbetween.training.TrainingTask
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def register() -> None:
    """Register the schemas under the names the primary configs list in their defaults, and the
    ``${data_root:}`` resolver."""
    if not OmegaConf.has_resolver("data_root"):
        OmegaConf.register_new_resolver("data_root", data_root)
    store = ConfigStore.instance()
    store.store(name="generate_schema", node=GenerateConfig)
    store.store(name="interpolate_schema", node=InterpolateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="train_schema", node=TrainConfig)


def missing_setting(key: str, override: str | None = None) -> InbetweenError:
    """The error for the required setting ``key`` (e.g. ``interpolate.checkpoint``) left unset;
    ``override`` is how the user sets it, ``KEY=VALUE`` unless given."""
    hint = _MISSING_HINTS.get(key.rsplit(".", 1)[-1])
    return InbetweenError(f"{key} is not set; pass {override or key + '=VALUE'}" + (f": {hint}." if hint else "."))


#: The real data's folder, relative to the folder that holds this repository's clone.
_SHARED_REAL_DATA = Path("shared") / "data" / "real"


def data_root() -> str:
    """Where the real data lives (``${data_root:}`` in ``conf/``): ``$INBETWEEN_DATA`` when set, else
    ``../shared/data/real`` beside the repository this package runs from, else beside the current
    folder; when none exists, the first of these, so that errors name the path tried."""
    if os.environ.get("INBETWEEN_DATA"):
        return os.environ["INBETWEEN_DATA"]
    repository = Path(__file__).resolve().parents[1]
    candidates = [repository.parent / _SHARED_REAL_DATA, Path.cwd().parent / _SHARED_REAL_DATA]
    return str(next((path for path in candidates if path.is_dir()), candidates[0]))
