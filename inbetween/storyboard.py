"""Storyboards: shots of prompts (or keyframe image paths), with in-between counts.

A storyboard file is YAML::

    fps: 12
    between: 7            # in-betweens per keyframe gap, unless a shot says otherwise
                          # (``between=N`` on the command line sets every shot's)
    shots:
      - prompts: ["a large red circle at the left", "a large red circle at the right"]
      - prompts: ["a small blue square at the top on a white background"]
        between: 3

A list given on the command line is one shot. Interpolation never crosses from one shot
into the next: a cut stays a cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from inbetween.errors import InbetweenError

DEFAULT_BETWEEN = 7
DEFAULT_FPS = 12.0
_FILE_KEYS = {"fps", "between", "shots"}
_SHOT_KEYS = {"prompts", "between"}


@dataclass(frozen=True)
class Shot:
    """A run of keyframes that motion fills: ``between`` in-betweens per gap."""

    prompts: tuple[str, ...]
    between: int

    @property
    def frame_count(self) -> int:
        """``(K - 1) * (between + 1) + 1`` frames for ``K`` keyframes."""
        return (len(self.prompts) - 1) * (self.between + 1) + 1


@dataclass(frozen=True)
class Storyboard:
    shots: tuple[Shot, ...]
    fps: float

    @property
    def prompts(self) -> list[str]:
        """Every keyframe's prompt, across shots, in order."""
        return [prompt for shot in self.shots for prompt in shot.prompts]


def _check_between(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InbetweenError(f"'between' {where} must be a whole number of in-betweens, got {value!r}.")
    if value < 0:
        raise InbetweenError(
            f"'between' {where} is {value}; it must be 0 or more (0 gives the keyframes alone)."
        )
    return value


def _check_fps(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InbetweenError(f"'fps' {where} must be a positive number, got {value!r}.")
    return float(value)


def _check_prompts(prompts: Any, where: str) -> tuple[str, ...]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise InbetweenError(f"{where} needs 'prompts': a non-empty list of strings, one per keyframe.")
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InbetweenError(f"{where} has a prompt that is not a non-empty string: {prompt!r}.")
    return tuple(prompts)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise InbetweenError(
            f"storyboard file '{path}' does not exist. Give a YAML file, or a list of prompts "
            "such as storyboard='[a red circle at the left, a red circle at the right]'."
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InbetweenError(f"storyboard file '{path}' is not valid YAML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InbetweenError(f"storyboard file '{path}' could not be read: {error}") from None
    if not isinstance(data, dict) or "shots" not in data:
        raise InbetweenError(
            f"storyboard file '{path}' must be a YAML mapping with a 'shots' list, e.g.\n"
            "shots:\n  - prompts: [\"a red circle at the left\", \"a red circle at the right\"]"
        )
    return data


def _shots_from_file(path: Path, between: int | None, fps: float | None) -> Storyboard:
    data = _read_yaml(path)
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise InbetweenError(f"storyboard file '{path}' has unknown keys {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}.")
    file_between = _check_between(data.get("between", DEFAULT_BETWEEN), f"in '{path}'")
    if fps is None:
        fps = _check_fps(data.get("fps", DEFAULT_FPS), f"in '{path}'")
    raw_shots = data["shots"]
    if not isinstance(raw_shots, list) or not raw_shots:
        raise InbetweenError(f"'shots' in '{path}' must be a non-empty list of shots, each with 'prompts'.")
    shots = []
    for index, raw in enumerate(raw_shots):
        where = f"shot {index} of '{path}'"
        if not isinstance(raw, dict):
            raise InbetweenError(f"{where} must be a mapping with 'prompts' (and optionally 'between').")
        unknown = set(raw) - _SHOT_KEYS
        if unknown:
            raise InbetweenError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_SHOT_KEYS)}.")
        shot_between = between if between is not None else _check_between(raw.get("between", file_between),
                                                                             f"of {where}")
        shots.append(Shot(_check_prompts(raw.get("prompts"), where), shot_between))
    return Storyboard(tuple(shots), fps)


def load_storyboard(spec: str | os.PathLike | Sequence[str], between: int | None = None,
                    fps: float | None = None) -> Storyboard:
    """Build a :class:`Storyboard` from a YAML file path or a list of prompts (one shot).

    ``between`` and ``fps``, when given (the command line's values), override the file's values:
    ``between`` sets every shot's in-betweens (``0``: the keyframes alone), shots' own included.
    """
    if between is not None:
        between = _check_between(between, "on the command line")
    if fps is not None:
        fps = _check_fps(fps, "on the command line")
    if isinstance(spec, (str, os.PathLike)):
        return _shots_from_file(Path(spec), between, fps)
    prompts = _check_prompts(list(spec), "the storyboard list")
    return Storyboard((Shot(prompts, DEFAULT_BETWEEN if between is None else between),),
                      DEFAULT_FPS if fps is None else fps)
