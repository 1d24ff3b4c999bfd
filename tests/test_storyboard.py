from pathlib import Path

import pytest

from inbetween.errors import InbetweenError
from inbetween.storyboard import DEFAULT_BETWEEN, DEFAULT_FPS, Shot, load_storyboard

STORYBOARD = """
fps: 24
between: 5
shots:
  - prompts: ["a red circle at the left", "a red circle at the right"]
  - prompts: ["a small blue square at the top on a white background"]
    between: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return path


def test_file_with_shots_and_per_shot_between(tmp_path):
    board = load_storyboard(str(write(tmp_path, STORYBOARD)))
    assert board.fps == 24
    assert [shot.between for shot in board.shots] == [5, 3]
    assert board.prompts == ["a red circle at the left", "a red circle at the right",
                             "a small blue square at the top on a white background"]


@pytest.mark.parametrize("between", [0, 2])
def test_command_line_between_sets_every_shot(tmp_path, between):
    board = load_storyboard(str(write(tmp_path, STORYBOARD)), between=between, fps=6)
    assert [shot.between for shot in board.shots] == [between, between]  # the second shot's own 3 included
    assert board.fps == 6


def test_list_is_one_shot_with_defaults():
    board = load_storyboard(["a", "b", "c"])
    assert board.shots == (Shot(("a", "b", "c"), DEFAULT_BETWEEN),)
    assert board.fps == DEFAULT_FPS


@pytest.mark.parametrize("keys,between,frames", [(3, 3, 9), (2, 0, 2), (1, 7, 1), (4, 1, 7)])
def test_frame_count(keys, between, frames):
    assert Shot(tuple("k" * keys), between).frame_count == frames


@pytest.mark.parametrize(
    "text,message",
    [
        ("shots: [prompts: [a, b]\n", "not valid YAML"),
        ("fps: 12\n", "'shots'"),
        ("- just a list\n", "'shots'"),
        ("shots: []\n", "non-empty list"),
        ("shots:\n  - prompts: []\n", "non-empty list of strings"),
        ("shots:\n  - prompt: [a, b]\n", "unknown keys ['prompt']"),
        ("shots:\n  - prompts: [a, b]\n    between: -1\n", "0 or more"),
        ("between: two\nshots:\n  - prompts: [a, b]\n", "whole number"),
        ("fpss: 3\nshots:\n  - prompts: [a, b]\n", "unknown keys ['fpss']"),
    ],
)
def test_bad_storyboard_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(InbetweenError, match=__import__("re").escape(message)):
        load_storyboard(str(write(tmp_path, text)))


def test_missing_file_suggests_list_syntax(tmp_path):
    with pytest.raises(InbetweenError, match="does not exist.*storyboard='\\["):
        load_storyboard(str(tmp_path / "nope.yaml"))


def test_negative_between_on_command_line():
    with pytest.raises(InbetweenError, match="0 or more"):
        load_storyboard(["a", "b"], between=-2)


def test_a_keyframe_can_be_the_animators_own_picture(tmp_path):
    (tmp_path / "drawn").mkdir()
    (tmp_path / "drawn" / "key.png").write_bytes(b"")  # existence is checked here; pixels when the run reads it
    board = load_storyboard(str(write(tmp_path, "shots:\n  - prompts: [a red circle, {image: drawn/key.png}]\n"
                                                "  - prompts: [{image: drawn/key.png, prompt: mine}]\n")))
    assert board.prompts == ["a red circle", "key.png", "mine"]
    assert board.images == [None, str(tmp_path / "drawn" / "key.png"), str(tmp_path / "drawn" / "key.png")]


@pytest.mark.parametrize("entry,message", [
    ("{image: missing.png}", "does not exist"),
    ("{picture: a.png}", "a keyframe is a prompt or {image: PATH}"),
    ("{image: 3}", "not a path"),
])
def test_bad_keyframe_pictures_name_the_problem(tmp_path, entry, message):
    with pytest.raises(InbetweenError, match=__import__("re").escape(message)):
        load_storyboard(str(write(tmp_path, f"shots:\n  - prompts: [a, {entry}]\n")))
