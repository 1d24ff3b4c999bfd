"""The flow-estimator interface."""

from __future__ import annotations

import torch


class FlowEstimator:
    """Estimates dense optical flow between two images.

    ``__call__(image0, image1)`` takes two ``(B, 3, H, W)`` float tensors in ``[-1, 1]``
    and returns ``flow_0to1`` of shape ``(B, 2, H, W)``: channels ``(dx, dy)`` in
    pixels, telling where each pixel of ``image0`` lands in ``image1``. The result is
    float32 on the device of the inputs.
    """

    name: str = "flow"

    def __call__(self, image0: torch.Tensor, image1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def bidirectional(self, image0: torch.Tensor, image1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(flow_0to1, flow_1to0)``, each ``(B, 2, H, W)``."""
        return self(image0, image1), self(image1, image0)
