"""The flow stage's training task for the shared trainer (``inbetween train stage=flow``).

:class:`FlowPairs` mixes image pairs with exact flow both ways from two sources: layered real
photographs (:mod:`inbetween.layered`: real pixels, layers under random affine motion) and
Shapes World clips of every motion kind (flat shapes that move further than their size).
:class:`FlowTask` trains :class:`flow.learned.MatchingFlowNet` on them with the end-point
error of both flows at full resolution, plus the 1/8 flow before refinement, and photometric
augmentation drawn anew every step.

Validation, never evaluation data: photographs are split by index (every ``holdout``-th one is
held back) and world clips of the held-back photos' items use seeds above the training ones;
:func:`validation_epe` scores a network on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from flow.learned import NETWORK, MatchingFlowNet, network_options, resize_flow, save_network
from flow.viz import flow_to_color
from inbetween.errors import InbetweenError
from inbetween.layered import photo_paths, random_clip
from inbetween.training import TrainingTask
from inbetween.video import contact_sheet, from_uint8
from inbetween.weights import load_weights
from inbetween.world import CLIP_KINDS, Clip

#: Seeds of validation items start here (training items use seeds below; ``inbetween evaluate``'s
#: world clips start at 1 000 000).
VALIDATION_SEED = 500_000


def split_photos(paths: Sequence[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """``(training, validation)``: every ``holdout``-th photograph is held back for validation."""
    return ([path for index, path in enumerate(paths) if index % holdout],
            [path for index, path in enumerate(paths) if not index % holdout])


def world_pair(seed: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two frames of world clip ``seed`` (kind ``seed % 8``) 2 to 8 of its 9 frames apart, and the
    exact flows both ways: uint8 ``(S, S, 3)`` x 2, float32 ``(2, S, S)`` x 2."""
    clip = Clip.random(seed, CLIP_KINDS[seed % len(CLIP_KINDS)])
    gap = int(rng.integers(2, 9))
    start = int(rng.integers(0, 9 - gap))
    t0, t1 = start / 8, (start + gap) / 8
    return clip.render(t0, size), clip.render(t1, size), clip.flow(t0, t1, size), clip.flow(t1, t0, size)


def layered_pair(photos: Sequence[Path], seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first and last frame of a layered photo clip and its exact flows both ways."""
    clip = random_clip(photos, seed, size)
    return clip.render(0.0), clip.render(1.0), clip.flow(0.0, 1.0), clip.flow(1.0, 0.0)


class FlowPairs(Dataset):
    """Items ``0 .. layered_items - 1`` are layered photo clips (seed = index + ``seed_offset``), the next
    ``world_items`` Shapes World clips (seed = index + ``seed_offset``, kinds in turn); ``size`` pixels.

    An item (computed once and kept) holds ``images`` uint8 ``(2, 3, S, S)`` and ``flows`` float16
    ``(2, 2, S, S)``: the flow from image 0 to image 1 and back.
    """

    def __init__(self, photos: Sequence[Path], layered_items: int, world_items: int, size: int,
                 seed_offset: int = 0) -> None:
        self.photos, self.layered_items, self.world_items = list(photos), layered_items, world_items
        self.size, self.seed_offset = size, seed_offset
        self._items: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.layered_items + self.world_items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index not in self._items:
            seed = index + self.seed_offset
            if index < self.layered_items:
                pair = layered_pair(self.photos, seed, self.size)
            else:
                pair = world_pair(seed, self.size, np.random.default_rng(seed))
            image0, image1, flow01, flow10 = pair
            self._items[index] = {
                "images": torch.from_numpy(np.stack([image0, image1])).permute(0, 3, 1, 2).contiguous(),
                "flows": torch.from_numpy(np.stack([flow01, flow10])).half(),
            }
        return self._items[index]


def photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast, saturation and gamma per item, nearly the same for both images of
    a pair (the second differs slightly): ``(B, 2, 3, H, W)`` in ``[-1, 1]`` -> the same shape."""
    batch = images.shape[0]

    def draw(low: float, high: float) -> torch.Tensor:
        shared = torch.empty(batch, 1, 1, 1, 1, device=images.device).uniform_(low, high, generator=generator)
        jitter = torch.empty(batch, 2, 1, 1, 1, device=images.device).uniform_(0.97, 1.03, generator=generator)
        return shared * jitter

    unit = (images + 1) / 2
    grey = unit.mean(dim=2, keepdim=True)
    unit = grey + (unit - grey) * draw(0.6, 1.4)
    unit = (unit - 0.5) * draw(0.7, 1.3) + 0.5 * draw(0.8, 1.2)
    unit = unit.clamp(0, 1) ** draw(0.8, 1.25)
    return unit.clamp(0, 1) * 2 - 1


def endpoint_loss(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean end-point error of flows ``(B, 2, H, W)``; ``truth`` is first resized to ``prediction``'s grid.

    Summed squares, not ``Tensor.norm(dim=1)``, which is about 30x slower on a CPU; the 1e-12 keeps the
    gradient finite where the error is 0."""
    if truth.shape[-2:] != prediction.shape[-2:]:
        truth = resize_flow(truth, tuple(prediction.shape[-2:]))
    return ((prediction.float() - truth).square().sum(dim=1) + 1e-12).sqrt().mean()


class FlowTask(TrainingTask):
    """Trains :class:`MatchingFlowNet` on :class:`FlowPairs` (see the module docstring).

    * ``photos``: folder of photographs (every ``holdout``-th held back for validation);
    * ``data``: ``layered_items``, ``world_items``, ``size`` of :class:`FlowPairs`;
    * ``network``: :class:`MatchingFlowNet` options; ``init``: a flow model folder to start from (its
      network options must match, except that ``network`` may add ``local``, whose weights then start
      fresh), or None for random weights;
    * ``train_only``: names of the network's parts to train (e.g. ``[local]``), the rest frozen; None: all;
    * ``max_tokens``: None, or a list the global matching's budget is drawn from at every step (as
      :class:`flow.learned.LearnedFlow` runs it: pairs with more positions are matched downsampled);
    * ``compile``: ``torch.compile`` the local refiner's correlation (:meth:`flow.learned.LocalRefiner.compile_correlation`;
      needs a C compiler, a minute to compile, then about 6x faster);
    * ``coarse_loss``: weight of the error of every output before the last (the 1/8 flow before
      refinement, and before each local iteration), the last one's weight being 1;
    * ``grid_pairs``: validation pairs shown in the sample grid.
    """

    name = "flow"

    def __init__(self, photos: str, data: dict[str, Any] | None = None, network: dict[str, Any] | None = None,
                 holdout: int = 10, init: str | None = None, train_only: list[str] | None = None,
                 max_tokens: list[int] | None = None, compile: bool = False, coarse_loss: float = 0.5,
                 grid_pairs: int = 4) -> None:
        self.photo_folder, self.holdout, self.init = photos, holdout, init
        self.data_options, self.network_options = dict(data or {}), dict(network or {})
        self.train_only, self.max_tokens, self.compile = train_only, max_tokens, compile
        self.coarse_loss, self.grid_pairs = coarse_loss, grid_pairs
        self._data: FlowPairs | None = None

    def photos(self) -> tuple[list[Path], list[Path]]:
        """``(training, validation)`` photographs."""
        return split_photos(photo_paths(self.photo_folder), self.holdout)

    def build_model(self) -> nn.Module:
        model = MatchingFlowNet(**self.network_options)
        if self.init is not None:
            self._load_init(model)
        if self.train_only is not None:
            parts = dict(model.named_children())
            unknown = [name for name in self.train_only if name not in parts]
            if unknown:
                raise InbetweenError(f"task.train_only names {unknown}, which this network does not have; "
                                     f"choose among {sorted(parts)}.")
            for name, part in parts.items():
                part.requires_grad_(name in self.train_only)
        if self.compile and model.local is not None:
            model.local.compile_correlation()
        return model

    def _load_init(self, model: MatchingFlowNet) -> None:
        """``init``'s weights into ``model``; a ``local`` refiner that ``init`` lacks keeps its fresh weights."""
        wanted, held = json.loads(json.dumps(self.network_options)), network_options(self.init)
        adds_local = held.get("local") is None
        if ({key: value for key, value in wanted.items() if key != "local"}
                != {key: value for key, value in held.items() if key != "local"}
                or not adds_local and held["local"] != wanted.get("local")):
            raise InbetweenError(f"task.init={self.init} holds a network with other options than task.network "
                                 f"({held}); use them (adding `local` is allowed), or train from scratch "
                                 f"(task.init=null).")
        load_weights(model, self.init, NETWORK, skip_prefix="local." if adds_local else None)

    def dataset(self) -> Dataset:
        if self._data is None:
            self._data = FlowPairs(self.photos()[0], **self.data_options)
        return self._data

    def validation(self, layered_items: int, world_items: int, size: int | None = None) -> FlowPairs:
        """Held-back pairs: layered clips of the validation photographs and world clips, both with seeds
        from :data:`VALIDATION_SEED`, at ``size`` (default: the training size)."""
        return FlowPairs(self.photos()[1], layered_items, world_items, size or self.data_options.get("size", 128),
                         VALIDATION_SEED)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        images = photometric(from_uint8(batch["images"].movedim(2, -1)), generator)
        flows = batch["flows"].float()
        max_tokens = None
        if self.max_tokens:
            max_tokens = self.max_tokens[int(torch.randint(len(self.max_tokens), (), generator=generator))]
        outputs = model(images[:, 0], images[:, 1], max_tokens)
        weights = [self.coarse_loss] * (len(outputs) - 1) + [1.0]
        loss = sum(weight * endpoint_loss(prediction, flows[:, direction])
                   for weight, pair in zip(weights, outputs) for direction, prediction in enumerate(pair))
        return loss / 2

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        pairs = self.validation(self.grid_pairs // 2, self.grid_pairs - self.grid_pairs // 2)
        device = next(model.parameters()).device
        tiles, captions = [], []
        for index in range(len(pairs)):
            item = pairs[index]
            images = from_uint8(item["images"].movedim(1, -1)).to(device)
            prediction = model(images[:1], images[1:], (self.max_tokens or [None])[0])[-1][0][0].float().cpu()
            truth = item["flows"][0].float()
            tiles += [item["images"][0].permute(1, 2, 0).numpy(), flow_to_color(truth.numpy()),
                      flow_to_color(prediction.numpy())]
            epe = endpoint_loss(prediction[None], truth[None]).item()
            captions += [f"pair {index}", "true flow", f"predicted, EPE {epe:.2f}"]
        return contact_sheet(tiles, captions, columns=3, tile=160)

    def export(self, model: nn.Module, folder: Path) -> None:
        save_network(model, self.network_options, folder)


@torch.no_grad()
def validation_epe(estimator, pairs: FlowPairs) -> dict[str, float]:
    """Mean end-point error of ``estimator``'s 0 -> 1 flow (any :class:`flow.base.FlowEstimator`) on the
    layered and on the world items of ``pairs``."""
    errors: dict[str, list[float]] = {"layered": [], "world": []}
    for index in range(len(pairs)):
        item = pairs[index]
        images = from_uint8(item["images"].movedim(1, -1))
        source = "layered" if index < pairs.layered_items else "world"
        errors[source].append(endpoint_loss(estimator(images[:1], images[1:]), item["flows"][:1].float()).item())
    return {source: float(np.mean(values)) for source, values in errors.items() if values}
