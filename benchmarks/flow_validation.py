"""End-point error of flow estimators on the learned flow's validation pairs (never evaluation data).

    python benchmarks/flow_validation.py [--checkpoint DIR] [--layered 20] [--world 20] [--size 128]
                                         [--max-tokens 576 256] [--refine none dis fuse]
                                         [--fuse-thresholds 2] [--keep-occluded] [--warp-clips-per-kind 4]
                                         [--interpolators flow_warp flow_warp_blend diffusion diffusion_blend]
                                         [--video-frames 13]

Held-back pairs of ``inbetween train stage=flow``: layered clips of every 10th training photograph
and Shapes World clips, seeds from 500000, at ``--size`` pixels. DIS and the learned flow (once per
``--max-tokens`` and ``--refine``, and for ``fuse`` once more per ``--fuse-thresholds`` and with
``--keep-occluded`` once more with ``fuse_keep_occluded``) in the same run; the table this chooses
``flow.max_tokens``, ``flow.refine``, ``flow.fuse_threshold`` and ``flow.fuse_keep_occluded`` by. With
``--warp-clips-per-kind N`` it also scores each of ``--interpolators`` (names of ``conf/interpolate``,
with their settings there; default ``flow_warp``; the ``_blend`` ones mix each frame with
``flow_warp``'s along DIS's flow) with each estimator (mean PSNR, SSIM and warping error of the 7
in-betweens, as ``inbetween evaluate`` scores them) on N validation world clips per kind, keyframes 8
frames apart, at 128 px: lower error does not always warp better. With ``--video-frames N`` it scores
them likewise on real footage: the training videos (``DATA_ROOT/train/videos``) with every other frame
dropped, their first N frames (the model cards' figures on the ten training videos are
``--video-frames 13``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch

import conf
from flow import DISFlow
from flow.learned import MAX_TOKENS, REFINEMENTS, LearnedFlow
from flow.training import VALIDATION_SEED, FlowTask, validation_epe
from inbetween import config
from inbetween.evaluation import Case, evaluate_cases, load_methods, video_cases, world_cases
from inbetween.sweep import markdown_table

#: What ``--interpolators`` may name: the configs of ``conf/interpolate``.
INTERPOLATORS = sorted(path.stem for path in (Path(conf.__file__).parent / "interpolate").glob("*.yaml"))


#: What :func:`render_scores` reports per interpolator: ``inbetween evaluate``'s row key -> column label.
RENDER_SCORES = {"psnr": "dB", "ssim": "SSIM", "warp_error": "warp error"}


def render_scores(estimator, cases: list[Case], methods: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Mean PSNR (dB), SSIM and warping error of each interpolator in ``methods`` (name -> interpolator)
    with ``estimator``'s flow over ``cases`` (as ``inbetween evaluate`` scores them), keyed
    ``"PREFIXNAME dB"``, ``"PREFIXNAME SSIM"`` and ``"PREFIXNAME warp error"``; none without cases."""
    if not cases:
        return {}
    rows = evaluate_cases(iter(cases), methods, estimator, "render")
    return {f"{prefix}{name} {label}": float(np.mean([row[key] for row in rows if row["method"] == name]))
            for name in methods for key, label in RENDER_SCORES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="flow model folder (default: the shipped checkpoints/flow)")
    parser.add_argument("--layered", type=int, default=20)
    parser.add_argument("--world", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[MAX_TOKENS])
    parser.add_argument("--refine", nargs="+", default=["none", "dis", "fuse"], choices=REFINEMENTS)
    parser.add_argument("--fuse-thresholds", type=float, nargs="*", default=[],
                        help="also run refine fuse with each of these fuse_threshold values (pixels)")
    parser.add_argument("--keep-occluded", action="store_true",
                        help="also run refine fuse with fuse_keep_occluded")
    parser.add_argument("--warp-clips-per-kind", type=int, default=0,
                        help="score --interpolators on this many validation world clips per kind (0: skip)")
    parser.add_argument("--interpolators", nargs="+", default=["flow_warp"], choices=INTERPOLATORS,
                        help="what --warp-clips-per-kind and --video-frames score")
    parser.add_argument("--video-frames", type=int, default=0,
                        help="score --interpolators on the training videos' first N frames, every other one "
                             "dropped (0: skip)")
    args = parser.parse_args()
    task = FlowTask(f"{config.data_root()}/train/photos")
    pairs = task.validation(args.layered, args.world, args.size)
    settings = {f"refine {refine}": {"refine": refine} for refine in args.refine}
    settings |= {f"refine fuse, fuse_threshold {threshold:g}": {"refine": "fuse", "fuse_threshold": threshold}
                 for threshold in args.fuse_thresholds}
    if args.keep_occluded:
        settings["refine fuse, fuse_keep_occluded"] = {"refine": "fuse", "fuse_keep_occluded": True}
    estimators = {"dis": DISFlow()}
    for tokens in args.max_tokens:
        for name, setting in settings.items():
            estimators[f"learned, max_tokens {tokens}, {name}"] = LearnedFlow(args.checkpoint, tokens, **setting)
    warp_cases = list(world_cases([8], 9, args.warp_clips_per_kind, 128, VALIDATION_SEED))
    real_cases = list(video_cases([f"{config.data_root()}/train/videos"], args.video_frames)) if args.video_frames else []
    with hydra.initialize_config_module("conf", version_base="1.3"):
        interpolators = load_methods(args.interpolators)
    with torch.inference_mode():
        rows = [{"method": name, **validation_epe(estimator, pairs), **render_scores(estimator, warp_cases, interpolators),
                 **render_scores(estimator, real_cases, interpolators, "videos, ")}
                for name, estimator in estimators.items()]
    print(f"validation pairs at {args.size} px: {args.layered} layered, {args.world} world; mean end-point error (px)"
          + (f"; {', '.join(args.interpolators)} on {len(warp_cases)} validation world clips at 128 px, keyframes 8"
             " frames apart" if warp_cases else "")
          + (f"; on {len(real_cases)} triplets of the training videos (\"videos\", their first {args.video_frames}"
             " frames, every other one dropped)" if real_cases else "") + "\n")
    print(markdown_table(rows, ["method", *[key for key in rows[0] if key != "method"]]))


if __name__ == "__main__":
    main()
