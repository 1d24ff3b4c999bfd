"""Speed and memory of the learned flow against DIS, same run, as markdown tables.

    python benchmarks/flow_speed.py [--checkpoint DIR] [--repeats 2] [--between 7]

For 256x256 and 640x480 pairs (a Shapes World ``texture`` clip, seeded): seconds of each flow
estimator for both directions, and frames per second of ``flow_warp`` filling ``between``
in-betweens with that flow (flow included); ``x dis`` is the time relative to DIS measured in
the same run (the machine is shared and noisy: read the ratios). Then, in a fresh process per
estimator, the peak resident memory of the flow of one 1920x1080 pair against the same
process's peak just before it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch

from flow import DISFlow
from flow.learned import REFINEMENTS, LearnedFlow
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8
from inbetween.world import Clip
from interpolate import FlowWarpInterpolator
from timing import best_time

SIZES = [(256, 256), (480, 640)]

#: Run in a fresh interpreter: peak RSS (VmHWM, MiB) before and after the flow of one 1080p pair.
_MEMORY_PROBE = """
import sys, torch
from flow import DISFlow
from flow.learned import LearnedFlow
from inbetween.world import Clip
from inbetween.video import from_uint8

def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

clip = Clip.random(0, "texture")
left, right = (from_uint8(clip.render(t, 1080, 1920))[None] for t in (0.0, 1.0))
estimator = DISFlow() if sys.argv[1] == "dis" else LearnedFlow(sys.argv[2] or None)
with torch.inference_mode():
    before = peak_mib()
    estimator.bidirectional(left, right)
print(before, peak_mib())
"""


def estimators(checkpoint: str | None) -> dict:
    return {"dis": DISFlow(), **{f"learned, refine {refine}": LearnedFlow(checkpoint, refine=refine)
                                 for refine in REFINEMENTS}}


def measure(height: int, width: int, between: int, repeats: int, checkpoint: str | None) -> list[dict]:
    clip = Clip.random(0, "texture")
    left, right = (from_uint8(clip.render(t, height, width))[None] for t in (0.0, 1.0))
    times = [j / (between + 1) for j in range(1, between + 1)]
    warp = FlowWarpInterpolator()
    rows = []
    for name, estimator in estimators(checkpoint).items():
        flow_seconds = best_time(lambda: estimator.bidirectional(left, right), repeats)
        flow_lr, flow_rl = estimator.bidirectional(left, right)
        fill_seconds = flow_seconds + best_time(lambda: warp(left, right, flow_lr, flow_rl, times), repeats)
        rows.append({"size": f"{width}x{height}", "flow": name, "flow s (both ways)": flow_seconds,
                     "flow_warp frames/s": between / fill_seconds})
    for row in rows:
        row["x dis"] = row["flow s (both ways)"] / rows[0]["flow s (both ways)"]
    return rows


def peak_memory(name: str, checkpoint: str | None) -> dict:
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, name, checkpoint or ""], capture_output=True,
                            text=True, check=True)
    before, after = (float(value) for value in result.stdout.split()[-2:])
    return {"flow": name, "frame": "1920x1080 pair, both ways", "peak RSS before (MiB)": before,
            "peak RSS with flow (MiB)": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="flow model folder (default: the shipped checkpoints/flow)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--between", type=int, default=7)
    args = parser.parse_args()
    with torch.inference_mode():
        rows = [row for height, width in SIZES for row in measure(height, width, args.between, args.repeats,
                                                                   args.checkpoint)]
    print(f"torch threads: {torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"in-betweens per gap: {args.between}\n")
    print(markdown_table(rows, ["size", "flow", "flow s (both ways)", "x dis", "flow_warp frames/s"]))
    memory = [peak_memory(name, args.checkpoint) for name in ("dis", "learned")]
    print(markdown_table(memory, list(memory[0])))


if __name__ == "__main__":
    main()
