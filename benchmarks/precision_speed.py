"""bf16 autocast against fp32 on this machine, for every network the project runs, as a markdown table.

    python benchmarks/precision_speed.py [--repeats 2] [--stages clip keyframes interpolator]

Prints the CPU's capability, whether it has AMX tiles (where bf16 runs faster than fp32)
and what ``precision: auto`` (every model config's and trainer's default) picks here; then,
for each precision, the seconds of:

* ``keyframes``: the shipped keyframe model drawing the demo storyboard's first shot (3
  keyframes, the default sampler and steps);
* ``interpolator``: the diffusion interpolator filling 7 in-betweens of one 256x256 gap with
  1 denoising step (an untrained model of the default architecture: speed does not depend on
  the weights);
* ``train STAGE``: one training step (loss and backward) of each stage at its configured batch.

``bf16 / fp32`` is the ratio measured in the same run (the machine is shared and noisy: read
the ratios). On an AVX2-only CPU bf16 is emulated and several times slower; with AVX512-BF16
but no AMX it was 1.5x to 1.8x slower for most work.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable

import hydra
import torch
from torch.utils.data import default_collate

import inbetween
from flow import DISFlow
from inbetween import config
from inbetween.diffusion.precision import autocast, cpu_has_amx, resolve_precision
from inbetween.storyboard import load_storyboard
from inbetween.sweep import markdown_table
from inbetween.video import from_uint8
from inbetween.world import Clip
from interpolate import DiffusionInterpolator
from keyframes.diffusion import DiffusionKeyframes
from timing import best_time

PRECISIONS = ("fp32", "bf16")
DEMO_STORYBOARD = Path(inbetween.__file__).parent / "assets" / "demo_storyboard.yaml"


def stage_task(stage: str, folder: str):
    """The training task of ``conf/stage/STAGE.yaml`` and its trainer's batch size, its output (e.g.
    the items' cache) under ``folder``."""
    with hydra.initialize_config_module("conf", version_base="1.3"):
        cfg = hydra.compose("train", overrides=[f"stage={stage}", f"output_dir={folder}"])
    return hydra.utils.instantiate(cfg.task), cfg.trainer.batch_size


def training_step(stage: str, folder: str) -> Callable[[str], Callable[[], None]]:
    """For a precision, one training step (loss and backward) of ``stage`` on its first batch, as work to time."""
    task, batch_size = stage_task(stage, folder)
    model = task.build_model()
    dataset = task.dataset()
    batch = default_collate([dataset[index] for index in range(batch_size)])

    def for_precision(precision: str) -> Callable[[], None]:
        def work() -> None:
            generator = torch.Generator().manual_seed(0)
            with autocast(torch.device("cpu"), precision):
                loss = task.loss(model, batch, generator)
            loss.backward()

        return work

    return for_precision


def keyframes() -> Callable[[str], Callable[[], None]]:
    prompts = list(load_storyboard(DEMO_STORYBOARD).shots[0].prompts)

    def for_precision(precision: str) -> Callable[[], None]:
        generator = DiffusionKeyframes(precision=precision)
        return lambda: generator(prompts, seed=0)

    return for_precision


def interpolator(folder: str) -> Callable[[str], Callable[[], None]]:
    task, _ = stage_task("interpolator", folder)
    torch.manual_seed(0)
    task.export(task.build_model().eval(), folder)
    clip = Clip.random(0, "texture")
    left, right = (from_uint8(clip.render(t, 256, 256))[None] for t in (0.0, 1.0))
    flow_lr, flow_rl = DISFlow().bidirectional(left, right)
    times = [j / 8 for j in range(1, 8)]

    def for_precision(precision: str) -> Callable[[], None]:
        method = DiffusionInterpolator(folder, steps=1, precision=precision)
        return lambda: method(left, right, flow_lr, flow_rl, times)

    return for_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stages", nargs="*", default=["clip", "keyframes", "interpolator"],
                        help="stages whose training step is timed")
    args = parser.parse_args()
    config.register()
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, AMX: {cpu_has_amx()}, "
          f"precision auto -> {resolve_precision('auto', 'cpu')}, {torch.get_num_threads()} threads\n")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        works = {"keyframes: 3 keyframes, defaults": keyframes(),
                 "interpolator: 7 in-betweens at 256x256, 1 step": interpolator(folder)}
        works |= {f"train {stage}: one step": training_step(stage, folder) for stage in args.stages}
        for name, work in works.items():
            seconds = {}
            for precision in PRECISIONS:
                with torch.inference_mode(not name.startswith("train")):
                    seconds[precision] = best_time(work(precision), args.repeats)
            rows.append({"work": name, "fp32 s": seconds["fp32"], "bf16 s": seconds["bf16"],
                         "bf16 / fp32": seconds["bf16"] / seconds["fp32"]})
            print(f"{name}: fp32 {seconds['fp32']:.3g} s, bf16 {seconds['bf16']:.3g} s", flush=True)
    print()
    print(markdown_table(rows, ["work", "fp32 s", "bf16 s", "bf16 / fp32"]))


if __name__ == "__main__":
    main()
