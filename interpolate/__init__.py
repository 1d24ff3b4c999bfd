"""The interpolation stage: the frames between two keyframes.

Interpolators follow :class:`interpolate.base.Interpolator`: keyframes ``(B, 3, H, W)``
and optional bidirectional flow in, frames ``(B, T, 3, H, W)`` in ``[-1, 1]`` out.
"""

from interpolate.base import Interpolator
from interpolate.classical import FlowWarpInterpolator, LinearInterpolator, MinterpolateInterpolator

__all__ = ["Interpolator", "LinearInterpolator", "FlowWarpInterpolator", "MinterpolateInterpolator"]
