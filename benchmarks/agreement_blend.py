"""`flow_warp` with the learned flow, blended with its rendering along DIS's flow, on validation data only.

    python benchmarks/agreement_blend.py [--windows 15 31] [--temperatures 8 16 32] [--margins 0 2 4]
                                         [--clips-per-kind 4] [--video-frames 13] [--camera-frames 61]

``interpolate=flow_warp_blend`` renders each frame along the configured flow and along DIS's and blends
the two per pixel by how well each one's two warped keyframes agree
(:func:`interpolate.classical.agreement_weight`). This prints mean PSNR (dB) / SSIM of that blend for each
``--windows`` x ``--temperatures`` x ``--margins`` setting, with the learned flow (the shipped
``checkpoints/flow``), beside ``flow_warp`` along each flow alone and the plain mean of the two
renderings, everything in one run, on

* held-back Shapes World clips (seeds from 500000, ``--clips-per-kind`` of every kind, keyframes 8
  frames apart, 7 in-betweens, 128 px),
* the training videos (``DATA_ROOT/train/videos``) with every other frame dropped, their first
  ``--video-frames`` frames, and
* the evaluation cameras' videos (``DATA_ROOT/videos``) likewise from frame 64 on (``--camera-frames``
  frames): the data's README allows training on them after frame 61, so they are validation data.

Never evaluation data: the table ``AGREEMENT_WINDOW``, ``AGREEMENT_TEMPERATURE`` and ``AGREEMENT_MARGIN``
were chosen by. Each pair's two flows and two renderings are made once and shared by every setting.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from flow import DISFlow
from flow.learned import LearnedFlow
from flow.training import VALIDATION_SEED
from inbetween import config
from inbetween.evaluation import Case, psnr, ssim, video_cases, world_cases
from inbetween.progress import progress_bar
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8, to_uint8
from interpolate import FlowWarpInterpolator
from interpolate.classical import agreement_blend

#: The first frame of the evaluation cameras' videos that this reads (the evaluation reads frames 0 to 60).
CAMERA_FIRST_FRAME = 64


def scores(cases: list[Case], settings: list[tuple[int, float, float]],
           description: str) -> dict[str, tuple[float, float]]:
    """Mean ``(PSNR, SSIM)`` over ``cases`` of ``flow_warp`` along the learned flow, along DIS's, their
    mean, and their :func:`agreement_blend` for each ``(window, temperature, margin)`` in ``settings``."""
    learned, dis, warper = LearnedFlow(), DISFlow(), FlowWarpInterpolator()
    found: dict[str, list[tuple[float, float]]] = {}
    for case in progress_bar(cases, desc=description, unit="case"):
        left, right = from_uint8(case.keys[:1]), from_uint8(case.keys[1:])
        learned_flows, dis_flows = learned.bidirectional(left, right), dis.bidirectional(left, right)
        frames: dict[str, list[torch.Tensor]] = {}
        for t in case.times:
            along_learned = warper.warp(left, right, *learned_flows, t)
            along_dis = warper.warp(left, right, *dis_flows, t)
            candidates = {"learned": along_learned.blend, "dis": along_dis.blend,
                          "mean of the two": (along_learned.blend + along_dis.blend) / 2}
            for window, temperature, margin in settings:
                candidates[f"blend {window} / {temperature:g} / {margin:g}"] = agreement_blend(
                    along_learned, along_dis, window=window, temperature=temperature, margin=margin)
            for name, frame in candidates.items():
                frames.setdefault(name, []).append(frame)
        for name, frame_list in frames.items():
            rendered = to_uint8(torch.cat(frame_list))
            found.setdefault(name, []).append((psnr(rendered, case.truth), ssim(rendered, case.truth)))
    return {name: tuple(np.mean(values, axis=0)) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, nargs="+", default=[15, 31])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[8.0, 16.0, 32.0])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    parser.add_argument("--clips-per-kind", type=int, default=4)
    parser.add_argument("--video-frames", type=int, default=13)
    parser.add_argument("--camera-frames", type=int, default=61)
    args = parser.parse_args()
    root = config.data_root()
    datasets = {
        "world": list(world_cases([8], 9, args.clips_per_kind, 128, VALIDATION_SEED)),
        "training videos": list(video_cases([f"{root}/train/videos"], args.video_frames)),
        "cameras from 64": list(video_cases([f"{root}/videos"], args.camera_frames, CAMERA_FIRST_FRAME)),
    }
    settings = list(itertools.product(args.windows, args.temperatures, args.margins))
    with torch.inference_mode():
        columns = {dataset: scores(cases, settings, dataset) for dataset, cases in datasets.items()}
    names = list(next(iter(columns.values())))
    rows = [{"flow_warp (window / temperature / margin)": name,
             **{dataset: f"{column[name][0]:.2f} / {column[name][1]:.4f}" for dataset, column in columns.items()}}
            for name in names]
    print(markdown_table(rows, ["flow_warp (window / temperature / margin)", *columns]))


if __name__ == "__main__":
    main()
