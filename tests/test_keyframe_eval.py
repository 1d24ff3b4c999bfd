"""Keyframe evaluation: seeded storyboards, identity across a shot, and the evaluate command."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from inbetween.keyframe_eval import caption_shots, identity_scores, moving_shots, storyboard_of
from inbetween.world import parse_caption, render_caption
from keyframes.clip import world_clip
from tests.conftest import load_run, run_cli


def test_moving_shots_move_one_object_to_distinct_positions():
    shots = moving_shots(count=30, keyframes=3, seed=4)
    assert shots == moving_shots(count=30, keyframes=3, seed=4) and shots != moving_shots(30, 3, seed=5)
    for shot in shots:
        scenes = [parse_caption(prompt) for prompt in shot]
        assert len({(s.size, s.colour, s.shape, s.background) for s in scenes}) == 1
        assert len({s.position for s in scenes}) == 3
    assert len(storyboard_of(shots).prompts) == 90 and all(shot.between == 0 for shot in storyboard_of(shots).shots)
    assert caption_shots(5, seed=1) == caption_shots(5, seed=1) and all(len(s) == 1 for s in caption_shots(5, 1))


def test_identity_scores_see_a_changed_object():
    shot = moving_shots(count=1, keyframes=3, seed=0)[0]
    faithful = torch.stack([render_caption(prompt, 64) for prompt in shot])
    assert identity_scores([faithful], [shot]) == {"identity_kept": 1.0, "consistent": 1.0}
    scene = parse_caption(shot[2])
    other_colour = "blue" if scene.colour != "blue" else "red"
    changed = faithful.clone()
    changed[2] = render_caption(shot[2].replace(scene.colour, other_colour), 64)
    assert identity_scores([changed], [shot]) == {"identity_kept": 0.0, "consistent": 0.0}
    moved = faithful.clone()  # same object, wrong place: identity kept but not faithful
    moved[2] = faithful[0]
    assert identity_scores([moved], [shot]) == {"identity_kept": 1.0, "consistent": 0.0}
    assert identity_scores([faithful, changed], [shot, shot]) == {"identity_kept": 0.5, "consistent": 0.5}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    world_clip().save(folder)
    return folder


def test_evaluate_scores_keyframe_generators(tmp_path, clip_folder):
    out = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[captions,shots]", "keyframe_methods=[world]", "captions.count=12",
                     "shots.count=6", f"clip_score.folder={clip_folder}", f"output_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = load_run(out)["metrics"]
    # exact renders: the reader reads every attribute back, identity is kept in every shot
    assert metrics["captions.world.all_correct"] == 1.0 and metrics["shots.world.consistent"] == 1.0
    assert -1.0 <= metrics["captions.world.clip_score"] <= 1.0
    board = yaml.safe_load((out / "storyboard_shots.yaml").read_text())
    assert board["between"] == 0 and len(board["shots"]) == 6 and len(board["shots"][0]["prompts"]) == 3
    header = (out / "eval_captions.csv").read_text().splitlines()[0]
    assert header.startswith("method,keyframes,size,colour,shape,position,background,all_correct")
    assert json.loads((out / "run.json").read_text())["command"] == "evaluate"


def test_evaluate_rejects_an_unknown_dataset(tmp_path):
    result = run_cli("evaluate", "datasets=[captionz]", f"output_dir={tmp_path / 'x'}", cwd=tmp_path)
    assert result.returncode == 2 and "unknown dataset(s) captionz" in result.stderr
