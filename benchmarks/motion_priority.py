"""`flow_warp` against its splat's motion priority, on validation data only, as a markdown table.

    python benchmarks/motion_priority.py [--priorities 0 1 2 4 8] [--clips-per-kind 8]
                                         [--flows dis learned] [--video-frames 13]

Where two surfaces that both keyframes show land on the same pixel at time ``t`` (a shape passing
over a still background further than its own size), :func:`inbetween.warp.time_flows` puts the one
that moves further in front, weighting each consistent source by ``(1 + |F|) ** motion_priority``.
This prints mean PSNR (dB) / SSIM of ``flow_warp`` with each ``--priorities`` value and each
``--flows`` estimator, everything in one run, on

* held-back Shapes World clips (seeds from 500000, ``--clips-per-kind`` of every kind, keyframes 8
  frames apart, 7 in-betweens, 128 px), and
* the training videos (``DATA_ROOT/train/videos``) with every other frame dropped, their first
  ``--video-frames`` frames.

Never evaluation data: the table ``interpolate.motion_priority`` (``MOTION_PRIORITY``) was chosen by.
Each pair's flow is estimated once and shared by every priority.
"""

from __future__ import annotations

import argparse

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

ESTIMATORS = {"dis": DISFlow, "learned": LearnedFlow}


def scores(cases: list[Case], estimator, priorities: list[float], description: str) -> dict[float, tuple[float, float]]:
    """Mean ``(PSNR, SSIM)`` of ``flow_warp`` over ``cases`` for each motion priority, with ``estimator``'s flow."""
    warpers = {priority: FlowWarpInterpolator(motion_priority=priority) for priority in priorities}
    found = {priority: [] for priority in priorities}
    for case in progress_bar(cases, desc=description, unit="case"):
        left, right = from_uint8(case.keys[:1]), from_uint8(case.keys[1:])
        flows = estimator.bidirectional(left, right)
        for priority, warper in warpers.items():
            frames = to_uint8(warper(left, right, *flows, case.times)[0])
            found[priority].append((psnr(frames, case.truth), ssim(frames, case.truth)))
    return {priority: tuple(np.mean(values, axis=0)) for priority, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--priorities", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--clips-per-kind", type=int, default=8)
    parser.add_argument("--flows", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    parser.add_argument("--video-frames", type=int, default=13)
    args = parser.parse_args()
    datasets = {
        "world": list(world_cases([8], 9, args.clips_per_kind, 128, VALIDATION_SEED)),
        "training videos": list(video_cases([f"{config.data_root()}/train/videos"], args.video_frames)),
    }
    columns = {}
    with torch.inference_mode():
        for flow in args.flows:
            estimator = ESTIMATORS[flow]()
            for dataset, cases in datasets.items():
                columns[f"{dataset}, {flow}"] = scores(cases, estimator, args.priorities, f"{dataset}, {flow}")
    rows = [{"motion_priority": f"{priority:g}",
             **{name: f"{column[priority][0]:.2f} / {column[priority][1]:.4f}" for name, column in columns.items()}}
            for priority in args.priorities]
    print(markdown_table(rows, ["motion_priority", *columns]))


if __name__ == "__main__":
    main()
