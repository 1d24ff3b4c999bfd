"""The interpolation stage: the frames between two keyframes.

Interpolators follow :class:`interpolate.base.Interpolator`: keyframes ``(B, 3, H, W)``
and optional bidirectional flow in (and, for those that accept them, the shot's keyframes beyond
the gap: :class:`interpolate.base.Neighbours`), frames ``(B, T, 3, H, W)`` in ``[-1, 1]`` out.
:class:`DiffusionInterpolator` is the temporal diffusion model (it needs a trained model
folder); the classical ones (``flow_warp``, the default, ``linear``, ``minterpolate``) are
its baselines.
"""

from interpolate.base import Interpolator, Neighbour, Neighbours
from interpolate.classical import FlowWarpInterpolator, LinearInterpolator, MinterpolateInterpolator
from interpolate.diffusion import DiffusionInterpolator

__all__ = ["Interpolator", "Neighbour", "Neighbours", "DiffusionInterpolator", "LinearInterpolator", "FlowWarpInterpolator",
           "MinterpolateInterpolator"]
