"""Flow accuracy metrics."""

from __future__ import annotations

import torch


def endpoint_error(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean end-point error in pixels: the average of ``|pred - gt|_2`` over pixels.

    Args:
        pred, gt: flows ``(B, 2, H, W)`` (or ``(2, H, W)``), channels ``(dx, dy)``.
        mask: optional weights ``(B, 1, H, W)``, ``(B, H, W)`` or anything that
            broadcasts to ``(B, H, W)``; the mean is taken over pixels where it is
            non-zero (weighted by it). An all-zero mask raises ``ValueError``.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"flow shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    error = (pred.double() - gt.double()).norm(dim=-3)
    if mask is None:
        return error.mean().item()
    weights = mask.double()
    if weights.dim() == error.dim() + 1:
        weights = weights.squeeze(-3)
    weights = weights.expand_as(error)
    total = weights.sum()
    if total <= 0:
        raise ValueError("endpoint_error: the mask selects no pixels")
    return ((error * weights).sum() / total).item()
