"""Stage two's training task for the shared trainer (``inbetween train stage=interpolator``).

:class:`InterpolationClips` mixes Shapes World clips (every motion kind, keyframes 2 to 8
frames apart, exact renders and exact flow at any ``t``) with random crops of real videos
(frames dropped at random strides); :class:`InterpolatorTask` trains
:class:`interpolate.unet.TemporalUNet` to denoise the residual of the true in-betweens over
flow warping, with the flow from the configured estimator (DIS by default), as at inference;
on world clips the flows it corrects are also held to the exact ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from inbetween.diffusion import sample, weighted_mean
from inbetween.errors import InbetweenError
from inbetween.training import TrainingTask
from inbetween.video import contact_sheet, find_videos, from_uint8, read_video, to_uint8
from inbetween.world import CLIP_KINDS, Clip
from interpolate.classical import FlowWarpInterpolator
from interpolate.diffusion import COND_CHANNELS, OUTPUT_CHANNELS, InterpolatorModel
from interpolate.unet import TemporalUNet

#: ``inbetween evaluate``'s world clips use seeds from here up; training clip seeds stay below.
EVALUATION_SEEDS_START = 1_000_000
#: Seed of the sample grid's clips (below the evaluation seeds, above any training seed in use).
GRID_SEED = 900_000


def _choose_between(rng: np.random.Generator, gap: int, frames: int) -> list[int]:
    """Up to ``frames`` distinct in-between offsets in ``1 .. gap - 1``, sorted."""
    return sorted(rng.choice(np.arange(1, gap), size=min(frames, gap - 1), replace=False).tolist())


def _world_sequence(index: int, rng: np.random.Generator, size: int, clip_frames: int,
                    gaps: Sequence[int], frames: int) -> tuple[np.ndarray, list[int], int, np.ndarray]:
    """World clip ``index`` (kind ``index % 8``, seed ``index``): frames uint8 ``(gap + 1, S, S, 3)``
    (only the keyframes and chosen in-betweens rendered), the chosen in-between offsets, the gap,
    and the exact flows float32 ``(len(offsets), 2, 2, S, S)`` from each in-between to the left
    and right keyframe."""
    clip = Clip.random(index, CLIP_KINDS[index % len(CLIP_KINDS)])
    gap = int(rng.integers(gaps[0], gaps[1] + 1))
    start = int(rng.integers(0, clip_frames - gap))
    offsets = _choose_between(rng, gap, frames)
    time_of = {k: (start + k) / (clip_frames - 1) for k in (0, *offsets, gap)}
    rendered = {k: clip.render(t, size) for k, t in time_of.items()}
    sequence = np.stack([rendered.get(k, rendered[0]) for k in range(gap + 1)])
    exact = np.stack([[clip.flow(time_of[k], time_of[key], size) for key in (0, gap)] for k in offsets])
    return sequence, offsets, gap, exact


class InterpolationClips(Dataset):
    """Training items: two keyframes, up to ``frames`` in-betweens between them, and the flow.

    Items ``0 .. world_items - 1`` are Shapes World clips (kinds in turn; clip seed = item
    index, all below :data:`EVALUATION_SEEDS_START`): a clip is ``world_clip_frames`` frames
    over ``t`` in ``[0, 1]`` and the keyframes are a random gap in ``world_gaps`` (inclusive)
    apart. The next ``video_items`` are crops of the ``videos``: a random video, a stride in
    ``video_strides`` (inclusive), frames from ``video_skip_frames`` on (the frames before it are
    ``inbetween evaluate``'s and never trained on). Every item is cropped or rendered to
    ``size`` pixels and, at random, mirrored and played backwards.

    An item is a pure function of ``(seed, index)``, computed once and kept:
    ``keys`` uint8 ``(2, 3, S, S)``; ``truth`` uint8 ``(F, 3, S, S)``; ``times`` float ``(F,)``;
    ``mask`` bool ``(F,)`` (False on padding, when the gap has fewer in-betweens than ``F``);
    ``flows`` float ``(2, 2, S, S)``: ``flow`` from left to right and back; ``exact_flows``
    float16 ``(F, 4, S, S)``: the true flows from each in-between to the left and right
    keyframe (pixels), known where ``exact_known`` bool ``(F,)`` (world items, not padding).
    """

    def __init__(self, flow, size: int = 128, frames: int = 3, world_items: int = 3000, world_clip_frames: int = 9,
                 world_gaps: Sequence[int] = (2, 8), video_items: int = 0, videos: Sequence[str] = (),
                 video_strides: Sequence[int] = (2, 4), video_skip_frames: int = 64, seed: int = 0):
        if world_items > EVALUATION_SEEDS_START:
            raise InbetweenError(f"world_items must stay below {EVALUATION_SEEDS_START} (evaluation clip seeds).")
        if not 2 <= world_gaps[0] <= world_gaps[1] < world_clip_frames:
            raise InbetweenError(f"world_gaps must be [low, high] with 2 <= low <= high < world_clip_frames; "
                                 f"got {list(world_gaps)}.")
        self.flow, self.size, self.frames, self.seed = flow, size, frames, seed
        self.world_items, self.clip_frames, self.gaps = world_items, world_clip_frames, tuple(world_gaps)
        self.video_items, self.strides, self.skip = video_items, tuple(video_strides), video_skip_frames
        paths = find_videos(videos, "task.data.videos") if video_items else []
        self.videos = [read_video(path)[video_skip_frames:] for path in paths]
        for path, frames in zip(paths, self.videos):
            if len(frames) <= self.strides[1] or min(frames.shape[1:3]) < size:
                raise InbetweenError(f"video {path} is too short or smaller than {size} px after skipping "
                                     f"{video_skip_frames} frames.")
        self._items: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.world_items + self.video_items

    def _video_sequence(self, rng: np.random.Generator) -> tuple[np.ndarray, list[int], int, None]:
        frames = self.videos[int(rng.integers(len(self.videos)))]
        gap = int(rng.integers(self.strides[0], self.strides[1] + 1))
        start = int(rng.integers(0, len(frames) - gap))
        top = int(rng.integers(0, frames.shape[1] - self.size + 1))
        left = int(rng.integers(0, frames.shape[2] - self.size + 1))
        sequence = frames[start:start + gap + 1, top:top + self.size, left:left + self.size]
        return sequence, _choose_between(rng, gap, self.frames), gap, None

    def _make(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        if index < self.world_items:
            sequence, offsets, gap, exact = _world_sequence(index, rng, self.size, self.clip_frames, self.gaps,
                                                            self.frames)
        else:
            sequence, offsets, gap, exact = self._video_sequence(rng)
        if exact is None:
            exact = np.zeros((len(offsets), 2, 2, self.size, self.size), np.float32)
        known = [index < self.world_items] * len(offsets)
        if rng.random() < 0.5:  # mirror left-right
            sequence, exact = sequence[:, :, ::-1], exact[..., ::-1] * np.array([-1, 1], np.float32)[:, None, None]
        if rng.random() < 0.5:  # play backwards: the keyframes swap
            sequence, offsets, exact = sequence[::-1], sorted(gap - k for k in offsets), exact[::-1, ::-1]
        keys = np.ascontiguousarray(sequence[[0, gap]])  # (2, S, S, 3)
        flow_lr, flow_rl = self.flow.bidirectional(from_uint8(keys[:1]), from_uint8(keys[1:]))
        padding = self.frames - len(offsets)
        truth = torch.from_numpy(np.ascontiguousarray(sequence[offsets])).permute(0, 3, 1, 2)
        exact = torch.from_numpy(np.ascontiguousarray(exact)).flatten(1, 2).half()
        return {
            "keys": torch.from_numpy(keys).permute(0, 3, 1, 2),
            "truth": torch.cat([truth, truth.new_zeros((padding, *truth.shape[1:]))]),
            "times": torch.tensor([k / gap for k in offsets] + [0.5] * padding, dtype=torch.float32),
            "mask": torch.tensor([True] * len(offsets) + [False] * padding),
            "flows": torch.cat([flow_lr, flow_rl]),
            "exact_flows": torch.cat([exact, exact.new_zeros((padding, *exact.shape[1:]))]),
            "exact_known": torch.tensor(known + [False] * padding),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if index not in self._items:
            self._items[index] = self._make(index)
        return self._items[index]


def _unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` -> float in ``[-1, 1]``."""
    return pixels.float() / 127.5 - 1


class InterpolatorTask(TrainingTask):
    """The temporal denoiser on :class:`InterpolationClips` (``data`` holds its options, but the flow).

    ``flow`` is the estimator (a :class:`flow.base.FlowEstimator`) whose flow the model learns
    to correct; ``unet`` holds :class:`TemporalUNet` options; ``residual_scale`` multiplies
    the residual over flow warping into the diffusion variable; flows enter divided by
    ``flow_scale`` pixels. The loss is the ``x0`` mean squared error plus ``flow_loss`` times
    the mean absolute error (in units of ``flow_scale``) of the corrected flows against the
    exact ones, where those are known (world clips).
    """

    name = "interpolator"

    def __init__(self, flow, data: dict[str, Any] | None = None, unet: dict[str, Any] | None = None,
                 schedule: str = "cosine", residual_scale: float = 5.0, flow_scale: float = 32.0,
                 flow_loss: float = 5.0, grid_clips: int = 4):
        if flow_loss < 0:
            raise InbetweenError(f"flow_loss is a loss weight and must be >= 0, got {flow_loss}.")
        self.flow, self.data_options, self.grid_clips = flow, dict(data or {}), grid_clips
        self.config = {"unet": dict(unet or {}), "schedule": schedule, "residual_scale": residual_scale,
                       "flow_scale": flow_scale}
        self.flow_loss = flow_loss
        self.warper = FlowWarpInterpolator()
        self._data: InterpolationClips | None = None

    def build_model(self) -> nn.Module:
        return TemporalUNet(COND_CHANNELS, OUTPUT_CHANNELS, **self.config["unet"])

    def dataset(self) -> Dataset:
        if self._data is None:
            self._data = InterpolationClips(self.flow, **self.data_options)
        return self._data

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        interpolator = self._model(model)
        keys, truth = _unit(batch["keys"]), _unit(batch["truth"])
        flows, times, mask = batch["flows"], batch["times"], batch["mask"]
        with torch.no_grad(), torch.autocast(keys.device.type, enabled=False):
            blend, cond = interpolator.conditioning(keys[:, 0], keys[:, 1], flows[:, 0], flows[:, 1], times)
            target = interpolator.residual_target(truth, blend)
        x_t, t, _ = interpolator.schedule.noised(target, generator)
        answer = interpolator.synthesise(model(x_t, t, cond, times, mask), cond, times)
        image_loss = weighted_mean((answer.x0 - target) ** 2, mask[:, :, None, None, None].float())
        corrected = torch.cat([answer.flow_t0, answer.flow_t1], dim=2)
        flow_error = (corrected - batch["exact_flows"].float()).abs() / self.config["flow_scale"]
        return image_loss + self.flow_loss * weighted_mean(flow_error, batch["exact_known"][:, :, None, None, None])

    def _model(self, unet: nn.Module) -> InterpolatorModel:
        """``unet`` (bare, EMA or wrapped in DistributedDataParallel) with this task's settings."""
        return InterpolatorModel(unet, self.config, self.warper)

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        """World clips with keyframes 8 frames apart: per clip the left keyframe, flow_warp's middle
        frame, the model's (one step, the mean estimate), the true middle frame, the right keyframe."""
        device = next(model.parameters()).device
        interpolator = self._model(model)
        tiles, captions = [], []
        for index in range(self.grid_clips):
            clip = Clip.random(GRID_SEED + index, CLIP_KINDS[index % len(CLIP_KINDS)])
            left, middle, right = (from_uint8(clip.render(t, 128))[None].to(device) for t in (0.0, 0.5, 1.0))
            flow_lr, flow_rl = self.flow.bidirectional(left, right)
            times = torch.full((1, 1), 0.5, device=device)
            blend, cond = interpolator.conditioning(left, right, flow_lr, flow_rl, times)
            noise = torch.randn(blend.shape, generator=torch.Generator().manual_seed(GRID_SEED)).to(device)
            denoise = interpolator.denoiser(cond, times, tile=1 << 16, overlap=0)
            frame = interpolator.frames(blend, sample(denoise, noise, interpolator.schedule, "ddim", steps=1))
            tiles += [left[0], blend[0, 0], frame[0, 0], middle[0], right[0]]
            captions += ["left", "flow_warp", "diffusion", "truth", "right"]
        return contact_sheet(list(to_uint8(torch.stack(tiles))), captions, columns=5, tile=128)

    def export(self, model: nn.Module, folder: Path) -> None:
        self._model(model).save(folder)
