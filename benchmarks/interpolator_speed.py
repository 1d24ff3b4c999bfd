"""Speed and memory of the diffusion interpolator against flow_warp, same run, as markdown tables.

    python benchmarks/interpolator_speed.py [--checkpoint DIR] [--flows dis learned] [--repeats 2] [--between 7]
                                            [--steps 1 4 10]

Frames per second fill ``between`` in-betweens of one keyframe gap (flow both ways included) at
64x64, 256x256 and 640x480, for ``flow_warp`` and for ``diffusion`` at each number of denoising
steps, with each flow estimator of ``flows``; ``x flow_warp+dis`` is the time relative to
``flow_warp`` with DIS measured in the same run (the machine is shared and noisy: read the
ratios). Then, in a fresh process per flow, the peak resident memory of interpolating one
1920x1080 pair (t = 0.5, tiled) against the same process's peak just before it (after the flow).
Inputs are Shapes World ``texture`` clips (seeded). ``checkpoint``: the shipped
``checkpoints/interpolator`` unless given.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from flow import DISFlow
from flow.learned import LearnedFlow
from inbetween.diffusion import resolve_precision
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8
from inbetween.world import Clip
from interpolate import DiffusionInterpolator, FlowWarpInterpolator
from timing import best_time

SIZES = [(64, 64), (256, 256), (480, 640)]
FLOWS = {"dis": DISFlow, "learned": LearnedFlow}


def with_baseline(flows: list[str]) -> list[str]:
    """``flows`` with DIS first (``flow_warp`` with DIS is every ratio's baseline), each once."""
    return ["dis", *(name for name in dict.fromkeys(flows) if name != "dis")]


#: Run in a fresh interpreter (arguments: checkpoint, flow name, this folder): peak RSS (VmHWM, MiB)
#: before and after one tiled 1080p pair.
_MEMORY_PROBE = """
import sys, torch
sys.path.insert(0, sys.argv[3])
from interpolator_speed import FLOWS
from inbetween.world import Clip
from inbetween.video import from_uint8
from interpolate import DiffusionInterpolator

def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

checkpoint, flow = sys.argv[1] or None, FLOWS[sys.argv[2]]()
clip = Clip.random(0, "texture")
left, right = (from_uint8(clip.render(t, 1080, 1920))[None] for t in (0.0, 1.0))
interpolator = DiffusionInterpolator(checkpoint, steps=1)
with torch.inference_mode():
    flow_lr, flow_rl = flow.bidirectional(left, right)
    before = peak_mib()
    interpolator(left, right, flow_lr, flow_rl, [0.5])
print(before, peak_mib())
"""


def measure(height: int, width: int, between: int, repeats: int, steps: list[int], checkpoint: str | None,
            flows: list[str]) -> list[dict]:
    """One row per method and flow at this size; the first is ``flow_warp`` with DIS, the baseline."""
    clip = Clip.random(0, "texture")
    left, right = (from_uint8(clip.render(t, height, width))[None] for t in (0.0, 1.0))
    times = [j / (between + 1) for j in range(1, between + 1)]
    methods = {"flow_warp": FlowWarpInterpolator()}
    methods |= {f"diffusion, {n} step{'s' * (n > 1)}": DiffusionInterpolator(checkpoint, steps=n) for n in steps}
    rows = []
    for flow_name in with_baseline(flows):
        flow = FLOWS[flow_name]()
        flow_seconds = best_time(lambda: flow.bidirectional(left, right), repeats)
        flow_lr, flow_rl = flow.bidirectional(left, right)
        for name, method in methods.items():
            seconds = flow_seconds + best_time(lambda: method(left, right, flow_lr, flow_rl, times), repeats)
            rows.append({"size": f"{width}x{height}", "method": f"{name}, {flow_name}", "frames/s": between / seconds,
                         "seconds": seconds})
    for row in rows:
        row["x flow_warp+dis"] = row["seconds"] / rows[0]["seconds"]
    return rows


def peak_memory(checkpoint: str | None, flow: str) -> dict:
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, checkpoint or "", flow, str(Path(__file__).parent)],
                            capture_output=True, text=True, check=True)
    before, after = (float(value) for value in result.stdout.split()[-2:])
    return {"frame": f"1920x1080, 1 in-between, tiled, {flow} flow", "peak RSS before (MiB)": before,
            "peak RSS with interpolation (MiB)": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--between", type=int, default=7)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument("--checkpoint", help="interpolator model folder (default: the shipped checkpoints/interpolator)")
    parser.add_argument("--flows", nargs="+", choices=list(FLOWS), default=list(FLOWS),
                        help="flow estimators (DIS always runs: it is the baseline)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with torch.inference_mode():
        rows = [row for height, width in SIZES
                for row in measure(height, width, args.between, args.repeats, args.steps, args.checkpoint, args.flows)]
    print(f"torch threads: {torch.get_num_threads()}, in-betweens per gap: {args.between}, precision "
          f"{resolve_precision('auto', 'cpu')} (auto on CPU capability {torch.backends.cpu.get_cpu_capability()})\n")
    print(markdown_table(rows, ["size", "method", "frames/s", "seconds", "x flow_warp+dis"]))
    memory = [peak_memory(args.checkpoint, flow) for flow in with_baseline(args.flows)]
    print(markdown_table(memory, list(memory[0])))


if __name__ == "__main__":
    main()
