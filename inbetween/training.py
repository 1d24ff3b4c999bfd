"""One trainer for every model stage: ``inbetween train stage=NAME``.

A stage gives the trainer a :class:`TrainingTask` (model, data, loss, sample picture,
export); :func:`train` does the rest: AdamW with linear warmup, an EMA of the weights,
bf16 autocast or fp32 (``auto``: bf16 where the hardware has it), gradient clipping,
data-parallel processes under ``torchrun``, checkpoints it resumes from, logs, sample grids,
and the exported EMA model.

Determinism, so that a run killed and restarted ends bitwise equal to one that never
stopped (on the same machine and process count): nothing depends on where a run started.

- Data order: epoch ``e`` is a permutation of the dataset seeded by ``(seed, e)``; global
  step ``s`` takes the next ``batch_size`` indices of that stream (the ragged end of an
  epoch is dropped) and rank ``r`` of ``W`` takes the ``r``-th contiguous ``batch_size / W``
  of them. Dataset items must be a pure function of their index.
- Randomness of the loss (noise, timesteps, augmentation): the generator the task gets
  for step ``s`` on rank ``r`` is seeded by ``(seed, s, r)``.
- Learning rate: ``lr * min(1, (s + 1) / warmup_steps)`` at step ``s``, then constant, so
  raising ``trainer.steps`` and rerunning continues a finished run on the same schedule.

So a checkpoint needs only the step, model, EMA, optimizer and scheduler states (torch's
global RNG state is stored as well, for tasks that use it).

Files in ``output_dir`` (written by rank 0, each atomically):

- ``checkpoint.pt``: ``{step, model, ema, optimizer, scheduler, rng, recipe, elapsed_s}`` every
  ``checkpoint_every`` steps and at the end; tensors and plain values only
  (``torch.load(weights_only=True)``). Rerunning the same command in the same
  ``output_dir`` resumes from it; ``recipe`` (the seed and every trainer setting but
  :data:`FREE_ON_RESUME`) must match, or the run would not be the one it continues.
- ``metrics.jsonl``: one JSON line every ``log_every`` steps and at the end: ``step`` (steps
  done), ``loss`` (mean over the steps since the last line and over ranks), ``lr``,
  ``samples_per_s``, ``elapsed`` (seconds of training, summed over every sitting of a resumed
  run). Lines are appended with one write each; a resumed run first drops the lines past its
  checkpoint.
- ``loss.png``: loss against step, log scale; redrawn at every checkpoint.
- ``samples/step_NNNNNN.png``: ``task.sample_grid`` of the EMA model every ``sample_every``
  steps and at the end (``NNNNNN`` = steps done).
- ``model/``: ``task.export`` of the EMA model, at the end.
- ``run.json``: configuration, resolved precision, metrics, per-rank weight digests, versions;
  written last (and removed when a run starts), so it exists only beside a finished run's outputs.

Progress: in a terminal, a bar with the loss and the time left; otherwise (a log file, a
pipe) one log line every ``log_every`` steps with the same figures.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from matplotlib.figure import Figure
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from inbetween.config import TrainerConfig
from inbetween.diffusion.ema import EMA
from inbetween.diffusion.precision import autocast, check_precision, resolve_precision
from inbetween.errors import InbetweenError
from inbetween.pipeline import versions
from inbetween.progress import progress_bar
from inbetween.sweep import RUN_RECORD, write_run_record
from inbetween.video import atomic_path, write_png

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
LOSS_PLOT = "loss.png"
SAMPLES = "samples"
MODEL = "model"
#: Trainer settings a resumed run may change; the others are the checkpoint's recipe. ``precision`` is
#: free so that a run can go on on another machine (``auto`` resolves per machine); on the same
#: machine with the same settings a resumed run still ends bitwise equal to an unbroken one.
FREE_ON_RESUME = ("steps", "checkpoint_every", "sample_every", "log_every", "num_workers", "precision")

# Second word of the seeds of the random streams (see :func:`stream_seed`).
_DATA_ORDER, _LOSS, _LOADER = 0, 1, 2


class TrainingTask:
    """What a stage gives the trainer; built by Hydra from ``conf/stage/NAME.yaml``'s ``task:``.

    Conventions: tensors live on the training device the trainer moves batches to; the
    model the trainer hands to :meth:`loss` may be wrapped in ``DistributedDataParallel``
    (call it, do not reach into it); :meth:`sample_grid` and :meth:`export` get the EMA
    model (eval mode, no gradients), on rank 0 only.
    """

    name: str = "task"

    def build_model(self) -> nn.Module:
        """A fresh network; the same under the same ``torch.manual_seed``."""
        raise NotImplementedError

    def dataset(self) -> Dataset:
        """A map-style dataset whose items ``default_collate`` stacks; item ``i`` depends on ``i`` only."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> torch.Tensor:
        """The scalar training loss of ``batch`` (this rank's share, collated, on the device).

        Every random draw must come from ``generator`` (on the training device), which
        makes the step reproducible.
        """
        raise NotImplementedError

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        """A picture of what ``model`` makes: uint8 RGB ``(H, W, 3)``; deterministic."""
        raise NotImplementedError

    def export(self, model: nn.Module, folder: Path) -> None:
        """Write ``model``'s shippable weights (safetensors, no pickle) into the existing ``folder``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Topology:
    """Where this process sits: ``rank`` of ``world_size`` processes, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def topology_from_env() -> Topology:
    """This process's place from torchrun's ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (one process
    without them); the device is ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return Topology(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), device)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InbetweenError(message)


def check_settings(settings: TrainerConfig, seed: int, world_size: int) -> None:
    """Raise :class:`InbetweenError` naming the first setting that cannot work."""
    _require(settings.steps > 0, f"trainer.steps must be 1 or more, got {settings.steps}.")
    _require(settings.batch_size > 0 and settings.batch_size % world_size == 0,
             f"trainer.batch_size={settings.batch_size} is the global batch, split evenly over the "
             f"{world_size} process(es); choose a positive multiple of {world_size}.")
    check_precision(settings.precision, "trainer.precision")
    _require(settings.lr > 0 and settings.weight_decay >= 0 and settings.grad_clip >= 0,
             f"trainer.lr must be positive and trainer.weight_decay and trainer.grad_clip 0 or more "
             f"(0: no clipping), got {settings.lr}, {settings.weight_decay}, {settings.grad_clip}.")
    _require(0 <= settings.ema_decay < 1, f"trainer.ema_decay must be in [0, 1), got {settings.ema_decay}.")
    for key in ("checkpoint_every", "sample_every", "log_every"):
        _require(getattr(settings, key) > 0, f"trainer.{key} must be 1 or more, got {getattr(settings, key)}.")
    _require(settings.warmup_steps >= 0 and settings.num_workers >= 0,
             f"trainer.warmup_steps and trainer.num_workers must be 0 or more, "
             f"got {settings.warmup_steps} and {settings.num_workers}.")
    _require(seed >= 0, f"seed must be 0 or more, got {seed}.")


def recipe(settings: TrainerConfig, seed: int) -> dict[str, Any]:
    """What a checkpoint's numbers depend on: the seed and the settings not in :data:`FREE_ON_RESUME`."""
    fixed = {key: value for key, value in dataclasses.asdict(settings).items() if key not in FREE_ON_RESUME}
    return {"seed": seed, **fixed}


def check_recipe(path: Path, saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raise :class:`InbetweenError` listing the settings that differ from ``path``'s recipe."""
    changed = [f"{key}={wanted[key]} (checkpoint: {saved.get(key)})" for key in wanted if saved.get(key) != wanted[key]]
    _require(not changed, f"{path} was trained with other settings: {', '.join(changed)}; resume with the "
                          "checkpoint's values, or train in a new output_dir.")


def stream_seed(*words: int) -> int:
    """A 64-bit seed from non-negative integers (numpy ``SeedSequence``): one independent
    random stream per tuple, e.g. ``(seed, _LOSS, step, rank)``."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0])


def epoch_order(dataset_size: int, seed: int, epoch: int) -> torch.Tensor:
    """The dataset indices ``(dataset_size,)`` in epoch ``epoch``'s order."""
    generator = torch.Generator().manual_seed(stream_seed(seed, _DATA_ORDER, epoch))
    return torch.randperm(dataset_size, generator=generator)


class StepBatches:
    """Batch sampler: this rank's indices for each global step in ``[start, stop)``.

    Step ``s`` is position ``s % P`` of epoch ``s // P`` with ``P = dataset_size // batch_size``
    batches per epoch; it takes ``batch_size`` indices there, of which rank ``r`` gets the
    ``r``-th ``batch_size / world_size``.
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, topology: Topology,
                 start: int, stop: int) -> None:
        self.dataset_size, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.share = batch_size // topology.world_size
        self.offset = topology.rank * self.share
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.dataset_size // self.batch_size
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start, self.stop):
            if step // per_epoch != epoch:
                epoch = step // per_epoch
                order = epoch_order(self.dataset_size, self.seed, epoch)
            first = (step % per_epoch) * self.batch_size + self.offset
            yield order[first:first + self.share].tolist()


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier of step ``step`` (0-based): linear warmup, then 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors in lists, tuples and dicts) with every tensor on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def weights_digest(*models: nn.Module) -> str:
    """SHA-256 of the models' state dicts (names and exact bytes): equal digests, equal weights."""
    digest = hashlib.sha256()
    for model in models:
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The complete lines of ``metrics.jsonl`` (an unfinished last line is ignored); ``[]`` if absent."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


def trim_metrics(path: Path, step: int) -> None:
    """Drop the lines of ``metrics.jsonl`` past ``step`` (written after the checkpoint a run resumes from)."""
    kept = [entry for entry in read_metrics(path) if entry["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(entry) + "\n" for entry in kept))


def append_metrics(path: Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` as one JSON line, in one write."""
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def _logged_elapsed(path: Path, step: int) -> float:
    """``elapsed`` of the last ``metrics.jsonl`` line at or before ``step`` (0 if none): the training
    time of a checkpoint written before checkpoints kept it themselves."""
    earlier = [entry["elapsed"] for entry in read_metrics(path) if entry["step"] <= step]
    return earlier[-1] if earlier else 0.0


def _clock(seconds: float) -> str:
    """``H:MM:SS``."""
    minutes, second = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{second:02d}"


def progress_line(step: int, steps: int, loss: float, elapsed: float, steps_per_s: float) -> str:
    """One line of training progress for logs: step, share done, loss, speed, time spent and left."""
    left = (steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
    eta = _clock(left) if math.isfinite(left) else "?"
    return (f"step {step}/{steps} ({100 * step / steps:.0f}%), loss {loss:.4g}, {steps_per_s:.2f} steps/s, "
            f"elapsed {_clock(elapsed)}, ETA {eta}")


def plot_loss(metrics: list[dict[str, Any]], path: Path, title: str) -> None:
    """Draw loss against step (log-scale loss) into the PNG ``path``, atomically."""
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot([entry["step"] for entry in metrics], [entry["loss"] for entry in metrics])
    axes.set(xlabel="step", ylabel="loss", yscale="log", title=title)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def export_model(task: TrainingTask, model: nn.Module, folder: Path) -> None:
    """``task.export(model, ...)`` into a staging folder, then moved onto ``folder``."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        task.export(model, staging)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def shared_output_dir(output_dir: str | os.PathLike, topology: Topology) -> Path:
    """Rank 0's ``output_dir``, on every rank (each torchrun process composes its own config)."""
    chosen = [str(output_dir)]
    if topology.distributed:
        dist.broadcast_object_list(chosen, src=0)
    return Path(chosen[0])


def start_process_group(topology: Topology) -> None:
    """Join torchrun's process group: NCCL on CUDA, gloo on the CPU (no-op for one process).

    ``torch.distributed.nn.functional``, which ``DistributedDataParallel`` imports, binds the
    default group as a default argument of its functions when it is first imported. Imported
    after the group exists, it keeps the group alive past ``destroy_process_group``: gloo's
    worker threads then outlive Python, and one still releasing a collective's tensors aborts
    the process at exit ("terminate called without an active exception"). Importing it
    before the group exists binds None instead, so ``destroy_process_group`` frees the group.
    """
    if not topology.distributed:
        return
    import torch.distributed.nn.functional  # noqa: F401  (see above: before init_process_group)
    if topology.device.type == "cuda":
        torch.cuda.set_device(topology.device)
    dist.init_process_group("nccl" if topology.device.type == "cuda" else "gloo")


def end_process_group(topology: Topology) -> None:
    """Leave torchrun's process group and free it, so its threads end before Python does.

    ``DistributedDataParallel`` sits in reference cycles that hold the group; collecting them
    first lets ``destroy_process_group`` drop its last reference (see :func:`start_process_group`).
    """
    if not topology.distributed:
        return
    gc.collect()
    dist.destroy_process_group()


class Trainer:
    """The model, its EMA, AdamW and the warmup schedule of one run, and the loop over steps."""

    def __init__(self, task: TrainingTask, settings: TrainerConfig, seed: int, topology: Topology,
                 output_dir: Path) -> None:
        self.task, self.settings, self.seed, self.topology = task, settings, seed, topology
        self.output_dir = output_dir
        self.precision = resolve_precision(settings.precision, topology.device, "trainer.precision")
        torch.manual_seed(seed)
        self.model = task.build_model().to(topology.device)
        self.ema = EMA(self.model, settings.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr,
                                           weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, functools.partial(warmup_factor, warmup_steps=settings.warmup_steps))
        self.step = 0
        self.elapsed_before = 0.0  # seconds of training in earlier sittings of a resumed run
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training so far, earlier sittings included."""
        return self.elapsed_before + time.perf_counter() - self.started

    # -- checkpoints -------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` (rank 0), then redraw ``loss.png``."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {"step": self.step, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": rng,
                 "recipe": recipe(self.settings, self.seed), "elapsed_s": self.elapsed()}
        with atomic_path(self.output_dir / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        plot_loss(read_metrics(self.output_dir / METRICS), self.output_dir / LOSS_PLOT, f"{self.task.name} training")

    def resume(self) -> None:
        """Load ``checkpoint.pt`` if ``output_dir`` has one (every rank reads the same file)."""
        path = self.output_dir / CHECKPOINT
        if not path.exists():
            return
        state = torch.load(path, map_location=self.topology.device, weights_only=True)
        check_recipe(path, state["recipe"], recipe(self.settings, self.seed))
        _require(state["step"] <= self.settings.steps,
                 f"{path} is at step {state['step']}, past trainer.steps={self.settings.steps}; "
                 "raise trainer.steps or train in a new output_dir.")
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
        except RuntimeError as error:
            raise InbetweenError(
                f"{path} holds a different model than this stage builds "
                f"({str(error).splitlines()[0]}); train in a new output_dir, or use the stage options "
                "it was trained with.") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([rng.cpu() for rng in state["rng"]["cuda"]])
        self.step = state["step"]
        self.elapsed_before = state.get("elapsed_s", _logged_elapsed(self.output_dir / METRICS, self.step))
        if self.topology.is_main:
            log.info("resumed %s at step %d from %s", self.task.name, self.step, path)

    # -- the loop ----------------------------------------------------------------------

    def _train_step(self, network: nn.Module, batch: Any) -> torch.Tensor:
        """One optimizer step on ``batch``; returns the detached loss (no device sync)."""
        generator = torch.Generator(self.topology.device).manual_seed(
            stream_seed(self.seed, _LOSS, self.step, self.topology.rank))
        with autocast(self.topology.device, self.precision):
            loss = self.task.loss(network, to_device(batch, self.topology.device), generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        return loss.detach().float()

    def _loader(self, dataset: Dataset) -> DataLoader:
        """This rank's batches for the steps still to do."""
        sampler = StepBatches(len(dataset), self.settings.batch_size, self.seed, self.topology,
                              self.step, self.settings.steps)
        # its own generator: making the iterator must not draw from torch's global RNG
        generator = torch.Generator().manual_seed(stream_seed(self.seed, _LOADER))
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.settings.num_workers,
                          pin_memory=self.topology.device.type == "cuda", generator=generator)

    def _due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.settings.steps

    def _mean_loss(self, loss_sum: torch.Tensor, count: int) -> float:
        """The mean of ``count`` steps' losses summed in ``loss_sum``, over every rank."""
        total = loss_sum.clone()
        if self.topology.distributed:
            dist.all_reduce(total)
        mean = total.item() / (count * self.topology.world_size)
        _require(math.isfinite(mean), f"the loss became {mean} by step {self.step}; "
                                      "lower trainer.lr, or try trainer.precision=fp32 or trainer.grad_clip=1.")
        return mean

    def fit(self, dataset: Dataset) -> None:
        """Train from ``self.step`` to ``settings.steps``, logging, sampling and checkpointing."""
        settings, main = self.settings, self.topology.is_main
        network: nn.Module = self.model
        if self.topology.distributed:
            device_ids = [self.topology.device] if self.topology.device.type == "cuda" else None
            network = DistributedDataParallel(self.model, device_ids=device_ids)
        self.model.train()
        progress = progress_bar(total=settings.steps, initial=self.step, desc=f"train {self.task.name}", unit="step",
                                show=None if main else False)
        self.started, last_time, first_step = time.perf_counter(), time.perf_counter(), self.step
        loss_sum, count = torch.zeros((), device=self.topology.device), 0
        for batch in self._loader(dataset):
            loss_sum += self._train_step(network, batch)
            count += 1
            progress.update()
            if self._due(settings.log_every):
                mean, now = self._mean_loss(loss_sum, count), time.perf_counter()
                if main:
                    append_metrics(self.output_dir / METRICS, {
                        "step": self.step, "loss": mean,
                        "lr": settings.lr * warmup_factor(self.step - 1, settings.warmup_steps),
                        "samples_per_s": count * settings.batch_size / (now - last_time), "elapsed": self.elapsed()})
                    if progress.disable:
                        log.info(progress_line(self.step, settings.steps, mean, self.elapsed(),
                                               (self.step - first_step) / (now - self.started)))
                progress.set_postfix(loss=f"{mean:.4g}")
                loss_sum, count, last_time = torch.zeros_like(loss_sum), 0, now
            if main and self._due(settings.sample_every):
                self.write_samples()
            if main and self._due(settings.checkpoint_every):
                self.save_checkpoint()
        progress.close()

    def write_samples(self) -> None:
        """``samples/step_NNNNNN.png``: the task's picture of the EMA model."""
        with torch.no_grad():
            grid = self.task.sample_grid(self.ema.model)
        write_png(self.output_dir / SAMPLES / f"step_{self.step:06d}.png", grid)

    def rank_digests(self) -> list[str]:
        """Every rank's :func:`weights_digest` of its model and EMA, in rank order."""
        digest = weights_digest(self.model, self.ema.model)
        if not self.topology.distributed:
            return [digest]
        digests: list[Any] = [None] * self.topology.world_size
        dist.all_gather_object(digests, digest)
        return digests


def train(task: TrainingTask, settings: TrainerConfig, seed: int, output_dir: str | os.PathLike,
          record: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Train ``task``'s model into ``output_dir``, resuming from its checkpoint if there is one.

    Runs as one process, or as one of torchrun's (``WORLD_SIZE`` > 1). ``record``
    (resolved config, choices, ...) goes into ``run.json``. Returns ``run.json``'s content
    on rank 0, None on the other ranks.
    """
    topology = topology_from_env()
    check_settings(settings, seed, topology.world_size)
    dataset = task.dataset()
    _require(len(dataset) >= settings.batch_size,
             f"the {task.name} dataset has {len(dataset)} items, fewer than trainer.batch_size="
             f"{settings.batch_size}; lower trainer.batch_size or give the task more data.")
    start_process_group(topology)
    try:
        return _train(task, settings, seed, shared_output_dir(output_dir, topology), topology, dataset, record)
    finally:
        end_process_group(topology)


def _train(task: TrainingTask, settings: TrainerConfig, seed: int, output_dir: Path, topology: Topology,
           dataset: Dataset, record: dict[str, Any] | None) -> dict[str, Any] | None:
    started = time.perf_counter()
    if topology.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RUN_RECORD).unlink(missing_ok=True)
    trainer = Trainer(task, settings, seed, topology, output_dir)
    trainer.resume()
    resumed_from = trainer.step
    if topology.is_main:
        trim_metrics(output_dir / METRICS, resumed_from)
    trainer.fit(dataset)
    digests = trainer.rank_digests()
    if not topology.is_main:
        return None
    export_model(task, trainer.ema.model, output_dir / MODEL)
    metrics = read_metrics(output_dir / METRICS)
    summary = {
        **(record or {}),
        "seed": seed,
        "resumed_from_step": resumed_from,
        "precision": trainer.precision,
        "metrics": {"final_loss": metrics[-1]["loss"] if metrics else None, "steps": trainer.step,
                    "wall_s": time.perf_counter() - started, "world_size": topology.world_size},
        "rank_weight_digests": digests,
        "versions": versions(),
    }
    write_run_record(output_dir, summary)
    log.info("trained %s for %d steps; final loss %s; model in %s", task.name, trainer.step,
             summary["metrics"]["final_loss"], output_dir / MODEL)
    return summary
