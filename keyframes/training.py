"""Stage one's training tasks for the shared trainer (``inbetween train stage=clip|keyframes``).

* :class:`ClipTask` trains the built-in tiny OpenCLIP contrastively on every Shapes World
  caption and its render, with open_clip's own model and ``ClipLoss``.
* :class:`KeyframeTask` trains the text-conditioned denoiser on the same pairs, with the
  frozen text encoder a ``ClipTask`` run exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from inbetween.diffusion import PREDICTIONS, NoiseSchedule, diffusion_loss
from inbetween.errors import InbetweenError
from inbetween.training import TrainingTask
from inbetween.video import contact_sheet, to_uint8
from inbetween.world import SLOTS, all_captions, random_captions, render_caption
from keyframes.clip import TextEncoder, clip_pixels, import_open_clip, load_text_encoder, world_clip
from keyframes.diffusion import KeyframeModel

#: Captions of the sample grids (seeded, fixed for a run).
GRID_SEED = 7


class WorldCaptions(Dataset):
    """Every Shapes World caption with its render: item ``i`` is ``{"image": (3, S, S) in [-1, 1],
    "index": i}``; ``captions[i]`` is its caption. Renders once, at construction (about 1 s at 64 px)."""

    def __init__(self, size: int):
        self.captions = all_captions()
        self.images = torch.stack([render_caption(caption, size) for caption in self.captions])

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "index": index}


#: The caption slots, and their word counts, in :func:`inbetween.world.all_captions` order: a
#: caption's index there is a mixed-radix number with one digit per slot.
SLOT_NAMES = tuple(SLOTS)
SLOT_SIZES = torch.tensor([len(words) for words in SLOTS.values()])
#: Place value of each slot's digit in a caption index.
SLOT_PLACES = torch.cat([torch.cumprod(SLOT_SIZES.flip(0), 0).flip(0)[1:], SLOT_SIZES.new_ones(1)])


def one_slot_variants(index: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, count)`` caption indices: each a variant of ``index (B,)`` with one random slot
    (size, colour, shape, position or background) changed to another random word of that slot.

    Indices are into :func:`inbetween.world.all_captions`; draws come from ``generator``.
    """
    device = index.device
    radix, place = SLOT_SIZES.to(device), SLOT_PLACES.to(device)
    shape = (len(index), count)
    slot = torch.randint(len(radix), shape, generator=generator, device=device)
    shift = 1 + (torch.rand(shape, generator=generator, device=device) * (radix[slot] - 1)).long()
    digit = index[:, None] // place[slot] % radix[slot]
    return index[:, None] + ((digit + shift) % radix[slot] - digit) * place[slot]


@torch.no_grad()
def slot_retrieval(encoder: TextEncoder, data: WorldCaptions) -> dict[str, float]:
    """How well ``encoder`` tells apart captions that differ in one slot, keyed by slot name.

    For every caption of ``data`` (all of them) and every slot, the render is matched against
    the captions that share all other slots; the score is the share of renders whose own
    caption has the highest CLIP similarity (chance: 1 / words in the slot).
    """
    similarity = encoder.encode_images(data.images) @ encoder.encode(data.captions)[2].T  # (N images, N texts)
    index = torch.arange(len(data.captions))
    scores = {}
    for name, radix, weight in zip(SLOT_NAMES, SLOT_SIZES.tolist(), SLOT_PLACES.tolist()):
        digit = index // weight % radix
        group = index[:, None] + (torch.arange(radix)[None] - digit[:, None]) * weight  # (N, radix)
        chosen = similarity.gather(1, group).argmax(dim=1)
        scores[name] = float((chosen == digit).float().mean())
    return scores


def _distributed_rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ClipTask(TrainingTask):
    """Contrastive training of :data:`keyframes.clip.WORLD_CLIP` (or ``config``) on world pairs.

    Every caption of a batch brings ``hard_negatives`` variants that differ from it in one
    slot (:func:`one_slot_variants`): without them a random batch almost never holds two
    captions that differ only in, say, position, and the encoder learns to ignore it.
    """

    name = "clip"

    def __init__(self, size: int = 64, config: dict[str, Any] | None = None, grid_captions: int = 12,
                 hard_negatives: int = 3):
        if hard_negatives < 0:
            raise InbetweenError(f"hard_negatives counts variants per caption; it must be >= 0, got {hard_negatives}.")
        self.size, self.config, self.grid_captions, self.hard_negatives = size, config, grid_captions, hard_negatives
        self.encoder = world_clip(config)
        self.data = WorldCaptions(size)
        self.tokens = self.encoder.tokenize(self.data.captions)

    def build_model(self) -> nn.Module:
        return world_clip(self.config).clip

    def dataset(self) -> Dataset:
        return self.data

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        open_clip = import_open_clip()
        rank, world_size = _distributed_rank_and_size()
        criterion = open_clip.loss.ClipLoss(gather_with_grad=True, rank=rank, world_size=world_size)
        index = batch["index"]
        variants = one_slot_variants(index, self.hard_negatives, generator).flatten()
        images = torch.cat([batch["image"], self.data.images[variants.cpu()].to(index.device)])
        index = torch.cat([index, variants])
        image_features, text_features, logit_scale = model(clip_pixels(images, self.size),
                                                           self.tokens.to(index.device)[index])
        return criterion(image_features.float(), text_features.float(), logit_scale.float())

    def _encoder(self, model: nn.Module) -> TextEncoder:
        return TextEncoder(model, self.encoder.tokenizer, {"config": self.config or self.encoder.spec["config"]})

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        """Cosine similarity of ``grid_captions`` random captions (rows) and their renders
        (columns) as a heat map: a bright diagonal means matching pairs score highest."""
        captions = random_captions(self.grid_captions, GRID_SEED)
        encoder = self._encoder(model)
        device = next(model.parameters()).device
        images = torch.stack([render_caption(caption, self.size) for caption in captions]).to(device)
        similarity = encoder.encode(captions)[2] @ encoder.encode_images(images).T
        heat = ((similarity.float().cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        heat = cv2.resize(heat, None, fx=24, fy=24, interpolation=cv2.INTER_NEAREST)
        return cv2.applyColorMap(heat, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()

    def export(self, model: nn.Module, folder: Path) -> None:
        self._encoder(model).save(folder)


class KeyframeTask(TrainingTask):
    """The text-conditioned denoiser on every world caption, ``cond_dropout`` of them unconditional.

    ``text_encoder`` is a folder with ``text_encoder.json`` (the shipped
    ``checkpoints/keyframes``, the default, or a ``stage=clip`` run's ``model/``); ``unet`` holds
    :class:`keyframes.unet.TextUNet` options.
    """

    name = "keyframes"

    def __init__(self, text_encoder: str | None = None, size: int = 64, unet: dict[str, Any] | None = None,
                 schedule: str = "cosine", prediction: str = "v", cond_dropout: float = 0.1,
                 grid_captions: int = 8, grid_steps: int = 20, grid_guidance: float = 3.0):
        if prediction not in PREDICTIONS:
            raise InbetweenError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}.")
        if not 0.0 <= cond_dropout < 1.0:
            raise InbetweenError(f"cond_dropout is a probability in [0, 1), got {cond_dropout}.")
        self.text = load_text_encoder(text_encoder)
        self.config = {"size": size, "unet": dict(unet or {}), "schedule": schedule, "prediction": prediction}
        self.schedule = NoiseSchedule(schedule)
        self.cond_dropout, self.grid_captions = cond_dropout, grid_captions
        self.grid_steps, self.grid_guidance = grid_steps, grid_guidance
        self.data = WorldCaptions(size)
        self.context, self.mask, self.pooled = self.text.encode(self.data.captions)
        self.null = self.text.encode([""])

    def build_model(self) -> nn.Module:
        return KeyframeModel.build(self.text, self.config).unet.to(memory_format=torch.channels_last)

    def dataset(self) -> Dataset:
        return self.data

    def _conditioning(self, index: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """``[context, mask, pooled]`` of the batch's captions, each dropped to the empty prompt with
        probability ``cond_dropout``."""
        device = index.device
        dropped = torch.rand(len(index), generator=generator, device=device) < self.cond_dropout
        conditioning = []
        for table, null in zip((self.context, self.mask, self.pooled), self.null):
            chosen = table.to(device)[index]
            keep = (~dropped).view(-1, *[1] * (chosen.dim() - 1))
            conditioning.append(torch.where(keep, chosen, null.to(device).expand_as(chosen)))
        return conditioning

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        cond = self._conditioning(batch["index"], generator)
        x0 = batch["image"].contiguous(memory_format=torch.channels_last)
        return diffusion_loss(lambda x_t, t: model(x_t, t, *cond).float(), x0, self.schedule,
                              self.config["prediction"], generator)

    def _model(self, unet: nn.Module) -> KeyframeModel:
        return KeyframeModel(self.text.to(next(unet.parameters()).device), unet, self.config)

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        """Keyframes of ``grid_captions`` fixed random captions from fixed noise, captioned."""
        captions = random_captions(self.grid_captions, GRID_SEED)
        device = next(model.parameters()).device
        size = self.config["size"]
        noise = torch.randn((len(captions), 3, size, size), generator=torch.Generator().manual_seed(GRID_SEED)).to(device)
        images = self._model(model).generate(captions, noise, steps=self.grid_steps, guidance=self.grid_guidance)
        return contact_sheet(list(to_uint8(images)), captions, columns=4, tile=128)

    def export(self, model: nn.Module, folder: Path) -> None:
        self._model(model).save(folder)
