"""The shared trainer, through the real ``inbetween train`` command on a toy stage.

The toy stage (``tests/toy_stage``: a small MLP regressing a fixed random function) is put
on Hydra's search path and on ``PYTHONPATH``; its steps take milliseconds, so these are
real runs: a real SIGKILL, a real two-process torchrun over gloo.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from inbetween.training import StepBatches, Topology, epoch_order, warmup_factor
from inbetween.video import read_image
from tests.conftest import REPO, inbetween_executable, load_run, started_cli

TOY = REPO / "tests" / "toy_stage"
STEPS = 60  # conf: checkpoint every 10, log every 10, sample every 20
SLOW_STEP = "task.delay_s=0.03"  # room to kill a run part-way; changes no number
#: Slower still for the run that a test stops: 5 s from its first checkpoint to its end, room for a
#: loaded machine to send the signal in time (1.5 s with SLOW_STEP ran out once in CI).
STOPPABLE_STEP = "task.delay_s=0.1"


def toy_env(**extra: str) -> dict[str, str]:
    """The environment with the toy task importable."""
    paths = [str(TOY), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def train_args(output: Path, *overrides: str) -> list[str]:
    """``train`` arguments for the toy stage writing into ``output`` (``overrides`` first: Hydra
    wants ``--multirun`` before the overrides)."""
    return ["train", *overrides, "stage=toy", f"hydra.searchpath=[file://{TOY / 'config'}]", f"output_dir={output}"]


def train(output: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``inbetween train`` on the toy stage to the end."""
    return subprocess.run([*inbetween_executable(), *train_args(output, *overrides)], cwd=output.parent,
                          env=toy_env(**env), capture_output=True, text=True, timeout=300)


#: ``torchrun`` with two gloo processes on this machine; the script or ``-m module`` follows.
TWO_PROCESS_TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]


def torchrun(output: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Two gloo processes: ``torchrun --nproc_per_node=2 --standalone -m inbetween train ...``."""
    command = [*TWO_PROCESS_TORCHRUN, "-m", "inbetween", *train_args(output, *overrides)]
    return subprocess.run(command, cwd=output.parent, env=toy_env(), capture_output=True, text=True, timeout=300)


def load_checkpoint(output: Path) -> dict:
    return torch.load(output / "checkpoint.pt", weights_only=True)


def losses(output: Path) -> list[tuple[int, float]]:
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [(entry["step"], entry["loss"]) for entry in map(json.loads, lines)]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a), [name for name in a if not torch.equal(a[name], b[name])]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """An uninterrupted toy run."""
    output = tmp_path_factory.mktemp("train") / "whole"
    result = train(output, SLOW_STEP)
    assert result.returncode == 0, result.stderr
    return output


def test_outputs(finished):
    steps_losses = losses(finished)
    assert [step for step, _ in steps_losses] == list(range(10, STEPS + 1, 10))
    loss = [value for _, value in steps_losses]
    assert loss[-1] < loss[0] / 10 and loss[1] < loss[0]
    assert read_image(finished / "loss.png").ndim == 3
    samples = sorted((finished / "samples").iterdir())
    assert [path.name for path in samples] == ["step_000020.png", "step_000040.png", "step_000060.png"]
    assert read_image(samples[-1]).shape == (32, 32, 3)
    checkpoint = load_checkpoint(finished)
    assert set(checkpoint) == {"step", "model", "ema", "optimizer", "scheduler", "rng", "recipe", "elapsed_s"}
    assert checkpoint["step"] == STEPS and checkpoint["recipe"]["lr"] == 0.01
    run = load_run(finished)
    assert run["metrics"]["steps"] == STEPS and run["metrics"]["world_size"] == 1
    assert run["metrics"]["final_loss"] == loss[-1] and run["choices"]["stage"] == "toy"
    assert run["precision"] == "fp32"  # the toy stage's setting
    written = [path for path in finished.rglob("*") if path.is_file() and path.name != "run.json"
               and ".hydra" not in path.parts and path.suffix != ".log"]
    assert (finished / "model" / "toy.safetensors") in written
    assert all(path.stat().st_mtime_ns <= (finished / "run.json").stat().st_mtime_ns for path in written)


def stop_after_first_checkpoint(output: Path, stop: signal.Signals) -> subprocess.CompletedProcess:
    """Start a slow toy run, send it ``stop`` once its first checkpoint exists, wait for it to end."""
    with started_cli(*train_args(output, STOPPABLE_STEP), cwd=output.parent, env=toy_env(), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True) as process:
        deadline = time.monotonic() + 120
        while not (output / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("stop, status", [(signal.SIGKILL, -9), (signal.SIGINT, 130)], ids=["killed", "ctrl-c"])
def test_stopped_and_resumed_equals_uninterrupted(finished, tmp_path, stop, status):
    output = tmp_path / "stopped"
    stopped = stop_after_first_checkpoint(output, stop)
    assert stopped.returncode == status, "the run ended before it could be stopped\n" + stopped.stderr
    if stop == signal.SIGINT:  # one line, no traceback; the checkpoint stays for the rerun
        assert stopped.stderr.strip().splitlines()[-1] == (
            f"inbetween: interrupted; {output / 'checkpoint.pt'} keeps the last checkpoint: rerun the same command "
            "to resume from it.")
    killed_at = load_checkpoint(output)["step"]
    assert 0 < killed_at < STEPS and not (output / "run.json").exists() and not (output / "model").exists()

    result = train(output, SLOW_STEP)
    assert result.returncode == 0, result.stderr
    assert f"resumed toy at step {killed_at}" in result.stdout + result.stderr
    name = "model/toy.safetensors"
    assert (output / name).read_bytes() == (finished / name).read_bytes()
    resumed, whole = load_checkpoint(output), load_checkpoint(finished)
    assert_same_tensors(resumed["model"], whole["model"])
    assert_same_tensors(resumed["ema"], whole["ema"])
    assert losses(output) == losses(finished)
    assert load_run(output)["resumed_from_step"] == killed_at
    elapsed = [entry["elapsed"] for entry in map(json.loads, (output / "metrics.jsonl").read_text().splitlines())]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0  # training time summed over both sittings


def test_progress_is_logged_with_loss_and_time_left_when_not_a_terminal(tmp_path):
    result = train(tmp_path / "out", "trainer.steps=20")
    assert result.returncode == 0, result.stderr
    assert re.search(r"step 10/20 \(50%\), loss [0-9.e-]+, [0-9.]+ steps/s, elapsed 0:00:\d\d, ETA 0:00:\d\d",
                     result.stdout), result.stdout


def test_progress_bar_in_a_terminal(tmp_path):
    controller, terminal = pty.openpty()
    process = subprocess.Popen([*inbetween_executable(), *train_args(tmp_path / "out", "trainer.steps=20")],
                               cwd=tmp_path, env=toy_env(), stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert re.search(r"train toy: 100%.*20/20 \[\d\d:\d\d<00:00.*loss=", text), text
    assert "step 10/20" not in text  # the bar replaces the log lines


def test_finished_run_rerun_only_exports(finished, tmp_path):
    output = tmp_path / "again"
    shutil.copytree(finished, output)
    before = {name: (output / name).read_bytes() for name in ("checkpoint.pt", "metrics.jsonl")}
    changed = train(output, SLOW_STEP, "trainer.lr=0.02")
    assert changed.returncode == 2, changed.stderr
    assert "trained with other settings: lr=0.02 (checkpoint: 0.01)" in changed.stderr
    result = train(output, SLOW_STEP)
    assert result.returncode == 0, result.stderr
    assert f"resumed toy at step {STEPS}" in result.stdout + result.stderr
    assert all((output / name).read_bytes() == content for name, content in before.items())
    assert (output / "model/toy.safetensors").read_bytes() == (finished / "model/toy.safetensors").read_bytes()
    assert load_run(output)["resumed_from_step"] == STEPS


def test_torchrun_two_processes_agree_and_repeat(tmp_path):
    outputs = [tmp_path / "a", tmp_path / "b"]
    for output in outputs:
        result = torchrun(output)
        assert result.returncode == 0, result.stdout + result.stderr
    runs = [load_run(output) for output in outputs]
    digests = runs[0]["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert runs[0]["metrics"]["world_size"] == 2 and runs[1]["rank_weight_digests"] == digests
    assert (outputs[0] / "model/toy.safetensors").read_bytes() == (outputs[1] / "model/toy.safetensors").read_bytes()
    assert losses(outputs[0]) == losses(outputs[1]) and losses(outputs[0])[-1][1] < losses(outputs[0])[0][1]
    assert "output_subdir" not in (outputs[0] / ".hydra" / "overrides.yaml").read_text()  # rank 0 wrote .hydra/


GROUP_PROBE = """
import glob
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from inbetween.training import end_process_group, start_process_group, topology_from_env

topology = topology_from_env()
start_process_group(topology)
network = DistributedDataParallel(torch.nn.Linear(4, 4))
network(torch.randn(8, 4)).square().mean().backward()
dist.all_gather_object([None] * topology.world_size, topology.rank)
del network
end_process_group(topology)
threads = [open(name).read().strip() for name in glob.glob("/proc/self/task/*/comm")]
with open(f"threads_left_{topology.rank}.txt", "w") as report:  # one file each: ranks share stdout
    report.write(" ".join(sorted(name for name in threads if "gloo" in name)))
"""


def test_ending_the_process_group_ends_its_threads(tmp_path):
    """Gloo's threads must be gone before Python shuts down: one still releasing a collective's
    tensors then aborts the process ("terminate called without an active exception"), which
    failed about one torchrun run in 25 on a loaded machine. DDP's reference cycles and
    ``torch.distributed.nn``'s default arguments used to keep the group alive."""
    probe = tmp_path / "probe.py"
    probe.write_text(GROUP_PROBE)
    result = subprocess.run([*TWO_PROCESS_TORCHRUN, str(probe)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(tmp_path / f"threads_left_{rank}.txt").read_text() for rank in range(2)] == ["", ""]


def test_multirun_sweep_summarises(tmp_path):
    sweep = tmp_path / "sweep"
    result = train(sweep, "--multirun", "trainer.lr=0.01,0.02", "trainer.steps=10")
    assert result.returncode == 0, result.stderr
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["trainer.lr"] for row in rows} == {"0.01", "0.02"}
    assert all(float(row["metrics.final_loss"]) > 0 and row["metrics.steps"] == "10" for row in rows)


@pytest.mark.parametrize("overrides, env, words", [
    (["trainer.batch_size=15"], {"WORLD_SIZE": "2", "RANK": "0"}, "choose a positive multiple of 2"),
    (["trainer.precision=fp16"], {}, "trainer.precision must be one of auto, bf16, fp32, got 'fp16'"),
    (["trainer.steps=0"], {}, "trainer.steps must be 1 or more, got 0"),
    (["trainer.stepz=5"], {}, "stepz"),
], ids=["batch not divisible", "unknown precision", "no steps", "unknown key"])
def test_bad_settings_exit_2(tmp_path, overrides, env, words):
    # WORLD_SIZE=2 without torchrun: the settings are checked before any process group is made
    output = tmp_path / "out"
    result = train(output, *overrides, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (output / "checkpoint.pt").exists() and not (output / "run.json").exists()


def test_step_batches_split_the_epoch_stream():
    size, batch, seed = 10, 4, 7  # 2 steps per epoch, 2 items of each epoch dropped
    whole = list(StepBatches(size, batch, seed, Topology(0, 1, torch.device("cpu")), 0, 6))
    halves = [list(StepBatches(size, batch, seed, Topology(rank, 2, torch.device("cpu")), 0, 6)) for rank in (0, 1)]
    assert [a + b for a, b in zip(*halves)] == whole
    for epoch in range(3):
        assert whole[2 * epoch] + whole[2 * epoch + 1] == epoch_order(size, seed, epoch)[:8].tolist()
    assert list(StepBatches(size, batch, seed, Topology(0, 1, torch.device("cpu")), 3, 6)) == whole[3:]
    assert [warmup_factor(step, 4) for step in (0, 3, 9)] == [0.25, 1.0, 1.0] and warmup_factor(0, 0) == 1.0

