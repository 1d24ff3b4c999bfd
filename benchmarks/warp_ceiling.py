"""How far warping the keyframes can go on Shapes World clips, as a markdown table per motion kind.

    python benchmarks/warp_ceiling.py [--clips-per-kind 4]

Mean PSNR (dB) of the 7 in-betweens of ``inbetween evaluate``'s world clips with keyframes 8
frames apart (128 px, evaluation seeds; the keyframes span the clip), three ways:

* ``flow_warp, DIS``: the baseline as evaluated;
* ``flow_warp, exact keyframe flow``: the baseline given the true flow between the keyframes
  (it still assumes straight, constant-speed motion between them);
* ``warp along exact flows from t``: both keyframes backward-warped along the true flows from
  each in-between and blended by true visibility. This is the ceiling of an interpolator that
  corrects the flows from ``t`` (``interpolate.diffusion.synthesise``) without painting pixels.
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
from interpolate.training import EVALUATION_SEEDS_START

SIZE = 128


def warp_along_exact_flows(clip: Clip, left: torch.Tensor, right: torch.Tensor, t: float) -> torch.Tensor:
    """``(3, S, S)``: ``left`` and ``right`` ``(1, 3, S, S)`` warped to ``t`` along the clip's true flows,
    weighted ``(1 - t)`` and ``t`` where the pixel is visible in that keyframe."""
    warped, weights = [], []
    for key, key_time, share in ((left, 0.0, 1 - t), (right, 1.0, t)):
        flow = torch.from_numpy(clip.flow(t, key_time, SIZE))[None]
        warped.append(backward_warp(key, flow)[0])
        weights.append(share * (torch.from_numpy(clip.visible_mask(t, key_time, SIZE)).float() + 1e-6))
    return (weights[0] * warped[0] + weights[1] * warped[1]) / (weights[0] + weights[1])


def kind_scores(kind: str, clips: int) -> list[float]:
    """Mean PSNR over ``clips`` clips of ``kind``: DIS flow_warp, exact-flow flow_warp, the ceiling."""
    warper, dis = FlowWarpInterpolator(), DISFlow()
    scores = []
    for index in range(clips):
        clip = Clip.random(EVALUATION_SEEDS_START + CLIP_KINDS.index(kind) * clips + index, kind)
        times = [k / 8 for k in range(1, 8)]
        truth = np.stack([clip.render(t, SIZE) for t in times])
        left, right = (from_uint8(clip.render(t, SIZE))[None] for t in (0.0, 1.0))
        exact = [torch.from_numpy(clip.flow(a, b, SIZE))[None] for a, b in ((0.0, 1.0), (1.0, 0.0))]
        answers = [warper(left, right, *dis.bidirectional(left, right), times)[0],
                   warper(left, right, *exact, times)[0],
                   torch.stack([warp_along_exact_flows(clip, left, right, t) for t in times])]
        scores.append([psnr(to_uint8(frames), truth) for frames in answers])
    return np.mean(scores, axis=0).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-per-kind", type=int, default=4)
    args = parser.parse_args()
    with torch.inference_mode():
        by_kind = {kind: kind_scores(kind, args.clips_per_kind) for kind in CLIP_KINDS}
    names = ["flow_warp, DIS", "flow_warp, exact keyframe flow", "warp along exact flows from t"]
    rows = [{"method": name, **{kind: f"{by_kind[kind][i]:.2f}" for kind in CLIP_KINDS},
             "mean": f"{np.mean([by_kind[kind][i] for kind in CLIP_KINDS]):.2f}"} for i, name in enumerate(names)]
    print(markdown_table(rows, ["method", *CLIP_KINDS, "mean"]))


if __name__ == "__main__":
    main()
