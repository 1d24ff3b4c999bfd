"""Tiled inference: run a local operator over overlapping tiles and blend them without seams.

A *local* operator's output at a pixel depends only on a window around it (a fully
convolutional network with per-pixel norms). Running it on overlapping tiles and
averaging the overlaps with weights that are zero next to each tile's inner edges and
ramp up linearly towards its inside bounds memory by the tile size; where the operator
reaches no further than a quarter of the overlap the result equals the untiled one, and a
wider reach leaves only a smooth blend of two nearly equal answers, no seam.
"""

from __future__ import annotations

from typing import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``0 .. length`` with at least ``overlap``
    shared pixels between neighbours; the last tile ends at ``length``. One tile if it fits.

    Starts are multiples of ``align`` (which must divide ``tile`` and ``length``), so a network
    that folds pixels into cells sees the same cell grid in every tile.
    """
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile or tile % align or length % align:
        raise ValueError(f"need 0 <= overlap < tile and tile, length multiples of {align}; "
                         f"got overlap={overlap}, tile={tile}, length={length}")
    stride = (tile - overlap) // align * align
    if stride <= 0:
        raise ValueError(f"tile {tile} minus overlap {overlap} must leave at least {align} pixels")
    count = -(-(length - tile) // stride) + 1
    slots = (length - tile) // align
    return [round(index * slots / (count - 1)) * align for index in range(count)]


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """``(length,)`` blend weights: 1 inside; at an end marked ``rise`` (start) / ``fall`` (end),
    0 over the outer quarter of the ``overlap`` (pixels whose view is cut by the tile edge),
    then rising linearly to 1 at three quarters. Neighbouring tiles overlap by at least
    ``overlap``, so every pixel keeps a positive total weight."""
    margin = overlap // 4
    distance = torch.arange(length, dtype=torch.float32)
    rising = ((distance - margin + 1) / (overlap - 2 * margin + 1)).clamp(0, 1)
    weights = torch.ones(length)
    if rise and overlap:
        weights = torch.minimum(weights, rising)
    if fall and overlap:
        weights = torch.minimum(weights, rising.flip(0))
    return weights


def run_tiled(operator: Callable[..., torch.Tensor], inputs: list[torch.Tensor], tile: int,
              overlap: int, align: int = 1) -> torch.Tensor:
    """``operator(*crops)`` over overlapping tiles of ``inputs``, blended into one output.

    ``inputs``: tensors ``(..., H, W)`` sharing ``H`` and ``W`` (cropped alike); the operator
    maps crops ``(..., h, w)`` to an output ``(..., h, w)``. ``tile`` and ``overlap`` are in
    pixels; tiles start at multiples of ``align`` (see :func:`tile_starts`); with
    ``tile >= max(H, W)`` this is one plain call.
    """
    height, width = inputs[0].shape[-2:]
    rows, columns = (tile_starts(length, tile, overlap, align) for length in (height, width))
    if len(rows) == 1 and len(columns) == 1:
        return operator(*inputs)
    output = total = None
    for top in rows:
        for left in columns:
            window = (..., slice(top, top + tile), slice(left, left + tile))
            result = operator(*(tensor[window] for tensor in inputs))
            h, w = result.shape[-2:]
            weight = (_ramp(h, overlap, top > 0, top + h < height)[:, None]
                      * _ramp(w, overlap, left > 0, left + w < width)[None]).to(result)
            if output is None:
                output = result.new_zeros((*result.shape[:-2], height, width))
                total = result.new_zeros((height, width))
            output[window] += result * weight
            total[top:top + h, left:left + w] += weight
    return output / total
