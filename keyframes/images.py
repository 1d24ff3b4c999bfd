"""Keyframes from the animator's own image files."""

from __future__ import annotations

from typing import Sequence

import torch

from inbetween.errors import InbetweenError
from inbetween.video import from_uint8, read_image
from keyframes.base import KeyframeGenerator


class ImageKeyframes(KeyframeGenerator):
    """Reads each prompt as an image path; every image must have the same size.

    Returns ``(K, 3, H, W)`` in ``[-1, 1]`` at the files' own resolution. ``seed`` is
    unused: the files are the keyframes.
    """

    name = "images"

    def __call__(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        images = [read_image(path) for path in prompts]
        sizes = {image.shape[:2] for image in images}
        if len(sizes) > 1:
            listing = ", ".join(f"'{path}' {image.shape[1]}x{image.shape[0]}" for path, image in zip(prompts, images))
            raise InbetweenError(
                f"keyframe images must all have the same size, got {listing}. "
                "Resize them to one size (width x height) first."
            )
        return torch.stack([from_uint8(image) for image in images])
