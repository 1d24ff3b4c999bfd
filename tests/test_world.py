"""The Shapes World (docs/WORLD.md): captions, renders, clips with exact flow, the attribute reader."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from inbetween.errors import InbetweenError
from inbetween.world import (
    BACKGROUNDS,
    CLIP_KINDS,
    COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    CaptionImageDataset,
    Clip,
    ClipFramesDataset,
    Scene,
    all_captions,
    canonical_caption,
    faithfulness,
    parse_caption,
    random_captions,
    read_attributes,
    render_caption,
    render_scene,
)

ALL_SCENES = [parse_caption(caption) for caption in all_captions()]
VOCABULARY = [*SIZES, *COLOURS, *SHAPES, *POSITIONS, *BACKGROUNDS]


def coverage_of(image: np.ndarray, background: tuple[int, int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """Per-pixel fraction ``(H, W)`` of a solid ``colour`` object over a solid ``background``."""
    direction = np.subtract(colour, background, dtype=float)
    return (image.astype(float) - background) @ direction / (direction @ direction)


def centroid(weight: np.ndarray) -> np.ndarray:
    """Weighted centroid ``(x, y)`` in pixel coordinates (pixel centres at ``+0.5``)."""
    rows, cols = np.mgrid[0:weight.shape[0], 0:weight.shape[1]] + 0.5
    return np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()


# --- captions -------------------------------------------------------------------------------


def test_vocabulary_matches_the_spec():
    assert len(ALL_SCENES) == 3 * 8 * 4 * 9 * 3 == 2592
    assert SIZES == {"small": 0.10, "medium": 0.16, "large": 0.24}
    assert COLOURS["red"] == (230, 40, 40) and BACKGROUNDS["gray"] == (128, 128, 128)
    assert POSITIONS["top right"] == (0.75, 0.25)
    assert CLIP_KINDS == ("translate", "ease", "arc", "rotate", "scale", "occlusion", "texture", "large")


def test_caption_round_trip_for_every_scene():
    for scene in ALL_SCENES:
        assert parse_caption(scene.caption()) == scene
    assert Scene("large", "red", "circle", "left", "black").caption() == \
        "a large red circle at the left on a black background"


@pytest.mark.parametrize("text, expected", [
    ("", Scene()),
    ("a blue star", Scene(colour="blue", shape="star")),
    ("a square on white", Scene(shape="square", background="white")),
    ("A Large, RED triangle at the Centre on a Grey background", Scene("large", "red", "triangle", "center", "gray")),
    ("small at the bottom right", Scene(size="small", position="bottom right")),
    ("a star in the top left on black", Scene(shape="star", position="top left")),
])
def test_parse_fills_missing_slots_with_defaults(text, expected):
    assert Scene() == Scene("medium", "red", "circle", "center", "black")
    assert parse_caption(text) == expected


@pytest.mark.parametrize("text, word", [
    ("a huge red circle", "huge"),
    ("a red blue circle", "blue"),
    ("a circle at the left at the right", "right"),
    ("a red circle on a green background", "green"),
    ("a pink hexagon", "pink"),
])
def test_parse_errors_name_the_word_and_list_the_vocabulary(text, word):
    with pytest.raises(InbetweenError) as raised:
        parse_caption(text)
    message = str(raised.value)
    assert repr(word) in message
    assert all(vocabulary_word in message for vocabulary_word in VOCABULARY)


@pytest.mark.parametrize("text, caption, ignored", [
    ("a red circle at the left", "a medium red circle at the left on a black background", []),
    ("a cat walking across a room", Scene().caption(), ["cat", "walking", "across", "room"]),
    ("a red blue circle", "a medium red circle at the center on a black background", ["blue"]),
    ("a large star on a green background", "a large red star at the center on a black background", ["green"]),
    ("", Scene().caption(), []),
])
def test_canonical_caption_keeps_known_words_and_names_the_others(text, caption, ignored):
    assert canonical_caption(text) == (caption, ignored)


def test_canonical_caption_agrees_with_parse_on_valid_captions():
    for text in ("a blue star", "small at the bottom right", "A Large, RED triangle at the Centre on a Grey background"):
        assert canonical_caption(text) == (parse_caption(text).caption(), [])


def test_scene_rejects_words_outside_its_slot():
    with pytest.raises(InbetweenError, match="'pink'"):
        Scene(colour="pink")


def test_random_captions_are_seeded_and_parse():
    captions = random_captions(50, seed=3)
    assert captions == random_captions(50, seed=3) != random_captions(50, seed=4)
    assert all(parse_caption(caption).caption() == caption for caption in captions)
    assert len(set(captions)) > 40


# --- rendering scenes -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_render_matches_spec_geometry(shape):
    area_at_unit_radius = {"circle": math.pi, "square": 2.0, "triangle": 3 * math.sqrt(3) / 4,
                           "star": 5 * 0.45 * math.sin(math.pi / 5)}[shape]
    height, width = 120, 160
    image = render_scene(Scene("large", "blue", shape, "top right", "white"), height, width)
    coverage = coverage_of(image, BACKGROUNDS["white"], COLOURS["blue"])
    radius_px = SIZES["large"] * min(height, width)
    # 4 x 4 supersampling puts each straight edge within 1/8 px of its true place.
    assert coverage.sum() == pytest.approx(area_at_unit_radius * radius_px**2, rel=0.02)
    np.testing.assert_allclose(centroid(coverage), [0.75 * width, 0.25 * height], atol=0.13)


def test_render_is_deterministic_and_typed():
    scene = Scene("small", "cyan", "star", "bottom left", "gray")
    image = render_scene(scene, 64)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert np.array_equal(image, render_scene(scene, 64))
    assert render_scene(scene, 48, 80).shape == (48, 80, 3)
    tensor = render_caption(scene.caption(), 64)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 64, 64)
    assert -1 <= tensor.min() and tensor.max() <= 1
    assert torch.equal(tensor, torch.from_numpy(image).permute(2, 0, 1) / 127.5 - 1)
    assert render_caption(scene.caption(), (48, 80)).shape == (3, 48, 80)


def test_render_rejects_bad_sizes():
    with pytest.raises(InbetweenError, match="positive"):
        render_scene(Scene(), 0)


# --- attribute reader -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 128])
def test_reader_reads_back_every_caption(size):
    wrong = [(scene, read) for scene in ALL_SCENES
             if (read := read_attributes(render_scene(scene, size))) != vars(scene)]
    assert wrong == []


def test_reader_accepts_tensors_and_survives_blank_images():
    scene = Scene("medium", "orange", "triangle", "left", "white")
    assert read_attributes(render_caption(scene.caption(), 96)) == vars(scene)
    blank = read_attributes(np.full((64, 64, 3), 255, np.uint8))
    assert blank == {"size": None, "colour": None, "shape": None, "position": None, "background": "white"}
    with pytest.raises(InbetweenError, match="uint8"):
        read_attributes(np.zeros((64, 64, 3), np.float32))


def test_faithfulness_scores_each_attribute():
    captions = random_captions(8, seed=0)
    images = torch.stack([render_caption(caption, 64) for caption in captions])
    assert faithfulness(images, captions) == dict.fromkeys(
        ["size", "colour", "shape", "position", "background", "all_correct"], 1.0)

    blank = torch.full((3, 64, 64), -1.0)
    scores = faithfulness([blank, images[1]], ["a red circle on a black background", captions[1]])
    assert scores["background"] == 1.0 and scores["colour"] == scores["shape"] == scores["all_correct"] == 0.5

    shifted = render_caption("a small green square at the left on a gray background", 64)
    scores = faithfulness([shifted], ["a small green square at the right on a gray background"])
    assert scores["position"] == 0.0 and scores["shape"] == scores["size"] == 1.0 and scores["all_correct"] == 0.0


# --- clips and flow ---------------------------------------------------------------------------

SIDE = 128


def warp_error(clip: Clip, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel error of backward-warping frame ``t1`` by ``flow(t0, t1)`` against frame ``t0``, and of
    not warping at all, over moving pixels visible at both times and 3 px away from any layer edge."""
    frame0, frame1 = (clip.render(t, SIDE).astype(np.float32) for t in (t0, t1))
    flow = clip.flow(t0, t1, SIDE)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    warped = cv2.remap(frame1, x + flow[0], y + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    kernel = np.ones((7, 7), np.uint8)
    layers = clip.layer_map(t0, SIDE).astype(np.uint8)
    interior = cv2.dilate(layers, kernel) == cv2.erode(layers, kernel)
    visible = cv2.erode(clip.visible_mask(t0, t1, SIDE).astype(np.uint8), kernel).astype(bool)
    checked = interior & visible & (np.hypot(*flow) > 1)
    return np.abs(warped - frame0).max(-1)[checked], np.abs(frame1 - frame0).max(-1)[checked]


@pytest.mark.parametrize("kind", CLIP_KINDS)
def test_flow_is_exact_for_every_kind(kind):
    clip = Clip.random(1, kind, textured=True)
    error, unwarped = warp_error(clip, 0.2, 0.9)
    assert error.size > 100
    assert error.mean() < 0.8 and error.max() <= 3  # 8-bit rounding of two frames and bilinear sampling
    assert unwarped.mean() > 4  # the textures make the check meaningful


@pytest.mark.parametrize("kind", CLIP_KINDS)
def test_clips_are_reproducible_and_flow_at_equal_times_is_zero(kind):
    clip, again = Clip.random(7, kind), Clip.random(7, kind)
    assert np.array_equal(clip.render(0.4, 64), again.render(0.4, 64))
    assert np.array_equal(clip.flow(0.1, 0.8, 64), again.flow(0.1, 0.8, 64))
    assert not np.array_equal(clip.render(0.4, 64), Clip.random(8, kind).render(0.4, 64))
    np.testing.assert_allclose(clip.flow(0.3, 0.3, 48, 80), 0, atol=1e-4)
    assert clip.visible_mask(0.3, 0.3, 48, 80).all()
    # Forcing textures on changes colours, never motion.
    assert np.array_equal(Clip.random(7, kind, textured=True).flow(0.1, 0.8, 64), clip.flow(0.1, 0.8, 64))


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(InbetweenError) as raised:
        Clip.random(0, "wobble")
    assert "'wobble'" in str(raised.value) and all(kind in str(raised.value) for kind in CLIP_KINDS)


def test_translation_flow_equals_the_measured_displacement():
    clip = Clip.random(2, "translate", textured=False)
    frames = [clip.render(t, SIDE) for t in (0.25, 0.75)]
    layers = clip.layer_map(0.25, SIDE)
    assert layers.max() == 1  # one object, fully inside the frame at both times
    background, colour = tuple(frames[0][0, 0]), tuple(frames[0][layers == 1][0])
    shift = np.subtract(*[centroid(np.clip(coverage_of(f, background, colour), 0, 1)) for f in frames[::-1]])
    assert np.hypot(*shift) > 10
    flow = clip.flow(0.25, 0.75, SIDE)
    np.testing.assert_allclose(flow[:, layers == 1], shift[:, None].repeat((layers == 1).sum(), 1), atol=0.1)
    assert np.all(flow[:, layers == 0] == 0)


@pytest.mark.parametrize("seed", range(4))
def test_large_kind_moves_at_least_half_a_frame(seed):
    clip = Clip.random(seed, "large")
    magnitude = np.hypot(*clip.flow(0.0, 1.0, SIDE))
    objects = clip.layer_map(0.0, SIDE) > 0
    assert objects.any() and np.all(magnitude[objects] >= 0.5 * SIDE)


def test_texture_kind_moves_a_few_pixels_on_a_panning_background():
    for seed in range(4):
        flow = Clip.random(seed, "texture").flow(0.0, 1.0, SIDE)
        magnitude = np.hypot(*flow)
        assert 1 < np.median(magnitude) < 6 and magnitude.max() < 10  # background pans, objects drift


def test_occluded_pixels_keep_their_layers_motion():
    clip = Clip.random(0, "occlusion", textured=False)
    layers, visible = clip.layer_map(0.3, SIDE), clip.visible_mask(0.3, 0.5, SIDE)
    flow = clip.flow(0.3, 0.5, SIDE)
    back = layers == 1
    hidden = back & ~visible
    assert hidden.sum() > 20 and visible[layers == 2].all()  # the back object slides under the front one
    assert np.ptp(flow[:, back], axis=1).max() < 1e-3  # pure translation: one vector for the whole layer
    assert np.abs(flow[:, back].mean(1)).max() > 1


def test_visible_mask_drops_pixels_that_leave_the_frame():
    clip = Clip.random(0, "large", textured=False)
    flow = clip.flow(0.0, 1.0, SIDE)
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    leaves = (x + flow[0] < 0) | (x + flow[0] >= SIDE) | (y + flow[1] < 0) | (y + flow[1] >= SIDE)
    assert not clip.visible_mask(0.0, 1.0, SIDE)[leaves].any()


def test_clip_frames_are_typed_and_sized():
    clip = Clip.random(3, "arc")
    assert clip.render(0.5, 48, 80).shape == (48, 80, 3) and clip.render(0.5, 48, 80).dtype == np.uint8
    assert clip.flow(0.0, 1.0, 48, 80).shape == (2, 48, 80) and clip.flow(0.0, 1.0, 48, 80).dtype == np.float32
    assert clip.visible_mask(0.0, 1.0, 48, 80).dtype == bool
    assert clip.layer_map(0.0, 48, 80).shape == (48, 80)


# --- datasets ---------------------------------------------------------------------------------


def test_caption_image_dataset_is_deterministic_per_index():
    dataset = CaptionImageDataset(length=20, size=32, seed=5)
    caption, image = dataset[3]
    assert len(dataset) == 20 and image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert -1 <= image.min() and image.max() <= 1
    again = CaptionImageDataset(length=20, size=32, seed=5)[3]
    assert caption == again[0] and torch.equal(image, again[1])
    assert torch.equal(image, render_caption(caption, 32))
    assert len({dataset[i][0] for i in range(20)}) > 15
    with pytest.raises(IndexError):
        dataset[20]


def test_clip_frames_dataset_is_deterministic_per_index():
    times = (0.0, 0.5, 1.0)
    dataset = ClipFramesDataset(length=16, size=32, times=times, seed=2)
    item = dataset[5]
    assert item["frames"].shape == (3, 3, 32, 32) and item["frames"].dtype == torch.float32
    assert -1 <= item["frames"].min() and item["frames"].max() <= 1
    assert torch.equal(item["times"], torch.tensor(times))
    assert item["flow_first_to_last"].shape == (2, 32, 32) and item["flow_first_to_last"].dtype == torch.float32
    assert [dataset[i]["kind"] for i in range(8)] == list(CLIP_KINDS)
    again = ClipFramesDataset(length=16, size=32, times=times, seed=2)[5]
    assert all(torch.equal(item[key], again[key]) for key in ("frames", "times", "flow_first_to_last"))
    other = ClipFramesDataset(length=16, size=32, times=times, seed=3)[5]
    assert not torch.equal(item["frames"], other["frames"])
    assert ClipFramesDataset(4, 32, times, kinds=("rotate",))[3]["kind"] == "rotate"
    with pytest.raises(InbetweenError, match="wobble"):
        ClipFramesDataset(4, 32, times, kinds=("wobble",))


def test_every_kind_gives_each_kind_in_turn_from_consecutive_seeds():
    clips = list(Clip.every_kind(2, seed=1_000_000))
    assert [(kind, index) for kind, index, _ in clips] == [(kind, i) for kind in CLIP_KINDS for i in range(2)]
    for position, (kind, _, clip) in enumerate(clips):
        assert np.array_equal(clip.render(0.5, 32), Clip.random(1_000_000 + position, kind).render(0.5, 32))
