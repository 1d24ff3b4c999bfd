"""How far warping the keyframes can go on Shapes World clips, as a markdown table per motion kind.

    python benchmarks/warp_ceiling.py [--clips-per-kind 4]

Mean PSNR (dB) of the 7 in-betweens of ``inbetween evaluate``'s world clips with keyframes 8
frames apart (128 px, evaluation seeds; the keyframes span the clip), seven ways:

* ``flow_warp, DIS``: the baseline as evaluated;
* ``flow_warp's DIS warps, true visibility blend``: the same two warped keyframes, mixed
  ``(1 - t, t)`` only where the pixel is truly visible in that keyframe: what the blend weight
  alone can add (``interpolate.training`` trains it against the same visibility);
* ``flow_warp, exact keyframe flow``: the baseline given the true flow between the keyframes
  (it still assumes straight, constant-speed motion between them);
* ``flow_warp, exact keyframe flow, true paths``: the same, with the keyframes' pixels moved to ``t``
  along their true paths (``time_flows``' ``paths``: the true flows from each keyframe to ``t``)
  instead of straight lines: the gap to the row above is what curves and easing cost;
* ``flow_warp, exact keyframe flow, true paths, true visibility blend``: its two warps blended by
  true visibility: the gap to the row above is what flow_warp's visibility estimate costs;
* ``warp along exact flows from t``: both keyframes backward-warped along the true flows from
  each in-between and blended by true visibility. This is the ceiling of an interpolator that
  corrects the flows from ``t`` (``interpolate.diffusion.synthesise``) without painting pixels;
* ``exact flows from t, plain blend``: the same warps mixed ``(1 - t, t)`` everywhere, so the
  gap to the row above is what knowing which keyframe shows each pixel (the blend weight) is
  worth on its own.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from flow import DISFlow
from inbetween.evaluation import psnr
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8, to_uint8
from inbetween.warp import backward_warp
from inbetween.world import CLIP_KINDS, Clip
from interpolate import FlowWarpInterpolator
from interpolate.classical import WarpedToTime, visibility_blend
from interpolate.training import EVALUATION_SEEDS_START

SIZE = 128


def exact_warps(clip: Clip, left: torch.Tensor, right: torch.Tensor, t: float) -> list[torch.Tensor]:
    """``left`` and ``right`` ``(1, 3, S, S)`` backward-warped to ``t`` along the clip's true flows, each ``(3, S, S)``."""
    return [backward_warp(key, torch.from_numpy(clip.flow(t, key_time, SIZE))[None])[0]
            for key, key_time in ((left, 0.0), (right, 1.0))]


def blend(clip: Clip, warped: list[torch.Tensor], t: float, by_visibility: bool) -> torch.Tensor:
    """``(3, S, S)``: the keyframes ``warped`` to ``t`` (left, right) mixed ``(1 - t)`` and ``t``, with
    ``by_visibility`` only where the pixel at ``t`` is truly visible in that keyframe."""
    visible = [torch.from_numpy(clip.visible_mask(t, key_time, SIZE)).float() if by_visibility else 1.0
               for key_time in (0.0, 1.0)]
    return visibility_blend(*warped, *visible, t, floor=1e-6)


def blended(clip: Clip, warps: list[WarpedToTime], times: list[float], by_visibility: bool) -> torch.Tensor:
    """``(T, 3, S, S)``: flow_warp's ``warps`` to each of ``times`` as it blends them, or with
    ``by_visibility`` blended by the true visibility (:func:`blend`)."""
    if not by_visibility:
        return torch.stack([warped.blend[0] for warped in warps])
    return torch.stack([blend(clip, [warped.left[0], warped.right[0]], t, True) for warped, t in zip(warps, times)])


class TruePaths:
    """How far the keyframes' pixels have truly moved by any time, as :meth:`FlowWarpInterpolator.warp` reads
    ``paths`` (:class:`interpolate.classical.NeighbourPaths`' interface)."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip

    def at(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D0, D1)``, each ``(1, 2, S, S)``: the true flows from the keyframes at 0 and 1 to ``t``."""
        return tuple(torch.from_numpy(self.clip.flow(key_time, t, SIZE))[None] for key_time in (0.0, 1.0))


def kind_scores(kind: str, clips: int) -> list[float]:
    """Mean PSNR over ``clips`` clips of ``kind`` of each row of the table (see the module docstring)."""
    warper, dis = FlowWarpInterpolator(), DISFlow()
    scores = []
    for index in range(clips):
        clip = Clip.random(EVALUATION_SEEDS_START + CLIP_KINDS.index(kind) * clips + index, kind)
        times = [k / 8 for k in range(1, 8)]
        truth = np.stack([clip.render(t, SIZE) for t in times])
        left, right = (from_uint8(clip.render(t, SIZE))[None] for t in (0.0, 1.0))
        dis_flows = dis.bidirectional(left, right)
        exact = [torch.from_numpy(clip.flow(a, b, SIZE))[None] for a, b in ((0.0, 1.0), (1.0, 0.0))]
        dis_warps = [warper.warp(left, right, *dis_flows, t) for t in times]
        true_path_warps = [warper.warp(left, right, *exact, t, TruePaths(clip)) for t in times]
        answers = [*(blended(clip, dis_warps, times, by_visibility) for by_visibility in (False, True)),
                   warper(left, right, *exact, times)[0],
                   *(blended(clip, true_path_warps, times, by_visibility) for by_visibility in (False, True)),
                   *(torch.stack([blend(clip, exact_warps(clip, left, right, t), t, by_visibility) for t in times])
                     for by_visibility in (True, False))]
        scores.append([psnr(to_uint8(frames.clamp(-1, 1)), truth) for frames in answers])
    return np.mean(scores, axis=0).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-per-kind", type=int, default=4)
    args = parser.parse_args()
    with torch.inference_mode():
        by_kind = {kind: kind_scores(kind, args.clips_per_kind) for kind in CLIP_KINDS}
    names = ["flow_warp, DIS", "flow_warp's DIS warps, true visibility blend", "flow_warp, exact keyframe flow",
             "flow_warp, exact keyframe flow, true paths", "flow_warp, exact keyframe flow, true paths, true visibility blend",
             "warp along exact flows from t", "exact flows from t, plain blend"]
    rows = [{"method": name, **{kind: f"{by_kind[kind][i]:.2f}" for kind in CLIP_KINDS},
             "mean": f"{np.mean([by_kind[kind][i] for kind in CLIP_KINDS]):.2f}"} for i, name in enumerate(names)]
    print(markdown_table(rows, ["method", *CLIP_KINDS, "mean"]))


if __name__ == "__main__":
    main()
