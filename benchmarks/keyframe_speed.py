"""Seconds per keyframe of the diffusion keyframe generator, by sampler and steps, as a markdown table.

    python benchmarks/keyframe_speed.py [--checkpoint DIR] [--keyframes 4] [--repeats 3]

Rows:

* ``fresh process: load + 4 keyframes (defaults)``: the default generator's cold cost: start
  Python, import, load the model folder and draw one shot of ``--keyframes`` keyframes at the
  default settings
  (the acceptance target is 10 s for 4 keyframes on a 2-core CPU);
* ``network, 1 step``: one guided denoiser evaluation for the whole shot (the unit cost);
* one row per sampler and step count: seconds per keyframe, and that time in units of
  the one-step cost measured in the same run (the machine is shared and noisy: read the
  ratios).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Callable

import torch

from inbetween.diffusion import autocast, classifier_free_guidance
from inbetween.sweep import markdown_table
from timing import best_time
from inbetween.world import random_captions
from keyframes.diffusion import DiffusionKeyframes

SAMPLER_STEPS = [("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddpm", 50), ("dpmpp_2m", 10), ("dpmpp_2m", 20)]


def cold_start(checkpoint: str | None, prompts: list[str]) -> float:
    """Wall seconds of a fresh Python process that imports the generator, loads the model
    folder and draws ``prompts`` once at the default settings."""
    script = ("import sys; from keyframes.diffusion import DiffusionKeyframes; "
              "DiffusionKeyframes(sys.argv[1] or None)(sys.argv[2:], seed=0)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, checkpoint or "", *prompts], check=True)
    return time.perf_counter() - started


def one_step(generator: DiffusionKeyframes, prompts: list[str]) -> Callable[[], None]:
    """One guided denoiser call on the whole shot, as work to time."""
    model = generator.model
    denoise = classifier_free_guidance(model.denoiser(), model.conditioning(prompts),
                                       model.conditioning([""] * len(prompts)), generator.guidance)
    noise = generator.noise(len(prompts), seed=0)
    t = torch.full((len(prompts),), model.schedule.steps // 2)

    def work() -> None:
        with torch.no_grad(), autocast(noise.device, generator.precision):
            denoise(noise, t)

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--keyframes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompts = random_captions(args.keyframes, seed=0)
    cold = cold_start(args.checkpoint, prompts)
    rows = [{"setting": f"fresh process: load + {args.keyframes} keyframes (defaults)", "seconds": cold}]
    generator = DiffusionKeyframes(args.checkpoint)
    unit = best_time(one_step(generator, prompts), args.repeats)
    rows.append({"setting": "network, 1 step", "seconds": unit})
    for sampler, steps in SAMPLER_STEPS:
        generator.sampler, generator.steps = sampler, steps
        seconds = best_time(lambda: generator(prompts, seed=0), args.repeats)
        rows.append({"setting": f"{sampler}, {steps} steps", "seconds": seconds})
    for row in rows:
        row["s/keyframe"] = row["seconds"] / args.keyframes
        row["x 1 step"] = row["seconds"] / unit
    print(f"{args.keyframes} keyframes per shot, guidance {generator.guidance}, precision {generator.precision} "
          f"(auto on CPU capability {torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads\n")
    print(markdown_table(rows, ["setting", "seconds", "s/keyframe", "x 1 step"]))


if __name__ == "__main__":
    main()
