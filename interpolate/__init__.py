"""The interpolation stage: the frames between two keyframes.

Interpolators follow :class:`interpolate.base.Interpolator`: keyframes ``(B, 3, H, W)``
and optional bidirectional flow in, frames ``(B, T, 3, H, W)`` in ``[-1, 1]`` out.
:class:`DiffusionInterpolator` (the default) is the trained temporal diffusion model; the
classical ones (``linear``, ``flow_warp``, ``minterpolate``) are its baselines.
"""

from interpolate.base import Interpolator
from interpolate.classical import FlowWarpInterpolator, LinearInterpolator, MinterpolateInterpolator
from interpolate.diffusion import DiffusionInterpolator

__all__ = ["Interpolator", "DiffusionInterpolator", "LinearInterpolator", "FlowWarpInterpolator",
           "MinterpolateInterpolator"]
