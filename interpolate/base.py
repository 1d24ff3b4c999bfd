"""The interpolator interface."""

from __future__ import annotations

from typing import Sequence

import torch


class Interpolator:
    """Fills the frames between two keyframes.

    ``__call__(left, right, flow_lr, flow_rl, times)``:

    * ``left``, ``right``: keyframes ``(B, 3, H, W)`` in ``[-1, 1]``.
    * ``flow_lr``: flow from ``left`` to ``right``, ``(B, 2, H, W)`` in pixels;
      ``flow_rl`` the other way. Interpolators that do not use flow ignore them
      (``needs_flow`` is then ``False`` and callers may pass ``None``).
    * ``times``: the times ``t`` in ``(0, 1)`` to produce, any number, any order;
      ``t = 0`` is ``left`` and ``t = 1`` is ``right``.

    Returns frames ``(B, T, 3, H, W)`` in ``[-1, 1]`` with ``T = len(times)``.

    ``times_per_call``: the most times the pipeline asks for in one call (it splits a gap's
    times into runs of this many, in order, and writes each run's frames before the next);
    None asks for all of a gap's times at once. Interpolators whose frames do not depend on
    the other times asked for set 1, so progress and memory go frame by frame.
    """

    name: str = "interpolator"
    needs_flow: bool = True
    times_per_call: int | None = None

    def __call__(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        flow_lr: torch.Tensor | None,
        flow_rl: torch.Tensor | None,
        times: Sequence[float],
    ) -> torch.Tensor:
        raise NotImplementedError
