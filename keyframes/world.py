"""Keyframes rendered exactly by the Shapes World renderer (the oracle for stage one)."""

from __future__ import annotations

from typing import Sequence

import torch

from inbetween.world import render_caption
from keyframes.base import KeyframeGenerator


class WorldKeyframes(KeyframeGenerator):
    """Renders each prompt, a Shapes World caption, at ``size`` x ``size`` pixels.

    Returns ``(K, 3, size, size)`` in ``[-1, 1]``. Rendering is exact, so ``seed`` does
    not change the result; an unknown caption word raises an error naming it.
    """

    name = "world"

    def __init__(self, size: int = 128):
        self.size = size

    def __call__(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        return torch.stack([render_caption(prompt, self.size) for prompt in prompts])
