"""Text conditioning through open_clip: its tokenizer, text transformer and image tower.

A :class:`TextEncoder` wraps one ``open_clip.CLIP`` model, frozen. It gives the denoiser
per-token features (cross-attention context) and a pooled caption embedding, and gives the
evaluation a CLIP score (cosine of image and caption embeddings).

Two sources, both local (nothing is downloaded):

* the built-in tiny OpenCLIP trained contrastively on Shapes World captions
  (``inbetween train stage=clip``), saved as ``text_encoder.json`` (constructor arguments of
  ``open_clip.CLIP``) plus ``text_encoder.safetensors``;
* any pretrained OpenCLIP checkpoint on disk: ``text_encoder.json`` holds
  ``{"model": NAME, "pretrained": PATH}`` and open_clip builds and loads it.

Images are ``(B, 3, H, W)`` in ``[-1, 1]``; prompts are strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from checkpoints import shipped
from inbetween.errors import InbetweenError
from inbetween.imports import import_beside_torchvision
from inbetween.video import atomic_path

SPEC_FILE = "text_encoder.json"
WEIGHTS_FILE = "text_encoder.safetensors"

#: The built-in world CLIP: 64-wide 4-layer text transformer, 3-layer ViT on 64x64 images.
WORLD_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 128, "layers": 3, "head_width": 32},
    "text_cfg": {"context_length": 24, "width": 64, "heads": 4, "layers": 4},
}


def import_open_clip():
    """``import open_clip`` past a torchvision whose C++ operators do not load (see
    :func:`inbetween.imports.import_beside_torchvision`)."""
    return import_beside_torchvision("open_clip")


class TextEncoder(nn.Module):
    """A frozen open_clip model with the tokenizer that belongs to it.

    ``spec`` is what ``text_encoder.json`` holds (see the module docstring).
    """

    def __init__(self, clip: nn.Module, tokenizer, spec: dict[str, Any]):
        super().__init__()
        if not hasattr(clip, "token_embedding"):
            raise InbetweenError(f"{type(clip).__name__} has no open_clip text transformer of its own "
                                 "(token_embedding); pick an OpenCLIP model with a built-in text tower.")
        self.clip = clip.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.spec = spec

    @property
    def width(self) -> int:
        """Channels of the per-token features."""
        return self.clip.token_embedding.embedding_dim

    @property
    def embed_dim(self) -> int:
        """Channels of the pooled (projected) caption and image embeddings."""
        return self.clip.text_projection.shape[1]

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids ``(B, L)`` (start, words, end, zero padding)."""
        return self.tokenizer(list(prompts)).to(self.clip.positional_embedding.device)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(tokens (B, L, width), mask (B, L) bool, pooled (B, embed_dim) unit-norm)`` of the prompts.

        ``tokens`` are the text transformer's final-layer features at every position (causal,
        so each sees the words before it); ``mask`` is True up to and including the end token.
        """
        ids = self.tokenize(prompts)
        clip = self.clip
        x = clip.token_embedding(ids) + clip.positional_embedding
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        end = ids.argmax(dim=-1)
        mask = torch.arange(ids.shape[1], device=ids.device)[None] <= end[:, None]
        pooled = x[torch.arange(len(ids)), end] @ clip.text_projection
        return x, mask, F.normalize(pooled, dim=-1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings ``(B, embed_dim)`` of images ``(B, 3, H, W)`` in ``[-1, 1]``."""
        return F.normalize(self.clip.encode_image(clip_pixels(images, self.clip.visual.image_size)), dim=-1)

    def clip_score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity ``(B,)`` between each image and its prompt."""
        return (self.encode_images(images) * self.encode(prompts)[2]).sum(dim=-1)

    def save(self, folder: str | Path) -> None:
        """Write ``text_encoder.json`` (and, for a built-in model, its weights as float16)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if "config" in self.spec:
            weights = {name: tensor.detach().half().contiguous() for name, tensor in self.clip.state_dict().items()}
            with atomic_path(folder / WEIGHTS_FILE) as path:
                save_file(weights, str(path))
        with atomic_path(folder / SPEC_FILE) as path:
            path.write_text(json.dumps(self.spec, indent=2))


_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixels(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` in ``[-1, 1]`` resized to the image tower's ``size`` and normalised
    with OpenCLIP's (OpenAI) mean and std, as every open_clip image tower expects."""
    pixels = F.interpolate((images.float() + 1) / 2, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(_OPENAI_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(_OPENAI_STD, device=images.device)[:, None, None]
    return (pixels - mean) / std


def world_clip(config: dict[str, Any] | None = None) -> TextEncoder:
    """A freshly initialised built-in CLIP (``WORLD_CLIP`` unless ``config`` is given), not frozen."""
    open_clip = import_open_clip()
    config = config or WORLD_CLIP
    clip = open_clip.CLIP(**config)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config["text_cfg"]["context_length"])
    encoder = TextEncoder(clip, tokenizer, {"config": config})
    encoder.clip.requires_grad_(True)
    return encoder


def pretrained_clip(model: str, pretrained: str | Path) -> TextEncoder:
    """A pretrained OpenCLIP model ``model`` (an open_clip config name) loaded from the local file
    ``pretrained``; nothing is downloaded."""
    open_clip = import_open_clip()
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise InbetweenError(f"pretrained OpenCLIP checkpoint {str(path)!r} does not exist; give the path of a "
                             "local .safetensors/.bin/.pt file saved for open_clip model {model!r}.")
    if model not in open_clip.list_models():
        raise InbetweenError(f"{model!r} is not an open_clip model config; choose one of open_clip.list_models() "
                             "or register yours with open_clip.add_model_config.")
    clip = open_clip.create_model(model, pretrained=str(path), load_weights=True)
    return TextEncoder(clip, open_clip.get_tokenizer(model), {"model": model, "pretrained": str(path.resolve())})


def load_text_encoder(folder: str | Path | None = None) -> TextEncoder:
    """The frozen text encoder saved in ``folder`` by :meth:`TextEncoder.save` (safetensors, no pickle);
    None: the shipped keyframe model's."""
    folder = Path(folder) if folder is not None else shipped("keyframes")
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise InbetweenError(f"no {SPEC_FILE} in {str(folder)!r}; point at a folder written by "
                             "`inbetween train stage=clip` or a keyframe model folder.")
    spec = json.loads(spec_path.read_text())
    if "config" not in spec:
        return pretrained_clip(spec["model"], spec["pretrained"])
    encoder = world_clip(spec["config"])
    state = {name: tensor.float() for name, tensor in load_file(str(folder / WEIGHTS_FILE)).items()}
    encoder.clip.load_state_dict(state)
    return TextEncoder(encoder.clip, encoder.tokenizer, spec)
