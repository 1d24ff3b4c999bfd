"""End-point error of flow estimators on the learned flow's validation pairs (never evaluation data).

    python benchmarks/flow_validation.py [--checkpoint DIR] [--layered 20] [--world 20] [--size 128]
                                         [--max-tokens 256 1024] [--refine none dis fuse]

Held-back pairs of ``inbetween train stage=flow``: layered clips of every 10th training photograph
and Shapes World clips, seeds from 500000, at ``--size`` pixels. DIS and the learned flow (once per
``--max-tokens`` and ``--refine``) in the same run; the table this chooses ``flow.max_tokens`` and
``flow.refine`` by.
"""

from __future__ import annotations

import argparse

import torch

from flow import DISFlow
from flow.learned import REFINEMENTS, LearnedFlow
from flow.training import FlowTask, validation_epe
from inbetween import config
from inbetween.sweep import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="flow model folder (default: the shipped checkpoints/flow)")
    parser.add_argument("--layered", type=int, default=20)
    parser.add_argument("--world", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[256])
    parser.add_argument("--refine", nargs="+", default=["none", "fuse"], choices=REFINEMENTS)
    args = parser.parse_args()
    task = FlowTask(f"{config.data_root()}/train/photos")
    pairs = task.validation(args.layered, args.world, args.size)
    estimators = {"dis": DISFlow(), **{f"learned, max_tokens {tokens}, refine {refine}":
                                       LearnedFlow(args.checkpoint, tokens, refine)
                                       for tokens in args.max_tokens for refine in args.refine}}
    with torch.inference_mode():
        rows = [{"method": name, **validation_epe(estimator, pairs)} for name, estimator in estimators.items()]
    print(f"validation pairs at {args.size} px: {args.layered} layered, {args.world} world; mean end-point error (px)\n")
    print(markdown_table(rows, ["method", *[key for key in ("layered", "world") if key in rows[0]]]))


if __name__ == "__main__":
    main()
