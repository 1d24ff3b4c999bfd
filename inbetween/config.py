"""Structured-config schemas: the types of every top-level key.

The values (the defaults) live in ``conf/``; these dataclasses only fix which keys exist
and their types, so a typo or a wrong type fails at start with Hydra's message naming the
key. Stage groups (``keyframes``, ``flow``, ``interpolate``) are free-form here: each
stage's YAML names its ``_target_`` class, whose constructor checks its own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class OutputConfig:
    scale: int = MISSING  # integer upscale of video.mp4 / video.gif for viewing


@dataclass
class CommonConfig:
    seed: int = MISSING
    output_dir: str = MISSING
    flow: Any = MISSING


@dataclass
class RunConfig(CommonConfig):
    between: Optional[int] = None  # in-betweens per gap; None: the storyboard's, else 7
    fps: Optional[float] = None  # None: the storyboard's, else 12
    output: OutputConfig = field(default_factory=OutputConfig)
    keyframes: Any = MISSING
    interpolate: Any = MISSING


@dataclass
class GenerateConfig(RunConfig):
    storyboard: Any = MISSING  # YAML file path, or a list of prompts (one shot)


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
class TripletEvalConfig:
    root: str = MISSING
    limit: Optional[int] = None  # triplets per subset; None: all


@dataclass
class VideoEvalConfig:
    paths: list[str] = MISSING  # video files or folders of videos
    max_frames: int = MISSING  # frames read from the start of each video


@dataclass
class EvaluateConfig(CommonConfig):
    data_root: str = MISSING
    methods: list[str] = MISSING  # names of conf/interpolate/*.yaml
    datasets: list[str] = MISSING  # world, triplets, videos
    world: WorldEvalConfig = field(default_factory=WorldEvalConfig)
    triplets: TripletEvalConfig = field(default_factory=TripletEvalConfig)
    videos: VideoEvalConfig = field(default_factory=VideoEvalConfig)


def register() -> None:
    """Register the schemas under the names the primary configs list in their defaults."""
    store = ConfigStore.instance()
    store.store(name="generate_schema", node=GenerateConfig)
    store.store(name="interpolate_schema", node=InterpolateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
