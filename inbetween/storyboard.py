"""Storyboards: shots of prompts (or keyframe image paths), with in-between counts.

A storyboard file is YAML::

    fps: 12
    between: 7            # in-betweens per keyframe gap, unless a shot says otherwise
                          # (``between=N`` on the command line sets every shot's)
    shots:
      - prompts: ["a large red circle at the left", "a large red circle at the right"]
      - prompts: ["a small blue square at the top on a white background",
                  {image: drawn/square.png, prompt: "the square, drawn by hand"}]
        between: 3

A keyframe is a prompt to draw, or ``{image: PATH}``: the animator's own picture, taken pixel for
pixel (``prompt`` captions it on the contact sheet; default: the file's name). A relative path is
read from the storyboard file's folder. A list given on the command line is one shot.
Interpolation never crosses from one shot into the next: a cut stays a cut.
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
_IMAGE_KEYS = {"image", "prompt"}


@dataclass(frozen=True)
class Shot:
    """A run of keyframes that motion fills: ``between`` in-betweens per gap. ``images[k]``: the
    path of keyframe ``k``'s own picture, or None where it is drawn from ``prompts[k]``."""

    prompts: tuple[str, ...]
    between: int
    images: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.images:
            object.__setattr__(self, "images", (None,) * len(self.prompts))

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

    @property
    def images(self) -> list[str | None]:
        """Every keyframe's own picture (None: drawn), across shots, in order."""
        return [image for shot in self.shots for image in shot.images]


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


def _image_entry(entry: dict, where: str, folder: Path) -> tuple[str, str]:
    """``(prompt, image path)`` of a keyframe given as ``{image: PATH, prompt: TEXT}``."""
    unknown = set(entry) - _IMAGE_KEYS
    if unknown or "image" not in entry:
        raise InbetweenError(f"{where} has a keyframe {entry!r}; a keyframe is a prompt or {{image: PATH}} "
                             f"(optionally with prompt: TEXT), keys {sorted(_IMAGE_KEYS)}.")
    image = entry["image"]
    if not isinstance(image, str) or not image.strip():
        raise InbetweenError(f"{where} has a keyframe image that is not a path: {image!r}.")
    path = folder / image
    if not path.is_file():
        raise InbetweenError(f"{where} names the keyframe image '{path}', which does not exist; give the path of "
                             "a PNG or JPEG file (relative paths are read from the storyboard's folder).")
    prompt = entry.get("prompt", path.name)
    return _check_prompts([prompt], where)[0], str(path)


def _shot_keyframes(raw: Any, where: str, folder: Path) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """A shot's prompts and own images (None where drawn) from its ``prompts`` list."""
    if not isinstance(raw, list):
        return _check_prompts(raw, where), ()  # says what 'prompts' must be
    entries = [_image_entry(entry, where, folder) if isinstance(entry, dict) else (entry, None) for entry in raw]
    return _check_prompts([prompt for prompt, _ in entries], where), tuple(image for _, image in entries)


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
        prompts, images = _shot_keyframes(raw.get("prompts"), where, path.parent)
        shots.append(Shot(prompts, shot_between, images))
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
