"""The flow stage: dense optical flow between keyframes.

Estimators follow :class:`flow.base.FlowEstimator`: ``(B, 3, H, W)`` images in
``[-1, 1]`` in, ``flow_0to1`` ``(B, 2, H, W)`` in pixels out.
"""

from flow.base import FlowEstimator
from flow.metrics import endpoint_error
from flow.opencv import DISFlow, FarnebackFlow
from flow.viz import flow_to_color, save_flow_png

__all__ = ["FlowEstimator", "DISFlow", "FarnebackFlow", "endpoint_error", "flow_to_color", "save_flow_png"]
