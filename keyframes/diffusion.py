"""Keyframes drawn by the text-conditioned diffusion model (the default stage one).

A model folder (``checkpoints/keyframes`` ships with the project; ``inbetween train
stage=keyframes`` writes new ones) holds:

* ``config.json``: image ``size``, ``unet`` constructor arguments, noise ``schedule`` and
  ``prediction`` (eps / v / x0);
* ``unet.safetensors``: the denoiser's (EMA) weights in float16;
* ``text_encoder.json`` (+ ``text_encoder.safetensors``): the frozen open_clip encoder.

Nothing is unpickled: weights are safetensors and settings JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from checkpoints import shipped
from inbetween.diffusion import NoiseSchedule, autocast, classifier_free_guidance, resolve_precision, sample, x0_denoiser
from inbetween.errors import InbetweenError
from inbetween.weights import load_weights, read_config, save_folder
from inbetween.world import canonical_caption
from keyframes.base import KeyframeGenerator
from keyframes.clip import TextEncoder, load_text_encoder
from keyframes.unet import TextUNet

UNET = "unet"  # the denoiser's weights: unet.safetensors
CONSISTENCY = ("shared_noise", "independent")


@dataclass
class KeyframeModel:
    """A frozen text encoder, a denoiser and the diffusion settings they were trained with."""

    text: TextEncoder
    unet: TextUNet
    config: dict[str, Any]  # size, unet kwargs, schedule, prediction

    def __post_init__(self) -> None:
        self.schedule = NoiseSchedule(self.config["schedule"])

    @property
    def size(self) -> int:
        return self.config["size"]

    @classmethod
    def build(cls, text: TextEncoder, config: dict[str, Any]) -> KeyframeModel:
        """A fresh (untrained) denoiser for ``text``'s features; ``config`` as in ``config.json``."""
        return cls(text, _unet(config, text), config)

    def conditioning(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(context (B, L, D), mask (B, L), pooled (B, P))`` for the prompts (``""``: unconditional)."""
        return self.text.encode(prompts)

    def denoiser(self):
        """``denoise(x_t, t, (context, mask, pooled)) -> x0`` of this model's UNet."""

        def denoise(x_t: torch.Tensor, t: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
            predict = x0_denoiser(lambda x, step: self.unet(x, step, *cond).float(), self.schedule,
                                  self.config["prediction"])
            return predict(x_t, t)

        return denoise

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], noise: torch.Tensor, sampler: str = "dpmpp_2m", steps: int = 20,
                 guidance: float = 3.0, eta: float = 0.0, generator: torch.Generator | None = None,
                 precision: str = "fp32") -> torch.Tensor:
        """Images ``(B, 3, size, size)`` in ``[-1, 1]`` from ``noise`` ``(B, 3, size, size)``;
        ``precision`` is ``bf16`` or ``fp32`` (see :func:`inbetween.diffusion.resolve_precision`)."""
        device = noise.device
        cond = self.conditioning(prompts)
        uncond = self.conditioning([""] * len(prompts))
        denoise = classifier_free_guidance(self.denoiser(), cond, uncond, guidance)
        with autocast(device, precision):
            images = sample(denoise, noise, self.schedule, sampler, steps, eta, generator)
        return images.float().clamp(-1, 1)

    def save(self, folder: str | Path) -> None:
        """Write the model folder: text encoder, denoiser weights, config."""
        self.text.save(folder)
        save_folder(folder, self.config, {UNET: self.unet})

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> KeyframeModel:
        """The model saved in ``folder`` (safetensors and JSON only), in eval mode on ``device``."""
        config = read_config(folder, [UNET], "a keyframe model folder", "train one with `inbetween train "
                             "stage=keyframes` or use the shipped checkpoints/keyframes")
        text = load_text_encoder(folder)
        unet = load_weights(_unet(config, text), folder, UNET)
        model = cls(text.to(device), unet.to(device).eval().requires_grad_(False), config)
        model.unet.to(memory_format=torch.channels_last)
        return model


def _unet(config: dict[str, Any], text: TextEncoder) -> TextUNet:
    return TextUNet(context_dim=text.width, pooled_dim=text.embed_dim, **config["unet"])


class DiffusionKeyframes(KeyframeGenerator):
    """Draws each prompt with a trained :class:`KeyframeModel`; returns ``(K, 3, S, S)`` in ``[-1, 1]``.

    ``consistency`` keeps one shot's keyframes one object: ``shared_noise`` starts every
    keyframe of a shot from the same noise (drawn from the shot's seed), so what the prompts
    do not change stays put; ``independent`` draws fresh noise per keyframe.
    ``checkpoint`` is a model folder; None: the shipped ``checkpoints/keyframes``.

    The model is trained on canonical Shapes World captions only, so each prompt is drawn as its
    :func:`inbetween.world.canonical_caption`: left-out slots take their defaults (``a red circle at
    the left`` is drawn as ``a medium red circle at the left on a black background``) and words
    outside the world's vocabulary are left out, which :meth:`warnings` reports.
    """

    name = "diffusion"

    def __init__(self, checkpoint: str | None = None, sampler: str = "dpmpp_2m", steps: int = 20, guidance: float = 3.0,
                 eta: float = 0.0, consistency: str = "shared_noise", precision: str = "auto", device: str = "cpu"):
        if consistency not in CONSISTENCY:
            raise InbetweenError(f"consistency must be one of {', '.join(CONSISTENCY)}, got {consistency!r}.")
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = KeyframeModel.load(checkpoint or shipped("keyframes"), device)
        self.sampler, self.steps, self.guidance, self.eta = sampler, steps, guidance, eta
        self.consistency = consistency

    def noise(self, count: int, seed: int) -> torch.Tensor:
        """Starting noise ``(count, 3, S, S)`` for one shot, from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        shape = (1 if self.consistency == "shared_noise" else count, 3, self.model.size, self.model.size)
        return torch.randn(shape, generator=generator).expand(count, -1, -1, -1).contiguous().to(self.device)

    def __call__(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        generator = torch.Generator(self.device).manual_seed(seed + 1)
        captions = [canonical_caption(prompt)[0] for prompt in prompts]
        images = self.model.generate(captions, self.noise(len(prompts), seed), self.sampler, self.steps,
                                     self.guidance, self.eta, generator, self.precision)
        return images.cpu()

    def warnings(self, prompts: Sequence[str]) -> list[str]:
        """One message naming every prompt with words outside the Shapes World vocabulary, or ``[]``."""
        unknown = []
        for index, prompt in enumerate(prompts):
            caption, ignored = canonical_caption(prompt)
            if ignored:
                words = ", ".join(repr(word) for word in ignored)
                unknown.append(f"prompt {index} {prompt!r} (drawn as {caption!r}; unknown: {words})")
        if not unknown:
            return []
        return [f"keyframes={self.name} draws only the Shapes World (docs/WORLD.md) and left out the words it "
                f"does not know: {'; '.join(unknown)}. For other subjects, use your own text-to-image model "
                "(keyframes=pretrained keyframes.model=PATH), bring your own keyframes (inbetween interpolate "
                "images='[a.png,b.png]') or a model trained on them (keyframes.checkpoint=DIR); keyframes=world "
                "renders Shapes World captions exactly."]
