"""inbetween: storyboard -> keyframes -> optical flow -> in-between frames -> video.

The framework package. Stage packages (``keyframes``, ``flow``, ``interpolate``) plug
into it through small interfaces and never import one another.

Conventions shared by every package:

* Images are float tensors in ``[-1, 1]``, shape ``(B, 3, H, W)``, RGB.
  Video is ``(B, T, 3, H, W)``. Files on disk are 8-bit RGB PNG.
* Flow is ``(B, 2, H, W)`` with channels ``(dx, dy)`` in pixels; ``flow_0to1`` says
  where a pixel of frame 0 lands in frame 1. Warping is backward unless a function
  says it splats forward.
* Every entry point takes a ``seed``; the same seed and config give the same pixels.
"""

__version__ = "0.1.0"
