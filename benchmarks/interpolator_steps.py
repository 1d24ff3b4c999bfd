"""Quality of the diffusion interpolator against its number of denoising steps, with flow_warp
in the same run, as a markdown table.

    python benchmarks/interpolator_steps.py --checkpoint DIR [--steps 1 2 4 10] [--sampler ddim]
                                            [--data-root ../shared/data/real]

Datasets are ``inbetween evaluate``'s: Shapes World clips with keyframes 8 frames apart
(8 kinds x 4 clips, 128 px, evaluation seeds) and the real triplets (evaluation only).
"""

from __future__ import annotations

import argparse

import torch

from flow import DISFlow
from inbetween.config import data_root
from inbetween.evaluation import evaluate_cases, summarise, triplet_cases, world_cases
from inbetween.sweep import markdown_table
from interpolate import DiffusionInterpolator, FlowWarpInterpolator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 10])
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--checkpoint", required=True, help="interpolator model folder (a stage=interpolator run's model/)")
    parser.add_argument("--data-root", default=data_root(), help="default: $INBETWEEN_DATA, else ../shared/data/real")
    args = parser.parse_args()
    methods = {"flow_warp": FlowWarpInterpolator()}
    methods |= {f"diffusion {args.sampler} {n}": DiffusionInterpolator(args.checkpoint, args.sampler, steps=n)
                for n in args.steps}
    datasets = {
        "world gap 8": lambda: world_cases([8], clip_frames=9, clips_per_kind=4, size=128, seed=1_000_000),
        "triplets": lambda: triplet_cases(f"{args.data_root}/adacof_testsets"),
    }
    rows = []
    with torch.inference_mode():
        for name, cases in datasets.items():
            table = summarise(evaluate_cases(cases(), methods, DISFlow(), name))
            rows += [{"dataset": name, **row} for row in table if row["subset"] == "all"]
    print(markdown_table(rows, ["dataset", "method", "cases", "psnr", "ssim", "warp_error", "s_per_frame"]))


if __name__ == "__main__":
    main()
