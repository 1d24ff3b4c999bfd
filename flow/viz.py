"""Flow visualisation: the Middlebury colour wheel (Baker et al. 2011)."""

from __future__ import annotations

import os

import numpy as np
import torch

from inbetween.video import write_png

# Colour-wheel segments (red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta,
# magenta-red) and their lengths, as in the Middlebury flow code.
_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)), (4, (0, 255, 0), (0, 255, 255)),
             (11, (0, 255, 255), (0, 0, 255)), (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))


def color_wheel() -> np.ndarray:
    """The ``(55, 3)`` float RGB colour wheel in ``[0, 255]``, hue going red, yellow, green, cyan, blue, magenta."""
    return np.concatenate([np.linspace(start, end, length, endpoint=False) for length, start, end in _SEGMENTS])


def _as_numpy_flow(flow: torch.Tensor | np.ndarray) -> np.ndarray:
    """Accept ``(2, H, W)`` or ``(1, 2, H, W)`` tensors/arrays; return float64 ``(2, H, W)``."""
    array = flow.detach().cpu().double().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow, np.float64)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 2:
        raise ValueError(f"expected one flow of shape (2, H, W) or (1, 2, H, W), got {array.shape}")
    return array


def flow_to_color(flow: torch.Tensor | np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow field: hue is the direction, saturation the magnitude.

    Args:
        flow: ``(2, H, W)`` or ``(1, 2, H, W)`` flow ``(dx, dy)`` in pixels.
        max_magnitude: the magnitude drawn fully saturated; defaults to the largest in
            ``flow``. Larger vectors are clipped to full saturation and darkened.

    Returns:
        ``(H, W, 3)`` uint8 RGB. Zero flow is white; rightward motion is red, downward
        yellow-green... following the Middlebury wheel (``atan2(-dy, -dx)``).
    """
    dx, dy = _as_numpy_flow(flow)
    magnitude = np.hypot(dx, dy)
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) if magnitude.size else 0.0
    radius = magnitude / max(max_magnitude, np.finfo(np.float64).eps)
    wheel = color_wheel()
    position = (np.arctan2(-dy, -dx) / np.pi + 1) / 2 * (len(wheel) - 1)
    lower = np.floor(position).astype(int)
    upper = (lower + 1) % len(wheel)
    fraction = (position - lower)[..., None]
    color = ((1 - fraction) * wheel[lower] + fraction * wheel[upper]) / 255
    radius = radius[..., None]
    color = np.where(radius <= 1, 1 - radius * (1 - color), color * 0.75)
    return np.round(color * 255).astype(np.uint8)


def save_flow_png(flow: torch.Tensor | np.ndarray, path: str | os.PathLike, max_magnitude: float | None = None) -> None:
    """Write :func:`flow_to_color` of ``flow`` to ``path`` as PNG, atomically.

    The image goes to a temporary file in the same folder and is then renamed over
    ``path`` (:func:`inbetween.video.write_png`), so readers never see a half-written file.
    """
    write_png(path, flow_to_color(flow, max_magnitude))
