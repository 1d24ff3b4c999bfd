"""Keyframe generators against the Shapes World attribute reader (part of ``inbetween evaluate``).

Datasets, both seeded storyboards that ``inbetween generate`` would take:

* ``captions``: ``count`` random world captions, one shot each.
* ``shots``: ``count`` shots of ``keyframes`` prompts that move one object: size, colour,
  shape and background fixed, a different position in every prompt.

Keyframes are made exactly as ``inbetween generate storyboard=FILE between=0 seed=S``
makes them (:func:`inbetween.pipeline.make_keyframes`). Metrics per method:

* faithfulness: the share of keyframes whose read attribute equals the prompt's, per
  attribute, and ``all_correct`` (all five);
* ``identity_kept`` (shots): the share of shots whose keyframes all read as one size,
  colour and shape; ``consistent``: identity kept *and* every keyframe all-correct;
* ``clip_score``: mean cosine of image and prompt embeddings under a CLIP model;
* ``s_per_keyframe``: wall seconds per keyframe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from inbetween.pipeline import make_keyframes
from inbetween.storyboard import DEFAULT_FPS, Shot, Storyboard
from inbetween.world import POSITIONS, Scene, faithfulness, identity_scores, random_captions
from inbetween.video import atomic_path

def caption_shots(count: int, seed: int) -> list[list[str]]:
    """``count`` one-prompt shots of seeded random captions."""
    return [[caption] for caption in random_captions(count, seed)]


def moving_shots(count: int, keyframes: int, seed: int) -> list[list[str]]:
    """``count`` shots of ``keyframes`` captions of one random object at distinct random positions."""
    rng = np.random.default_rng(seed)
    positions = list(POSITIONS)
    shots = []
    for _ in range(count):
        scene = Scene.random(rng)
        chosen = rng.choice(len(positions), size=keyframes, replace=False)
        shots.append([Scene(scene.size, scene.colour, scene.shape, positions[k], scene.background).caption()
                      for k in chosen])
    return shots


def storyboard_of(shots: Sequence[Sequence[str]]) -> Storyboard:
    """A storyboard of ``shots`` with no in-betweens."""
    return Storyboard(tuple(Shot(tuple(prompts), between=0) for prompts in shots), DEFAULT_FPS)


def write_storyboard(path: Path, shots: Sequence[Sequence[str]]) -> None:
    """Save ``shots`` as a storyboard YAML that ``inbetween generate storyboard=PATH`` reads."""
    with atomic_path(path) as temporary:
        temporary.write_text(yaml.safe_dump({"between": 0, "shots": [{"prompts": list(p)} for p in shots]},
                                            sort_keys=False, width=200))


def evaluate_generator(generator, shots: Sequence[Sequence[str]], seed: int, scorer=None) -> dict[str, float]:
    """Make every shot's keyframes with ``generator`` and score them (see the module docstring)."""
    start = time.perf_counter()
    keyframes = make_keyframes(storyboard_of(shots), generator, seed)
    seconds = time.perf_counter() - start
    images = torch.cat(keyframes)
    prompts = [prompt for shot in shots for prompt in shot]
    scores: dict[str, float] = faithfulness(images, prompts)
    if any(len(shot) > 1 for shot in shots):
        scores |= identity_scores(keyframes, shots)
    if scorer is not None:
        scores["clip_score"] = float(scorer.clip_score(images, prompts).mean())
    return scores | {"s_per_keyframe": seconds / len(prompts)}


def keyframe_table(methods: dict[str, Any], shots: Sequence[Sequence[str]], seed: int,
                   scorer=None) -> list[dict[str, Any]]:
    """One row per method: its name, the number of keyframes and every score."""
    keyframes = sum(len(shot) for shot in shots)
    return [{"method": name, "keyframes": keyframes, **evaluate_generator(generator, shots, seed, scorer)}
            for name, generator in methods.items()]
