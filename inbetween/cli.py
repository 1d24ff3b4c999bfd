"""The ``inbetween`` command: ``inbetween COMMAND [hydra overrides...]``.

Each command is a Hydra application whose primary config is ``conf/COMMAND.yaml``, so
every Hydra feature works after the command word (``--multirun``, ``--cfg job``,
``hydra/launcher=local``, ...). ``output_dir=DIR`` also moves Hydra's own run folder
(or sweep folder, with ``--multirun``) there, so one run leaves one folder.

Exit status: 0 on success; 2 for a mistake the user can fix (bad input, an unknown or unset
config key or option, an output_dir that cannot be written), printed as one paragraph
without a traceback; 130 when interrupted (Ctrl-C), printed as one line; 1 for anything
else. A run that fails leaves no folder that looks like a run: Hydra's ``.hydra/`` copy and
the job's log are removed, and the folder too when the run made it and nothing else is left
(a training run that stops with a checkpoint keeps everything, to resume from).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, MissingMandatoryValue, OmegaConf

import inbetween
from inbetween import config, pipeline
from inbetween.errors import InbetweenError
from inbetween.storyboard import load_storyboard

USAGE = """usage: inbetween COMMAND [key=value ...] [--multirun] [hydra options]

commands:
  generate      storyboard -> keyframes -> in-betweens -> video
                  inbetween generate storyboard=FILE|'[prompt, prompt, ...]' between=N seed=S output_dir=DIR
                  inbetween generate storyboard=FILE reuse=EARLIER_DIR redo='[3]' output_dir=DIR   (redraw keyframe 3)
  interpolate   your own keyframes -> in-betweens -> video
                  inbetween interpolate images='[a.png,b.png,...]' between=N output_dir=DIR
  evaluate      PSNR / SSIM / warping error of interpolators against ground truth
                  inbetween evaluate methods='[linear,flow_warp,minterpolate]' output_dir=DIR
  train         train a model stage; rerun the same command to resume from output_dir's checkpoint
                  inbetween train stage=keyframes trainer.steps=N output_dir=DIR
                  torchrun --nproc_per_node=P -m inbetween train stage=keyframes output_dir=DIR
  studio        the storyboard-to-video loop on a local web page (pip install -e ".[studio]")
                  inbetween studio [--port 7860] [--workspace studio]

Stage choices: keyframes=diffusion|world|images  flow=dis|farneback|learned  interpolate=flow_warp|diffusion|linear|minterpolate
               stage=clip|keyframes|flow|interpolator (train)
`inbetween COMMAND --help` lists every option; `inbetween COMMAND --cfg job` prints the config."""

_task_started = False
_output_dir_existed = False  # whether output_dir=DIR named a folder that existed before this run


def _instantiate(node: DictConfig) -> Any:
    """Build a stage from its config; constructor errors become user-facing errors."""
    try:
        return hydra.utils.instantiate(node)
    except MissingMandatoryValue as error:
        raise config.missing_setting(error.full_key) from None
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, InbetweenError):
            raise cause from None
        raise InbetweenError(f"{error} Check the stage's options in conf/.") from None


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python lists and dicts."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _record(cfg: DictConfig, command: str) -> dict[str, Any]:
    """What ``run.json`` keeps of the configuration: choices, overrides, resolved config."""
    hydra_cfg = HydraConfig.get()
    return {
        "command": command,
        "choices": {group: choice for group, choice in hydra_cfg.runtime.choices.items() if not group.startswith("hydra")},
        "overrides": list(hydra_cfg.overrides.task),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def _run_stages(cfg: DictConfig, storyboard, command: str, plan: pipeline.KeyframePlan | None = None) -> None:
    stages = pipeline.Stages(_instantiate(cfg.keyframes), _instantiate(cfg.flow), _instantiate(cfg.interpolate))
    pipeline.run(storyboard, stages, cfg.seed, cfg.output_dir, cfg.output.scale, record=_record(cfg, command),
                 gif_max_frames=cfg.output.gif_max_frames, plan=plan)


def _keyframe_plan(cfg: DictConfig, storyboard) -> pipeline.KeyframePlan | None:
    """The plan of ``reuse`` / ``redo`` or ``keyframe_seeds``; None for a plain run."""
    redo, seeds = list(cfg.redo), _plain(cfg.keyframe_seeds)
    if seeds is not None:
        if cfg.reuse or redo:
            raise InbetweenError("keyframe_seeds draws every keyframe anew; it does not mix with reuse or redo.")
        if len(seeds) != len(storyboard.prompts):
            raise InbetweenError(f"keyframe_seeds has {len(seeds)} seeds for {len(storyboard.prompts)} keyframes; "
                                 "give one per keyframe, e.g. copied from an earlier run's run.json.")
        return pipeline.KeyframePlan(seeds)
    if redo and not cfg.reuse:
        raise InbetweenError(f"redo={redo} redraws keyframes of an earlier run: add reuse=EARLIER_OUTPUT_DIR.")
    return pipeline.reuse_plan(storyboard, cfg.seed, Path(cfg.reuse), redo) if cfg.reuse else None


def generate(cfg: DictConfig) -> None:
    """``inbetween generate``: a storyboard's keyframes, filled with motion."""
    storyboard = load_storyboard(_plain(cfg.storyboard), cfg.between, cfg.fps)
    _run_stages(cfg, storyboard, "generate", _keyframe_plan(cfg, storyboard))


def interpolate(cfg: DictConfig) -> None:
    """``inbetween interpolate``: the animator's own keyframes, filled with motion."""
    images = _plain(cfg.images)
    if not isinstance(images, list) or len(images) < 2:
        raise InbetweenError(
            f"interpolate needs two or more keyframe images as a list, got {images!r}; "
            "e.g. images='[a.png,b.png,c.png]'."
        )
    storyboard = load_storyboard([str(path) for path in images], cfg.between, cfg.fps)
    _run_stages(cfg, storyboard, "interpolate")


def evaluate(cfg: DictConfig) -> None:
    """``inbetween evaluate``: interpolators against ground truth, one table per dataset."""
    from inbetween import evaluation  # noqa: PLC0415 - heavy, only this command needs it

    evaluation.run_from_config(cfg, record=_record(cfg, "evaluate"))


def train(cfg: DictConfig) -> None:
    """``inbetween train``: one model stage, by the shared trainer (also under torchrun)."""
    from inbetween import training  # noqa: PLC0415 - heavy, only this command needs it

    try:
        settings = OmegaConf.to_object(cfg.trainer)
    except MissingMandatoryValue as error:
        raise InbetweenError(f"{error.full_key} is not set; add it to the stage's trainer: in conf/stage/, "
                             f"or pass {error.full_key}=VALUE.") from None
    training.train(_instantiate(cfg.task), settings, cfg.seed, cfg.output_dir, record=_record(cfg, "train"))


COMMANDS: dict[str, Callable[[DictConfig], None]] = {
    "generate": generate,
    "interpolate": interpolate,
    "evaluate": evaluate,
    "train": train,
}


def _discard_failed_run() -> None:
    """Remove what Hydra wrote for a run that failed (``.hydra/``, the job's log), and the run's
    folder when that leaves it empty and the run made it; a run that leaves a training checkpoint
    to resume from keeps everything."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if not run_dir.is_dir() or _run_checkpoint().exists():
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (run_dir / f"{hydra_cfg.job.name}.log").unlink(missing_ok=True)
    made_by_this_run = not _output_dir_existed or hydra_cfg.mode == RunMode.MULTIRUN
    if made_by_this_run and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _run_checkpoint() -> Path:
    """Where a training run in this run's folder keeps its checkpoint."""
    from inbetween.training import CHECKPOINT  # noqa: PLC0415 - heavy, only failed runs need it

    return Path(HydraConfig.get().runtime.output_dir) / CHECKPOINT


def _interrupted_message() -> str:
    checkpoint = _run_checkpoint()
    if checkpoint.exists():
        return f"interrupted; {checkpoint} keeps the last checkpoint: rerun the same command to resume from it."
    return "interrupted."


def _guarded(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Run ``task``; a user's mistake prints its message and exits with status 2, Ctrl-C prints one
    line and exits with 130; any failure first discards the run folder (:func:`_discard_failed_run`)."""

    @functools.wraps(task)
    def guarded(cfg: DictConfig) -> None:
        global _task_started
        _task_started = True
        try:
            task(cfg)
        except (MissingMandatoryValue, InbetweenError) as error:
            _discard_failed_run()
            if isinstance(error, MissingMandatoryValue):
                error = config.missing_setting(error.full_key)
            print(f"inbetween: error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            message = _interrupted_message()
            _discard_failed_run()
            print(f"inbetween: {message}", file=sys.stderr)
            sys.exit(130)
        except Exception:
            _discard_failed_run()
            raise

    return guarded


def _writable_folder_error(path: Path, named: bool) -> InbetweenError | None:
    """Why the run folder ``path`` cannot be made and written, or None when it can.

    Probes the nearest folder that exists (``path`` itself, or the parent it would be made in)
    by making and removing a temporary folder there; nothing is left behind.
    """
    where = f"output_dir '{path}'" if named else f"the default output folder '{path.resolve()}'"
    fix = "give a folder you can write to" if named else "run from a folder you can write to, or pass output_dir=DIR"
    if path.exists() and not path.is_dir():
        return InbetweenError(f"{where} is a file, not a folder; {fix} (it is made if missing).")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        return InbetweenError(f"{where} cannot be made: '{existing}' is a file; {fix}.")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".inbetween-probe-", dir=existing))
    except OSError as error:
        return InbetweenError(f"{where} cannot be written ('{existing}': {error.strerror}); {fix}.")
    return None


def _check_output_dir(overrides: Sequence[str]) -> InbetweenError | None:
    """Why the run's folder (``output_dir=DIR``, else Hydra's default under the current folder)
    cannot be written, or None; notes whether a named folder existed before the run."""
    global _output_dir_existed
    named = [arg.split("=", 1)[1] for arg in overrides if arg.startswith("output_dir=")]
    folder = Path(named[-1]) if named else Path("multirun" if _is_multirun(overrides) else "outputs")
    _output_dir_existed = bool(named) and folder.is_dir()
    return None if _PRINT_ONLY_FLAGS & set(overrides) else _writable_folder_error(folder, named=bool(named))


#: Hydra flags that print and exit without running the task (and so write no run folder).
_PRINT_ONLY_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def _is_multirun(overrides: Sequence[str]) -> bool:
    return any(arg in ("-m", "--multirun") for arg in overrides)


def _route_output_dir(overrides: Sequence[str]) -> list[str]:
    """Turn ``output_dir=DIR`` into Hydra's run (or sweep) dir, so ``output_dir`` follows it."""
    target = "hydra.sweep.dir" if _is_multirun(overrides) else "hydra.run.dir"
    return [f"{target}={arg.split('=', 1)[1]}" if arg.startswith("output_dir=") else arg for arg in overrides]


def _rank_overrides() -> list[str]:
    """Under torchrun every process composes the config; only rank 0 saves Hydra's ``.hydra/``."""
    return ["hydra.output_subdir=null"] if os.environ.get("RANK", "0") != "0" else []


def _asset_path(name: str) -> str:
    return str(Path(inbetween.__file__).parent / "assets" / name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inbetween`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, overrides = args[0], args[1:]
    if command == "studio":
        from inbetween import studio  # noqa: PLC0415 - not a Hydra command; its web framework is an extra

        return studio.main(overrides)
    if command not in COMMANDS:
        print(f"inbetween: error: unknown command '{command}'; choose one of {', '.join([*COMMANDS, 'studio'])}."
              f"\n\n{USAGE}",
              file=sys.stderr)
        return 2
    problem = _check_output_dir(overrides)
    if problem:
        print(f"inbetween: error: {problem}", file=sys.stderr)
        return 2
    config.register()
    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", _asset_path)
    sys.argv = [f"inbetween-{command}", *_route_output_dir(overrides), *_rank_overrides()]
    app = hydra.main(version_base="1.3", config_path="pkg://conf", config_name=command)(
        _guarded(COMMANDS[command]))
    try:
        app()
    except KeyboardInterrupt:
        print("inbetween: interrupted.", file=sys.stderr)
        return 130
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        # Hydra exits 1 for errors it reports itself; before the task starts those are
        # configuration mistakes (unknown key or option, bad override): the user's to fix.
        return 2 if code == 1 and not _task_started else code
    return 0
