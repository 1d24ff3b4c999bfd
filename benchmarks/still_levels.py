"""The diffusion interpolator against its still-pixel tolerance, on validation data only, as a markdown table.

    python benchmarks/still_levels.py [--levels 1 2 4 8] [--checkpoint DIR] [--flow learned]
                                      [--clips-per-kind 4] [--video-frames 9]

Where both keyframes and flow warping's frame agree within ``still_levels`` 8-bit levels
(:func:`interpolate.diffusion.still_pixels`), ``interpolate=diffusion`` keeps flow warping's frame
instead of the model's. This prints mean PSNR (dB) / warping error (8-bit levels, along the exact
flow on world clips, DIS flow between the true frames on videos) of ``flow_warp`` and of
``diffusion`` with the gate off and at each ``--levels`` value (a hold, two identical keyframes, is
copied in every ``diffusion`` row), everything in one run, on

* held-back Shapes World clips (seeds from 500000, ``--clips-per-kind`` of every kind, keyframes 8
  frames apart, 7 in-betweens, 128 px), and
* the training videos (``DATA_ROOT/train/videos``) with every other frame dropped, their first
  ``--video-frames`` frames.

Never evaluation data: the table ``interpolate.still_levels`` was chosen by. Each case's flow and
the model's frames are computed once; each level only changes which pixels keep flow warping's frame.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from flow import DISFlow
from flow.training import VALIDATION_SEED
from inbetween import config
from inbetween.evaluation import Case, between_keys, psnr, video_cases, warping_error, with_reference_flow, world_cases
from inbetween.progress import progress_bar
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8, to_uint8
from interpolate import DiffusionInterpolator, FlowWarpInterpolator
from interpolate.diffusion import still_pixels
from motion_priority import ESTIMATORS


def scores(cases: list[Case], estimator, model: DiffusionInterpolator, levels: list[float],
           description: str) -> dict[str, tuple[float, float]]:
    """Mean ``(PSNR, warping error)`` over ``cases`` of ``flow_warp``, of ``model`` ungated (``off``) and
    gated at each of ``levels``, with ``estimator``'s flow."""
    reference, warper = DISFlow(), FlowWarpInterpolator()
    found = {name: [] for name in ["flow_warp", "off", *map(str, levels)]}
    for case in progress_bar(cases, desc=description, unit="case"):
        with_reference_flow(case, reference)
        left, right = from_uint8(case.keys[:1]), from_uint8(case.keys[1:])
        flows = estimator.bidirectional(left, right)
        blend = warper(left, right, *flows, case.times)
        frames = model(left, right, *flows, case.times)
        answers = {"flow_warp": blend, "off": frames}
        answers |= {str(level): torch.where(still_pixels(left, right, blend, level), blend, frames) for level in levels}
        for name, answer in answers.items():
            pixels = to_uint8(answer[0])
            found[name].append((psnr(pixels, case.truth), warping_error(between_keys(case.keys, pixels),
                                                                       case.reference_flows, case.reference_visible)))
    return {name: tuple(np.mean(values, axis=0)) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--checkpoint", default=None, help="an interpolator model folder (default: the shipped one)")
    parser.add_argument("--flow", default="learned", choices=list(ESTIMATORS))
    parser.add_argument("--clips-per-kind", type=int, default=4)
    parser.add_argument("--video-frames", type=int, default=9)
    args = parser.parse_args()
    datasets = {
        "world": list(world_cases([8], 9, args.clips_per_kind, 128, VALIDATION_SEED)),
        "training videos": list(video_cases([f"{config.data_root()}/train/videos"], args.video_frames)),
    }
    model = DiffusionInterpolator(args.checkpoint, still_levels=None)
    estimator = ESTIMATORS[args.flow]()
    with torch.inference_mode():
        columns = {f"{dataset}, {args.flow}": scores(cases, estimator, model, args.levels, dataset)
                   for dataset, cases in datasets.items()}
    names = {"flow_warp": "flow_warp", "off": "diffusion, off"} | {str(level): f"diffusion, {level:g}"
                                                                   for level in args.levels}
    rows = [{"method, still_levels": label,
             **{name: f"{column[key][0]:.2f} / {column[key][1]:.3f}" for name, column in columns.items()}}
            for key, label in names.items()]
    print(markdown_table(rows, ["method, still_levels", *columns]))


if __name__ == "__main__":
    main()
