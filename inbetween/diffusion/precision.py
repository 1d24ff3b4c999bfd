"""Numeric precision of running a denoiser: bf16 autocast or plain fp32."""

from __future__ import annotations

import contextlib

import torch

from inbetween.errors import InbetweenError

PRECISIONS = ("bf16", "fp32")


def check_precision(precision: str, setting: str = "precision") -> None:
    """Raise :class:`InbetweenError` naming ``setting`` unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InbetweenError(f"{setting} must be one of {', '.join(PRECISIONS)}, got {precision!r}.")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``precision == "bf16"``, else a no-op context."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
