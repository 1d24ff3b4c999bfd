"""Numeric precision of running a network: bf16 autocast or plain fp32, or ``auto``.

``auto`` (the default of every model config and trainer) takes bf16 only where the hardware
runs it faster than fp32: on CUDA devices that support it, and on CPUs with AMX tiles (e.g.
Intel Sapphire Rapids, about 5x faster than fp32). Elsewhere ``auto`` takes fp32: on an
AVX2-only CPU bf16 autocast is emulated and runs 6x to 60x slower than fp32, and on a CPU
with AVX512-BF16 but no AMX (its bf16 dot products are native, its matrix products are not
faster) it ran 1.5x to 1.8x slower for most of this project's work
(``benchmarks/precision_speed.py``, README "Training").
"""

from __future__ import annotations

import contextlib

import torch

from inbetween.errors import InbetweenError

PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(precision: str, setting: str = "precision") -> None:
    """Raise :class:`InbetweenError` naming ``setting`` unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InbetweenError(f"{setting} must be one of {', '.join(PRECISIONS)}, got {precision!r}.")


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, which compute bf16 matrix products several times faster than fp32."""
    return bool(torch.cpu._is_amx_tile_supported())


def native_bf16(device: torch.device | str) -> bool:
    """Whether bf16 autocast on ``device`` runs on hardware that computes it faster than fp32 (CUDA, AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_amx()


def resolve_precision(precision: str, device: torch.device | str, setting: str = "precision") -> str:
    """``bf16`` or ``fp32``: ``precision`` itself, or for ``auto`` bf16 where :func:`native_bf16` holds."""
    check_precision(precision, setting)
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``precision == "bf16"``, else a no-op context.

    ``precision`` must already be resolved (see :func:`resolve_precision`).
    """
    if precision not in ("bf16", "fp32"):
        raise InbetweenError(f"autocast takes a resolved precision, bf16 or fp32, got {precision!r}.")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
