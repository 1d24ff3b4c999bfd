"""Stage two's training task for the shared trainer (``inbetween train stage=interpolator``).

:class:`InterpolationClips` mixes Shapes World clips and layered photo clips (keyframes 2 to 8
frames apart, exact renders and exact flow at any ``t``) with random crops of real videos
(frames dropped at random strides), optionally as gaps of shots with the keyframes beyond them
(``neighbour_share``); :class:`InterpolatorTask` trains
:class:`interpolate.unet.TemporalUNet` to denoise the residual of the true in-betweens over
flow warping, with the flow from the configured estimator (the learned one by default), as at
inference; where the truth is exact the flows it corrects are also held to the exact ones and its
blend weight to the true visibility.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from flow.training import split_photos
from inbetween.diffusion import sample, weighted_mean
from inbetween.errors import InbetweenError
from inbetween.layered import photo_paths, random_clip
from inbetween.training import TrainingTask
from inbetween.video import atomic_path, contact_sheet, find_videos, from_uint8, read_video, to_uint8
from inbetween.world import CLIP_KINDS, Clip
from interpolate.base import Neighbour, Neighbours
from interpolate.classical import FlowWarpInterpolator
from interpolate.diffusion import COND_CHANNELS, OUTPUT_CHANNELS, InterpolatorModel
from interpolate.unet import TemporalUNet

#: ``inbetween evaluate``'s world clips use seeds from here up; training clip seeds stay below.
EVALUATION_SEEDS_START = 1_000_000
#: ``InterpolatorTask``'s ``image_loss`` options.
IMAGE_LOSSES = ("mse", "log_mse")
#: The ``log_mse`` image loss stops rewarding an item once its frames reach this PSNR (dB).
_LOG_MSE_FLOOR_PSNR = 50.0
#: Seed of the sample grid's clips (below the evaluation seeds, above any training seed in use).
GRID_SEED = 900_000
#: Part of the item cache's folder name: raise it whenever a change to the code makes other items.
ITEM_FORMAT = 1
#: Gaps of a training shot (``neighbour_share``): 4 keyframes evenly over the clip, as in ``world_shots``.
SHOT_GAPS = 3
#: The keyframes beyond a gap, uint8 ``(S, S, 3)``, each None where the shot has none: ``(before, after)``.
Beyond = tuple[np.ndarray | None, np.ndarray | None]


def _choose_between(rng: np.random.Generator, gap: int, frames: int) -> list[int]:
    """Up to ``frames`` distinct in-between offsets in ``1 .. gap - 1``, sorted."""
    return sorted(rng.choice(np.arange(1, gap), size=min(frames, gap - 1), replace=False).tolist())


def _shot_place(rng: np.random.Generator) -> tuple[int, bool, bool]:
    """A random gap of a training shot: its index among :data:`SHOT_GAPS`, and whether the shot has a
    keyframe before it and after it."""
    place = int(rng.integers(SHOT_GAPS))
    return place, place > 0, place < SHOT_GAPS - 1


def _clip_sequence(render: Callable[[float], np.ndarray],
                   flow_and_visible: Callable[[float, float], tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                   clip_frames: int, gaps: Sequence[int], frames: int, shot: bool = False
                   ) -> tuple[np.ndarray, list[int], int, tuple[np.ndarray, np.ndarray], Beyond]:
    """A stretch of a clip rendered exactly at any ``t`` in ``[0, 1]`` (a Shapes World or a layered photo
    clip), seen as ``clip_frames`` frames: keyframes a random gap in ``gaps`` (inclusive) apart. With
    ``shot``, the clip is instead a shot of ``SHOT_GAPS + 1`` keyframes evenly over ``[0, 1]``, seen
    ``gap`` frames apart, and the stretch a random one of its gaps, with the keyframes beyond it.

    ``render(t)``: uint8 ``(S, S, 3)``; ``flow_and_visible(t0, t1)``: the exact flow ``(2, S, S)`` and
    visibility ``(S, S)``. Returns frames uint8 ``(gap + 1, S, S, 3)`` (only the keyframes and chosen
    in-betweens rendered), the chosen in-between offsets, the gap, the ground truth of each
    in-between towards the left and right keyframe: exact flows float32 ``(len(offsets), 2, 2, S, S)``
    and visibility bool ``(len(offsets), 2, S, S)``, and the keyframes beyond the gap (:data:`Beyond`)."""
    gap = int(rng.integers(gaps[0], gaps[1] + 1))
    if shot:
        place, before, after = _shot_place(rng)
        beyond = (-gap if before else None, 2 * gap if after else None)
        time_of = lambda k: (place + k / gap) / SHOT_GAPS  # noqa: E731
    else:
        start = int(rng.integers(0, clip_frames - gap))
        beyond = (None, None)
        time_of = lambda k: (start + k) / (clip_frames - 1)  # noqa: E731
    offsets = _choose_between(rng, gap, frames)
    rendered = {k: render(time_of(k)) for k in (0, *offsets, gap)}
    sequence = np.stack([rendered.get(k, rendered[0]) for k in range(gap + 1)])
    ground_truth = [[flow_and_visible(time_of(k), time_of(key)) for key in (0, gap)] for k in offsets]
    exact = np.stack([[flow for flow, _ in per_frame] for per_frame in ground_truth])
    visible = np.stack([[mask for _, mask in per_frame] for per_frame in ground_truth])
    neighbours = tuple(None if k is None else render(time_of(k)) for k in beyond)
    return sequence, offsets, gap, (exact, visible), neighbours


def _video_sources(videos: Sequence[str], training_videos: Sequence[str], skip: int) -> list[tuple[Path, int]]:
    """``(path, frames to skip)`` of every video: those in ``videos`` from frame ``skip`` on, those in
    ``training_videos`` whole."""
    sources = [(path, skip) for path in find_videos(videos, "task.data.videos")] if videos else []
    if training_videos:
        sources += [(path, 0) for path in find_videos(training_videos, "task.data.training_videos")]
    if not sources:
        raise InbetweenError("task.data.video_items needs task.data.videos or task.data.training_videos.")
    return sources


class InterpolationClips(Dataset):
    """Training items: two keyframes, up to ``frames`` in-betweens between them, and the flow.

    Items ``0 .. world_items - 1`` are Shapes World clips (kinds in turn; clip seed = item
    index, all below :data:`EVALUATION_SEEDS_START`): a clip is ``world_clip_frames`` frames
    over ``t`` in ``[0, 1]`` and the keyframes are a random gap in ``world_gaps`` (inclusive)
    apart. The next ``layered_items`` are layered photo clips (:func:`inbetween.layered.random_clip`,
    seeds from 0) of the ``photos``, every ``photo_holdout``-th held back as the flow stage holds it
    back, seen the same way: real pixels with exact flows and visibility at every ``t``. The next
    ``video_items`` are crops of real video: a random one of the ``videos`` (read from frame
    ``video_skip_frames`` on: the frames before it are ``inbetween evaluate``'s and never trained
    on) and the ``training_videos`` (read whole), a stride in ``video_strides`` (inclusive). Each
    video keeps at most ``video_max_frames`` frames, shrunk so that its short side is at most
    ``video_short_side`` pixels. Every item is cropped or rendered to ``size`` pixels and, at
    random, mirrored and played backwards.

    An item is a pure function of ``(seed, index)``, computed once and kept in memory and, when
    ``cache`` names a folder, in a file there (a subfolder per digest of the options and of the flow
    estimator's settings and weights), which a resumed run or a loader worker reads back instead of
    computing it again:
    ``keys`` uint8 ``(2, 3, S, S)``; ``truth`` uint8 ``(F, 3, S, S)``; ``times`` float ``(F,)``;
    ``mask`` bool ``(F,)`` (False on padding, when the gap has fewer in-betweens than ``F``);
    ``flows`` float ``(2, 2, S, S)``: ``flow`` from left to right and back; ``exact_flows``
    float16 ``(F, 4, S, S)``: the true flows from each in-between to the left and right
    keyframe (pixels), and ``exact_visible`` bool ``(F, 2, S, S)``: whether each pixel of the
    in-between is seen in the left / right keyframe, both known where ``exact_known`` bool
    ``(F,)`` (world and layered items, not padding).

    With ``neighbour_share`` > 0, that share of the items (drawn per item) is a gap of a shot of
    ``SHOT_GAPS + 1`` keyframes (at ``t = 0, 1/3, 2/3, 1`` of a world or layered clip, or
    ``gap`` video frames apart), its first, middle or last gap at random, and every item also holds
    the shot's keyframes beyond the gap: ``beyond`` uint8 ``(2, 3, S, S)`` (keyframe ``k - 1``, keyframe
    ``k + 2``), ``beyond_flows`` float16 ``(2, 2, 2, S, S)`` (per neighbour: the flow from the gap's
    nearer keyframe to it, and back) and ``beyond_known`` bool ``(2,)``; zeros and False where the shot
    has no such keyframe (a first or last gap, or an item that is not a shot).
    """

    def __init__(self, flow, size: int = 128, frames: int = 3, world_items: int = 3000, world_clip_frames: int = 9,
                 world_gaps: Sequence[int] = (2, 8), layered_items: int = 0, photos: str | None = None,
                 photo_holdout: int = 10, video_items: int = 0, videos: Sequence[str] = (),
                 training_videos: Sequence[str] = (), video_strides: Sequence[int] = (2, 4),
                 video_skip_frames: int = 64, video_short_side: int = 360, video_max_frames: int = 300,
                 neighbour_share: float = 0.0, seed: int = 0, cache: str | None = None):
        options = {key: value for key, value in locals().items() if key not in ("self", "flow", "cache")}
        if world_items > EVALUATION_SEEDS_START:
            raise InbetweenError(f"world_items must stay below {EVALUATION_SEEDS_START} (evaluation clip seeds).")
        if not 2 <= world_gaps[0] <= world_gaps[1] < world_clip_frames:
            raise InbetweenError(f"world_gaps must be [low, high] with 2 <= low <= high < world_clip_frames; "
                                 f"got {list(world_gaps)}.")
        if not 0 <= neighbour_share <= 1:
            raise InbetweenError(f"task.data.neighbour_share is a share of the items and must be in [0, 1], "
                                 f"got {neighbour_share}.")
        self.flow, self.size, self.frames, self.seed = flow, size, frames, seed
        self.neighbour_share = neighbour_share
        self.world_items, self.clip_frames, self.gaps = world_items, world_clip_frames, tuple(world_gaps)
        self.layered_items = layered_items
        if layered_items and photos is None:
            raise InbetweenError("task.data.layered_items needs task.data.photos, a folder of photographs.")
        self.photos = split_photos(photo_paths(photos), photo_holdout)[0] if layered_items else []
        self.video_items, self.strides = video_items, tuple(video_strides)
        sources = _video_sources(videos, training_videos, video_skip_frames) if video_items else []
        self.videos = [self._read_video(path, skip, video_short_side, video_max_frames) for path, skip in sources]
        self._items: dict[int, dict[str, torch.Tensor]] = {}
        self.cache = Path(cache) / _fingerprint(options, flow) if cache else None

    def _read_video(self, path: Path, skip: int, short_side: int, max_frames: int) -> np.ndarray:
        """Frames ``skip .. skip + max_frames - 1`` of ``path``, uint8 ``(T, H, W, 3)``, shrunk to ``short_side``."""
        frames = read_video(path, max_frames, first_frame=skip)
        scale = short_side / min(frames.shape[1:3])
        if scale < 1:
            size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
            frames = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])
        longest = self.strides[1] * (SHOT_GAPS if self.neighbour_share else 1)  # a shot's span
        if len(frames) <= longest or min(frames.shape[1:3]) < self.size:
            raise InbetweenError(f"video {path} is too short or smaller than {self.size} px after skipping {skip} "
                                 f"frames and shrinking to {short_side} px.")
        return frames

    def __len__(self) -> int:
        return self.world_items + self.layered_items + self.video_items

    def _video_sequence(self, rng: np.random.Generator, shot: bool) -> tuple[np.ndarray, list[int], int, None, Beyond]:
        """A crop of real video, as :func:`_clip_sequence` returns it (no ground truth); with ``shot``, a random
        gap of a shot of ``SHOT_GAPS + 1`` keyframes, with the keyframes beyond it."""
        frames = self.videos[int(rng.integers(len(self.videos)))]
        gap = int(rng.integers(self.strides[0], self.strides[1] + 1))
        _, before, after = _shot_place(rng) if shot else (None, False, False)
        start = int(rng.integers(gap * before, len(frames) - gap * (1 + after)))
        top = int(rng.integers(0, frames.shape[1] - self.size + 1))
        left = int(rng.integers(0, frames.shape[2] - self.size + 1))
        crop = frames[:, top:top + self.size, left:left + self.size]
        beyond = (crop[start - gap] if before else None, crop[start + 2 * gap] if after else None)
        return crop[start:start + gap + 1], _choose_between(rng, gap, self.frames), gap, None, beyond

    def _exact_clip(self, index: int) -> tuple[Callable, Callable]:
        """``(render, flow_and_visible)`` of item ``index``'s world or layered clip at this size (see
        :func:`_clip_sequence`)."""
        if index < self.world_items:
            clip = Clip.random(index, CLIP_KINDS[index % len(CLIP_KINDS)])
            return (lambda t: clip.render(t, self.size)), (lambda t0, t1: clip.flow_and_visible(t0, t1, self.size))
        clip = random_clip(self.photos, index - self.world_items, self.size)
        return clip.render, clip.flow_and_visible

    def _make(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        shot = bool(self.neighbour_share) and rng.random() < self.neighbour_share
        exactly_known = index < self.world_items + self.layered_items
        if exactly_known:
            render, flow_and_visible = self._exact_clip(index)
            sequence, offsets, gap, ground_truth, beyond = _clip_sequence(
                render, flow_and_visible, rng, self.clip_frames, self.gaps, self.frames, shot)
        else:
            sequence, offsets, gap, ground_truth, beyond = self._video_sequence(rng, shot)
        exact, visible = ground_truth or (np.zeros((len(offsets), 2, 2, self.size, self.size), np.float32),
                                          np.zeros((len(offsets), 2, self.size, self.size), bool))
        known = [exactly_known] * len(offsets)
        if rng.random() < 0.5:  # mirror left-right
            sequence, visible = sequence[:, :, ::-1], visible[..., ::-1]
            exact = exact[..., ::-1] * np.array([-1, 1], np.float32)[:, None, None]
            beyond = tuple(None if image is None else image[:, ::-1] for image in beyond)
        if rng.random() < 0.5:  # play backwards: the keyframes swap
            sequence, offsets = sequence[::-1], sorted(gap - k for k in offsets)
            exact, visible = exact[::-1, ::-1], visible[::-1, ::-1]
            beyond = beyond[::-1]
        keys = np.ascontiguousarray(sequence[[0, gap]])  # (2, S, S, 3)
        flow_lr, flow_rl = self.flow.bidirectional(from_uint8(keys[:1]), from_uint8(keys[1:]))
        truth = torch.from_numpy(np.ascontiguousarray(sequence[offsets])).permute(0, 3, 1, 2)
        exact = torch.from_numpy(np.ascontiguousarray(exact)).flatten(1, 2).half()
        visible = torch.from_numpy(np.ascontiguousarray(visible))
        item = {
            "keys": torch.from_numpy(keys).permute(0, 3, 1, 2),
            "truth": _pad_frames(truth, self.frames),
            "times": torch.tensor([k / gap for k in offsets] + [0.5] * (self.frames - len(offsets))),
            "mask": _pad_frames(torch.ones(len(offsets), dtype=torch.bool), self.frames),
            "flows": torch.cat([flow_lr, flow_rl]),
            "exact_flows": _pad_frames(exact, self.frames),
            "exact_visible": _pad_frames(visible, self.frames),
            "exact_known": _pad_frames(torch.tensor(known, dtype=torch.bool), self.frames),
        }
        if self.neighbour_share:
            item.update(self._beyond_fields(keys, beyond))
        return item

    def _beyond_fields(self, keys: np.ndarray, beyond: Beyond) -> dict[str, torch.Tensor]:
        """The item's keyframes beyond the gap (``keys`` uint8 ``(2, S, S, 3)``: the gap's own) and their flow
        both ways with the gap's nearer keyframe (see the class docstring)."""
        images = torch.zeros((2, 3, self.size, self.size), dtype=torch.uint8)
        flows = torch.zeros((2, 2, 2, self.size, self.size), dtype=torch.float16)
        known = torch.zeros(2, dtype=torch.bool)
        for side, (nearer, image) in enumerate(zip(keys, beyond)):
            if image is not None:
                images[side] = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
                from_gap, to_gap = self.flow.bidirectional(from_uint8(nearer[None]), from_uint8(image[None]))
                flows[side] = torch.cat([from_gap, to_gap]).half()
                known[side] = True
        return {"beyond": images, "beyond_flows": flows, "beyond_known": known}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if index not in self._items:
            self._items[index] = self._cached(index)
        return self._items[index]

    def _cached(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` from the ``cache`` folder, made (and written there, atomically) if it is not in it."""
        if self.cache is None:
            return self._make(index)
        path = self.cache / f"{index:07d}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
        item = self._make(index)
        with atomic_path(path) as tmp:
            torch.save(item, tmp)
        return item


def _fingerprint(options: dict[str, Any], flow) -> str:
    """A short digest of :data:`ITEM_FORMAT`, the data options and the flow estimator (its class, its plain
    settings and the weights of any network it holds): items made otherwise never mix in one cache."""
    digest = hashlib.sha256(json.dumps([ITEM_FORMAT, options], sort_keys=True, default=str).encode())
    digest.update(f"{type(flow).__module__}.{type(flow).__qualname__}".encode())
    for name, value in sorted(vars(flow).items()):
        if isinstance(value, nn.Module):
            for key, tensor in value.state_dict().items():
                digest.update(key.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, (str, int, float, bool, type(None), tuple, list)):
            digest.update(f"{name}={value!r}".encode())
    return digest.hexdigest()[:16]


def visible_share(visible: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The left keyframe's true blend weight and where it is defined, each ``(B, T, 1, H, W)``.

    ``visible``: bool ``(B, T, 2, H, W)``, each in-between pixel seen in the left / right
    keyframe; ``times``: ``(B, T)``. The weight is ``(1 - t) v0 / ((1 - t) v0 + t v1)``: flow
    warping's plain mix where both keyframes show the pixel, all of the one that does where
    only one shows it; undefined (``seen`` False) where neither does.
    """
    t = times[:, :, None, None, None]
    left, right = (1 - t) * visible[:, :, 0:1], t * visible[:, :, 1:2]
    seen = visible.any(dim=2, keepdim=True)
    return left / (left + right).clamp_min(1e-6), seen


def batch_conditioning(model: InterpolatorModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.conditioning`` of a batch of :class:`InterpolationClips` items: ``(blend, cond)``, each
    ``(B, T, ., H, W)``. Items that hold keyframes beyond their gap (``beyond_known``) are conditioned on the
    paths bent through them; the batch is split by which neighbours its items have, each part conditioned
    with those, and put back in order."""
    keys, flows, times = _unit(batch["keys"]), batch["flows"], batch["times"]
    if "beyond_known" not in batch:  # no item has any: one call, without a device sync
        return model.conditioning(keys[:, 0], keys[:, 1], flows[:, 0], flows[:, 1], times, Neighbours())
    known = batch["beyond_known"]
    blend = cond = None
    for pattern in known.unique(dim=0):
        rows = (known == pattern).all(dim=1).nonzero().squeeze(1)
        beyond = [Neighbour(_unit(batch["beyond"][rows, side]), *batch["beyond_flows"][rows, side].float().unbind(1))
                  if present else None for side, present in enumerate(pattern.tolist())]
        part = model.conditioning(keys[rows, 0], keys[rows, 1], flows[rows, 0], flows[rows, 1], times[rows],
                                  Neighbours(*beyond))
        if blend is None:
            blend, cond = (x.new_empty((len(keys), *x.shape[1:])) for x in part)
        blend[rows], cond[rows] = part
    return blend, cond


def _pad_frames(per_frame: torch.Tensor, frames: int) -> torch.Tensor:
    """``per_frame`` ``(F', ...)`` padded with zeros (False) to ``(frames, ...)``."""
    return torch.cat([per_frame, per_frame.new_zeros((frames - len(per_frame), *per_frame.shape[1:]))])


def _unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` -> float in ``[-1, 1]``."""
    return pixels.float() / 127.5 - 1


class InterpolatorTask(TrainingTask):
    """The temporal denoiser on :class:`InterpolationClips` (``data`` holds its options, but the flow).

    ``flow`` is the estimator (a :class:`flow.base.FlowEstimator`) whose flow the model learns
    to correct; ``unet`` holds :class:`TemporalUNet` options; ``residual_scale`` multiplies
    the residual over flow warping into the diffusion variable; flows enter divided by
    ``flow_scale`` pixels. The loss is the ``x0`` error plus, where the truth is known (world
    and layered clips), ``flow_loss`` times the mean absolute error (in units of
    ``flow_scale``) of the corrected flows against the exact ones and ``visibility_loss`` times
    the binary cross-entropy of the left keyframe's blend weight against the true share
    :func:`visible_share` (at pixels seen in at least one keyframe).

    The ``x0`` error is ``image_loss``: ``mse``, the squared error over the batch, or ``log_mse``,
    the mean over items of ``log(1 + mse / floor)`` with ``floor`` the error of a 50 dB frame.
    Minimising the log error maximises the mean PSNR over items, the figure ``inbetween
    evaluate`` reports: with the plain squared error, items flow warping already renders at
    45 dB weigh nothing next to the hard ones, so the network is free to add noise to them.

    ``init``: an interpolator model folder to start from (e.g. ``checkpoints/interpolator``; its
    ``unet``, ``schedule``, ``residual_scale`` and ``flow_scale`` must be this task's), or None for
    random weights.
    """

    name = "interpolator"

    def __init__(self, flow, data: dict[str, Any] | None = None, unet: dict[str, Any] | None = None,
                 schedule: str = "cosine", residual_scale: float = 5.0, flow_scale: float = 32.0,
                 flow_loss: float = 5.0, visibility_loss: float = 1.0, image_loss: str = "log_mse",
                 grid_clips: int = 4, init: str | None = None):
        if image_loss not in IMAGE_LOSSES:
            raise InbetweenError(f"task.image_loss must be one of {list(IMAGE_LOSSES)}, got {image_loss!r}.")
        if flow_loss < 0 or visibility_loss < 0:
            raise InbetweenError(f"flow_loss and visibility_loss are loss weights and must be >= 0, "
                                 f"got {flow_loss} and {visibility_loss}.")
        self.flow, self.data_options, self.grid_clips = flow, dict(data or {}), grid_clips
        self.config = {"unet": dict(unet or {}), "schedule": schedule, "residual_scale": residual_scale,
                       "flow_scale": flow_scale}
        self.flow_loss, self.visibility_loss, self.image_loss = flow_loss, visibility_loss, image_loss
        self.warper = FlowWarpInterpolator()
        self.init = init
        self._data: InterpolationClips | None = None

    def build_model(self) -> nn.Module:
        if self.init is None:
            return TemporalUNet(COND_CHANNELS, OUTPUT_CHANNELS, **self.config["unet"])
        start = InterpolatorModel.load(self.init)
        if start.config != json.loads(json.dumps(self.config)):
            raise InbetweenError(f"task.init={self.init} holds a model with other settings than this task "
                                 f"({start.config}); use them, or train from scratch (task.init=null).")
        return start.unet.train().requires_grad_(True)

    def dataset(self) -> Dataset:
        if self._data is None:
            self._data = InterpolationClips(self.flow, **self.data_options)
        return self._data

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        interpolator = self._model(model)
        truth, times, mask = _unit(batch["truth"]), batch["times"], batch["mask"]
        with torch.no_grad(), torch.autocast(truth.device.type, enabled=False):
            blend, cond = batch_conditioning(interpolator, batch)
            target = interpolator.residual_target(truth, blend)
        x_t, t, _ = interpolator.schedule.noised(target, generator)
        answer = interpolator.synthesise(model(x_t, t, cond, times, mask), cond, times)
        image_loss = self._image_loss((answer.x0 - target) ** 2, mask[:, :, None, None, None].float())
        known = batch["exact_known"][:, :, None, None, None]
        corrected = torch.cat([answer.flow_t0, answer.flow_t1], dim=2)
        flow_error = (corrected - batch["exact_flows"].float()).abs() / self.config["flow_scale"]
        share, seen = visible_share(batch["exact_visible"], times)
        blend_error = F.binary_cross_entropy_with_logits(answer.logit_left, share, reduction="none")
        return (image_loss + self.flow_loss * weighted_mean(flow_error, known)
                + self.visibility_loss * weighted_mean(blend_error, known & seen))

    def _image_loss(self, squared_error: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The ``x0`` error (see ``image_loss``) from the squared error ``(B, T, 3, H, W)`` and its ``weight``."""
        if self.image_loss == "mse":
            return weighted_mean(squared_error, weight)
        floor = (2 * self.config["residual_scale"]) ** 2 * 10 ** (-_LOG_MSE_FLOOR_PSNR / 10)
        return torch.log1p(weighted_mean(squared_error, weight, per_item=True) / floor).mean()

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
