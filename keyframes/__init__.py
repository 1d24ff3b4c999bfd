"""Stage one: keyframe generators.

Every generator maps a shot's prompts and a seed to keyframes ``(K, 3, H, W)`` in
``[-1, 1]`` (see :class:`keyframes.base.KeyframeGenerator`). Choose one with the
``keyframes`` config group: ``diffusion`` (the text-conditioned diffusion model,
:class:`keyframes.diffusion.DiffusionKeyframes`, imported from its module so that the
other generators load without open_clip), ``world`` (exact Shapes World renders) or
``images`` (the animator's own files).
"""

from keyframes.base import KeyframeGenerator
from keyframes.images import ImageKeyframes
from keyframes.world import WorldKeyframes

__all__ = ["KeyframeGenerator", "ImageKeyframes", "WorldKeyframes"]
