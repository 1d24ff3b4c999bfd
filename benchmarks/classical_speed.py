"""Speed of the classical stages, every method in one run, as a markdown table.

    python benchmarks/classical_speed.py [--repeats 3] [--between 7]

For each frame size it times flow estimation (both directions) and each interpolator
filling ``between`` in-betweens of one keyframe gap, and reports in-between frames per
second (flow included for methods that need it) and the time relative to the cross-fade
measured in the same run. The machine is shared and noisy: read the ratios, not the
absolute seconds. Inputs are Shapes World ``texture`` clips (seeded).
"""

from __future__ import annotations

import argparse

import torch

from flow import DISFlow, FarnebackFlow
from inbetween.sweep import markdown_table
from timing import best_time
from inbetween.video import from_uint8
from inbetween.world import Clip
from interpolate import FlowWarpInterpolator, LinearInterpolator, MinterpolateInterpolator

SIZES = [(64, 64), (256, 256), (480, 640)]


def measure(height: int, width: int, between: int, repeats: int) -> list[dict]:
    clip = Clip.random(0, "texture")
    left, right = (from_uint8(clip.render(t, height, width))[None] for t in (0.0, 1.0))
    times = [j / (between + 1) for j in range(1, between + 1)]
    flows = {"dis": DISFlow(), "farneback": FarnebackFlow()}
    flow_seconds = {name: best_time(lambda f=f: f.bidirectional(left, right), repeats) for name, f in flows.items()}
    methods = {
        "linear": (LinearInterpolator(), None),
        "flow_warp (dis)": (FlowWarpInterpolator(), "dis"),
        "flow_warp (farneback)": (FlowWarpInterpolator(), "farneback"),
        "minterpolate": (MinterpolateInterpolator(), None),
    }
    flow_pairs = {name: f.bidirectional(left, right) for name, f in flows.items()}
    rows = []
    for name, (method, flow_name) in methods.items():
        flow_lr, flow_rl = flow_pairs[flow_name] if flow_name else (None, None)
        seconds = best_time(lambda: method(left, right, flow_lr, flow_rl, times), repeats)
        seconds += flow_seconds[flow_name] if flow_name else 0.0
        rows.append({"size": f"{width}x{height}", "method": name, "frames/s": between / seconds, "seconds": seconds})
    baseline = rows[0]["seconds"]
    for row in rows:
        row["x linear"] = row["seconds"] / baseline
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--between", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    with torch.inference_mode():
        rows = [row for height, width in SIZES for row in measure(height, width, args.between, args.repeats)]
    print(f"torch threads: {torch.get_num_threads()}, in-betweens per gap: {args.between}\n")
    print(markdown_table(rows, ["size", "method", "frames/s", "seconds", "x linear"]))


if __name__ == "__main__":
    main()
