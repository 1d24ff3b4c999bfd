"""The interpolator interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class Neighbour:
    """A keyframe of the shot just beyond a gap, with the flow between it and the gap's nearer keyframe.

    ``image`` ``(B, 3, H, W)`` in ``[-1, 1]``; ``flow_from_gap`` ``(B, 2, H, W)``: from the gap's nearer
    keyframe to this one, in pixels; ``flow_to_gap``: back (for interpolators that test consistency).
    """

    image: torch.Tensor
    flow_from_gap: torch.Tensor
    flow_to_gap: torch.Tensor


@dataclass
class Neighbours:
    """The keyframes just beyond a gap from keyframe ``k`` to ``k + 1`` in its shot.

    ``before``: keyframe ``k - 1`` (its nearer keyframe is the gap's left one), None in a shot's first
    gap; ``after``: keyframe ``k + 2`` (nearer: the right one), None in its last gap. Never across a
    cut: a shot of two keyframes has neither. A shot spaces its keyframes evenly, so each neighbour
    is one gap's time away from its nearer keyframe.
    """

    before: Neighbour | None = None
    after: Neighbour | None = None


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

    ``accepts_neighbours``: whether ``__call__`` takes a keyword ``neighbours``, a
    :class:`Neighbours` (the shot's keyframes beyond the gap, for curved and eased motion);
    ``uses_neighbours``: whether callers should pass it (an option of such interpolators). Without
    it, or with both neighbours None, the frames are those of the gap alone.
    """

    name: str = "interpolator"
    needs_flow: bool = True
    times_per_call: int | None = None
    accepts_neighbours: bool = False
    uses_neighbours: bool = False

    def __call__(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        flow_lr: torch.Tensor | None,
        flow_rl: torch.Tensor | None,
        times: Sequence[float],
    ) -> torch.Tensor:
        raise NotImplementedError
