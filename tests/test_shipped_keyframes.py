"""The shipped keyframe model (checkpoints/keyframes): it loads without pickle, draws what the
captions say, keeps a shot's identity, and is reproducible by seed."""

from __future__ import annotations

import pytest
import torch

from checkpoints import shipped
from inbetween.keyframe_eval import caption_shots, evaluate_generator, moving_shots
from inbetween.weights import CONFIG_FILE
from keyframes.diffusion import UNET, DiffusionKeyframes

#: A seed apart from the evaluation datasets' (1000000); every caption is one the model trained on, so
#: this checks drawing, not generalisation. Floors sit below the model card's numbers.
SEED = 4242
FAITHFUL_FLOOR, ATTRIBUTE_FLOOR, IDENTITY_FLOOR = 0.875, 0.9, 0.85


@pytest.fixture(scope="module")
def generator():
    return DiffusionKeyframes()


def test_shipped_files_are_safetensors_and_json_and_small():
    folder = shipped("keyframes")
    for name in (CONFIG_FILE, f"{UNET}.safetensors", "text_encoder.json", "text_encoder.safetensors", "MODEL_CARD.md"):
        assert (folder / name).is_file(), name
    assert max(path.stat().st_size for path in folder.iterdir()) < 20 * 2**20


def test_shipped_model_draws_what_captions_say(generator):
    scores = evaluate_generator(generator, caption_shots(32, SEED), seed=0)
    assert scores["all_correct"] >= FAITHFUL_FLOOR, scores
    for attribute in ("size", "colour", "shape", "position", "background"):
        assert scores[attribute] >= ATTRIBUTE_FLOOR, (attribute, scores)


def test_shipped_model_keeps_a_shots_identity(generator):
    scores = evaluate_generator(generator, moving_shots(12, 3, SEED), seed=0)
    assert scores["identity_kept"] >= IDENTITY_FLOOR, scores


def test_same_seed_same_keyframes_other_seed_others(generator):
    prompts = moving_shots(1, 3, SEED)[0]
    first = generator(prompts, seed=3)
    assert torch.equal(first, generator(prompts, seed=3))
    assert not torch.equal(first, generator(prompts, seed=4))
