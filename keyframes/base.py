"""The keyframe-generator interface."""

from __future__ import annotations

from typing import Sequence

import torch


class KeyframeGenerator:
    """Makes the keyframes of one shot.

    ``__call__(prompts, seed)`` takes the shot's prompts (one per keyframe; for
    generators that read files, each prompt is an image path) and returns keyframes
    ``(K, 3, H, W)`` in ``[-1, 1]`` with ``K = len(prompts)``. The same prompts and
    seed give the same pixels.
    """

    name: str = "keyframes"

    def __call__(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        raise NotImplementedError

    def warnings(self, prompts: Sequence[str]) -> list[str]:
        """What this generator cannot draw as asked among a run's ``prompts`` (every shot's, in
        order), as messages for the user; ``[]`` when it can draw them all. The pipeline asks
        once per run, prints each message and keeps them in ``run.json``."""
        return []
