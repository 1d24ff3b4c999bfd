"""Keyframes drawn by the user's own pretrained text-to-image model (``keyframes=pretrained``).

Built on diffusers, an optional extra (``pip install -c constraints.txt -e ".[pretrained]"``).
``model`` is a local path, never downloaded (``local_files_only``):

* a diffusers pipeline folder (``model_index.json`` beside ``unet/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/`` (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``), ``scheduler/``):
  Stable Diffusion 1.x / 2.x, SDXL, or any diffusers text-to-image pipeline;
* one ``.safetensors`` file of SD 1.x, SD 2.x or SDXL, with ``config``: a diffusers folder of the
  same family whose configuration files (tokenizer, scheduler, model configs) it takes, since
  nothing is downloaded.

Consistency across a shot: ``shared_noise`` starts every keyframe of a shot from one latent noise;
``anchor_strength`` > 0 then redraws each keyframe after the shot's first from that first keyframe
(image to image with that strength), so a character keeps its look. Returns ``(K, 3, height,
width)`` in ``[-1, 1]``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from inbetween.diffusion.precision import native_bf16
from inbetween.errors import InbetweenError
from inbetween.imports import import_beside_torchvision
from keyframes.base import KeyframeGenerator

#: This project's sampler names -> diffusers scheduler classes and the options that make them so.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CONSISTENCY = ("shared_noise", "independent")
LAYOUTS = ("a diffusers pipeline folder (model_index.json beside unet/, vae/, text_encoder/, tokenizer/, scheduler/), "
           "or one .safetensors file of SD 1.x, SD 2.x or SDXL with keyframes.config=FOLDER")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def import_diffusers():
    """``diffusers``, or :class:`InbetweenError` saying which extra to install."""
    try:
        return import_beside_torchvision("diffusers")
    except ImportError as error:
        raise InbetweenError(f"keyframes=pretrained needs diffusers and transformers ({error}); install the "
                             "optional extra: pip install -c constraints.txt -e \".[pretrained]\"") from None


def check_model_path(model: str | None, config: str | None) -> Path:
    """The model path, or :class:`InbetweenError` naming the path and the layouts expected."""
    if not model:
        raise InbetweenError(f"keyframes.model is not set; give {LAYOUTS}.")
    path = Path(model).expanduser()
    if not path.exists():
        hub = " It looks like a model id on a hub: inbetween never downloads; fetch it yourself and give its " \
              "local folder." if _HUB_ID.match(model) else ""
        raise InbetweenError(f"keyframes.model '{model}' does not exist.{hub} Give {LAYOUTS}.")
    if path.is_dir() and not (path / "model_index.json").is_file():
        raise InbetweenError(f"keyframes.model '{model}' is a folder without model_index.json, so not a diffusers "
                             f"pipeline; give {LAYOUTS}.")
    if path.is_file() and (path.suffix != ".safetensors" or not config):
        raise InbetweenError(f"keyframes.model '{model}' is a file; give {LAYOUTS} (a single file needs "
                             "keyframes.config, since no configuration is downloaded).")
    return path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise InbetweenError(f"keyframes.device must be cpu, cuda or auto, got {device!r}.")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16``; ``auto``: fp16 on CUDA, bf16 on a CPU with AMX, else fp32."""
    if precision not in PRECISIONS:
        raise InbetweenError(f"keyframes.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "bf16" if native_bf16(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InbetweenError("keyframes.precision=fp16 runs on CUDA only; use fp32 or bf16 on the CPU.")
    return precision


class PretrainedKeyframes(KeyframeGenerator):
    """Draws each prompt with a local diffusers text-to-image pipeline (see the module docstring).

    ``scheduler``: ``ddim``, ``dpmpp_2m`` or ``euler``; ``steps``, ``guidance`` (classifier-free
    scale), ``negative_prompt``; ``width`` and ``height`` (multiples of 8); ``precision``: ``auto``,
    ``fp32``, ``bf16`` or ``fp16`` (CUDA); ``device``: ``cpu``, ``cuda`` or ``auto``.
    """

    name = "pretrained"

    def __init__(self, model: str, config: str | None = None, scheduler: str = "dpmpp_2m", steps: int = 25,
                 guidance: float = 7.5, negative_prompt: str = "", width: int = 512, height: int = 512,
                 consistency: str = "shared_noise", anchor_strength: float = 0.0, precision: str = "auto",
                 device: str = "auto") -> None:
        if scheduler not in SCHEDULERS:
            raise InbetweenError(f"keyframes.scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}.")
        if consistency not in CONSISTENCY:
            raise InbetweenError(f"keyframes.consistency must be one of {', '.join(CONSISTENCY)}, got {consistency!r}.")
        if width % 8 or height % 8 or width <= 0 or height <= 0:
            raise InbetweenError(f"keyframes.width and height must be positive multiples of 8, got {width}x{height}.")
        if not 0 <= anchor_strength < 1:
            raise InbetweenError(f"keyframes.anchor_strength must be in [0, 1) (0: off), got {anchor_strength}.")
        path = check_model_path(model, config)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = DTYPES[self.precision]
        diffusers = import_diffusers()
        self.pipeline = self._load(diffusers, path, config)
        scheduler_class, options = SCHEDULERS[scheduler]
        self.pipeline.scheduler = getattr(diffusers, scheduler_class).from_config(self.pipeline.scheduler.config,
                                                                                   **options)
        self.pipeline.set_progress_bar_config(disable=True)
        self.anchor = None
        if anchor_strength > 0:
            self.anchor = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipeline)
            self.anchor.set_progress_bar_config(disable=True)
        self.steps, self.guidance, self.negative_prompt = steps, guidance, negative_prompt
        self.width, self.height, self.consistency, self.anchor_strength = width, height, consistency, anchor_strength

    def _load(self, diffusers, path: Path, config: str | None):
        options = {"local_files_only": True, "torch_dtype": self.dtype}
        try:
            if path.is_dir():
                pipeline = diffusers.DiffusionPipeline.from_pretrained(str(path), **options)
            else:  # the pipeline class of the configuration folder, its weights from the file
                family = json.loads((Path(config) / "model_index.json").read_text())["_class_name"]
                pipeline = getattr(diffusers, family).from_single_file(str(path), config=str(config), **options)
        except (OSError, ValueError, KeyError, EnvironmentError) as error:
            raise InbetweenError(f"keyframes.model '{path}' could not be loaded as {LAYOUTS}: "
                                 f"{str(error).splitlines()[0]}") from None
        if getattr(pipeline, "safety_checker", None) is not None:
            pipeline.safety_checker = None  # the animator's own model and prompts; it also needs downloads
        return pipeline.to(self.device)

    def _latents(self, count: int, seed: int) -> torch.Tensor:
        """Starting latent noise ``(count, C, height / f, width / f)`` for one shot, from ``seed``."""
        factor = self.pipeline.vae_scale_factor
        shape = (1 if self.consistency == "shared_noise" else count, self.pipeline.unet.config.in_channels,
                 self.height // factor, self.width // factor)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        return noise.expand(count, -1, -1, -1).contiguous().to(self.device, self.dtype)

    def _options(self, prompts: Sequence[str], seed: int) -> dict[str, Any]:
        return {"prompt": list(prompts), "num_inference_steps": self.steps, "guidance_scale": self.guidance,
                "negative_prompt": [self.negative_prompt] * len(prompts) if self.negative_prompt else None,
                "generator": torch.Generator(self.device).manual_seed(seed + 1), "output_type": "pt"}

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        images = self.pipeline(height=self.height, width=self.width, latents=self._latents(len(prompts), seed),
                               **self._options(prompts, seed)).images
        if self.anchor is not None and len(prompts) > 1:
            first = images[:1].expand(len(prompts) - 1, -1, -1, -1)
            anchored = self.anchor(image=first, strength=self.anchor_strength, **self._options(prompts[1:], seed))
            images = torch.cat([images[:1], anchored.images])
        return (images.float().cpu() * 2 - 1).clamp(-1, 1)
