"""The temporal diffusion interpolator's parts: network, tiling, conditioning, data, training."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import default_collate

from checkpoints import shipped
from flow import DISFlow
from inbetween.errors import InbetweenError
from inbetween.video import find_videos, from_uint8, read_video
from inbetween.warp import backward_warp
from inbetween.world import Clip
from interpolate import DiffusionInterpolator, FlowWarpInterpolator
from interpolate.classical import AGREEMENT_MARGIN, AGREEMENT_TEMPERATURE
from interpolate.diffusion import COND_CHANNELS, OUTPUT_CHANNELS, InterpolatorModel, still_pixels
from interpolate.tiling import run_tiled, tile_starts
from interpolate.training import (EVALUATION_SEEDS_START, InterpolationClips, InterpolatorTask, _clip_sequence,
                                  batch_conditioning, visible_share)
from interpolate.unet import TemporalUNet
from tests.conftest import SHARED_DATA, run_cli

TINY_UNET = {"patch": 2, "channels": [16, 24], "temporal": [False, True], "heads": 2, "refine_channels": 8}
TINY_CONFIG = {"unet": TINY_UNET, "schedule": "cosine", "residual_scale": 5.0, "flow_scale": 32.0}


def randomised(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` with every parameter redrawn (zero-initialised branches would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return module


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_interpolator")
    model = InterpolatorModel.build(TINY_CONFIG)
    randomised(model.unet)
    model.save(folder)
    return folder


def world_pair(size: tuple[int, int] = (64, 64), kind: str = "large", seed: int = 3):
    clip = Clip.random(seed, kind)
    left, right = (from_uint8(clip.render(t, *size))[None] for t in (0.0, 1.0))
    return left, right, *DISFlow().bidirectional(left, right)


def test_unet_any_frames_and_padding_frames_change_nothing():
    net = randomised(TemporalUNet(COND_CHANNELS, OUTPUT_CHANNELS, **TINY_UNET)).eval()
    x, cond = torch.randn(2, 3, 3, 32, 48), torch.randn(2, 3, COND_CHANNELS, 32, 48)
    times, t = torch.tensor([[0.25, 0.5, 0.75]] * 2), torch.tensor([10, 900])
    with torch.no_grad():
        assert net(x, t, cond, times).shape == (2, 3, OUTPUT_CHANNELS, 32, 48)
        assert net(x[:, :1], t, cond[:, :1], times[:, :1]).shape == (2, 1, OUTPUT_CHANNELS, 32, 48)
        two = net(x[:, :2], t, cond[:, :2], times[:, :2])
        padded = net(x, t, cond, times, frame_mask=torch.tensor([[True, True, False]] * 2))[:, :2]
        unmasked = net(x, t, cond, times)[:, :2]
    torch.testing.assert_close(padded, two, atol=1e-5, rtol=1e-5)
    assert (unmasked - two).abs().max() > 1e-3  # the third frame is seen when it is not masked
    with pytest.raises(ValueError, match="multiple of 4"):
        net(x[..., :30, :], t, cond[..., :30, :], times)
    with pytest.raises(ValueError, match=r"temporal \[False\] need one entry per level"):
        TemporalUNet(COND_CHANNELS, OUTPUT_CHANNELS, channels=[16, 24], temporal=[False])


def test_tile_starts_cover_with_overlap_and_alignment():
    for length, tile, overlap in [(1080, 256, 64), (1920, 256, 64), (300, 128, 32), (96, 128, 32)]:
        padded = -(-length // 16) * 16
        starts = tile_starts(padded, tile, overlap, align=16)
        assert starts[0] == 0 and starts[-1] + min(tile, padded) == padded
        assert all(start % 16 == 0 for start in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_run_tiled_matches_a_local_operator_exactly():
    conv = nn.Conv2d(3, 3, 9, padding=4, padding_mode="replicate")
    image = torch.randn(1, 3, 100, 140)
    with torch.no_grad():
        whole = conv(image)
        tiled = run_tiled(conv, [image], tile=48, overlap=16)
    inner = (..., slice(4, -4), slice(4, -4))  # the image border sees replicate padding either way
    torch.testing.assert_close(tiled[inner], whole[inner], atol=1e-5, rtol=1e-5)


def test_conditioning_blend_is_flow_warp_and_times_are_per_item():
    left, right, flow_lr, flow_rl = world_pair()
    warper = FlowWarpInterpolator()
    model = InterpolatorModel.build(TINY_CONFIG)
    times = torch.tensor([[0.25, 0.5]])
    blend, cond = model.conditioning(left, right, flow_lr, flow_rl, times)
    assert blend.shape == (1, 2, 3, 64, 64) and cond.shape == (1, 2, COND_CHANNELS, 64, 64)
    expected = warper(left, right, flow_lr, flow_rl, [0.25, 0.5])
    torch.testing.assert_close(blend, expected)
    torch.testing.assert_close(cond[:, :, :3], blend)


def test_synthesis_is_the_blend_at_zero_and_follows_corrected_flows():
    """Zero output gives flow warping exactly; flows corrected to the exact ones give the true frame."""
    clip = Clip.random(5, "ease")  # smoothstep timing: linear flow puts the object in the wrong place
    left, middle, right = (from_uint8(clip.render(t, 64))[None] for t in (0.0, 0.3, 1.0))
    flow_lr, flow_rl = DISFlow().bidirectional(left, right)
    model = InterpolatorModel.build(TINY_CONFIG)
    times = torch.tensor([[0.3]])
    blend, cond = model.conditioning(left, right, flow_lr, flow_rl, times)
    output = torch.zeros(1, 1, OUTPUT_CHANNELS, 64, 64)
    assert model.synthesise(output, cond, times).x0.abs().max() < 1e-5
    exact = torch.from_numpy(np.concatenate([clip.flow(0.3, t, 64) for t in (0.0, 1.0)]))
    output[0, 0, :4] = exact / 32.0 - cond[0, 0, 17:21]
    answer = model.synthesise(output, cond, times)
    torch.testing.assert_close(answer.flow_t0[0, 0], exact[:2])
    frame = model.frames(blend, answer.x0)

    def error(x):
        return (x[0, 0] - middle[0]).square().mean()

    assert error(frame) < 0.5 * error(blend)


def test_same_seed_same_frames_other_seed_other_frames(tiny_folder):
    left, right, flow_lr, flow_rl = world_pair((48, 40))  # not a multiple of 4: padded and cropped
    make = lambda seed: DiffusionInterpolator(str(tiny_folder), steps=4, seed=seed)  # noqa: E731
    frames = make(1)(left, right, flow_lr, flow_rl, [0.3, 0.6])
    assert frames.shape == (1, 2, 3, 48, 40) and frames.abs().max() <= 1
    torch.testing.assert_close(make(1)(left, right, flow_lr, flow_rl, [0.3, 0.6]), frames, atol=0, rtol=0)
    assert (make(2)(left, right, flow_lr, flow_rl, [0.3, 0.6]) - frames).abs().max() > 1e-3
    assert make(1)(left, right, flow_lr, flow_rl, []).shape == (1, 0, 3, 48, 40)


def test_a_hold_is_copied_exactly_and_leaves_the_other_gaps_of_a_batch_alone(tiny_folder):
    left, right, flow_lr, flow_rl = world_pair((32, 32))
    interpolator = DiffusionInterpolator(str(tiny_folder), steps=2)
    held = interpolator(left, left, *DISFlow().bidirectional(left, left), [0.25, 0.5])
    torch.testing.assert_close(held, left[:, None].expand(-1, 2, -1, -1, -1), atol=0, rtol=0)
    moving = interpolator(torch.cat([right, left]), torch.cat([right, right]), torch.cat([flow_lr * 0, flow_lr]),
                          torch.cat([flow_rl * 0, flow_rl]), [0.25, 0.5])
    alone = interpolator(torch.cat([left, left]), torch.cat([right, right]), torch.cat([flow_lr, flow_lr]),
                         torch.cat([flow_rl, flow_rl]), [0.25, 0.5])
    torch.testing.assert_close(moving[0], right[0].expand(2, -1, -1, -1), atol=0, rtol=0)
    torch.testing.assert_close(moving[1], alone[1])
    assert (moving[1] - left).abs().max() > 1e-2  # sampled, not copied


def test_still_pixels_keep_flow_warps_frame_and_moving_ones_the_models(tiny_folder):
    left, right, flow_lr, flow_rl = world_pair((32, 32))
    right[..., :, 16:] = left[..., :, 16:]  # the right half of the picture does not change
    flow_lr[..., 16:], flow_rl[..., 16:] = 0, 0
    blend = FlowWarpInterpolator()(left, right, flow_lr, flow_rl, [0.5])
    gated, ungated = (DiffusionInterpolator(str(tiny_folder), still_levels=levels)(left, right, flow_lr, flow_rl, [0.5])
                      for levels in (8, None))
    still = still_pixels(left, right, blend, 8)[0, 0, 0]
    assert still[..., 20:].all() and not still.all()
    torch.testing.assert_close(gated[..., still], blend[..., still], atol=0, rtol=0)
    torch.testing.assert_close(gated[..., ~still], ungated[..., ~still], atol=0, rtol=0)
    assert (ungated - blend)[..., still].abs().max() > 1e-2
    with pytest.raises(InbetweenError, match="still_levels must be 0 or more"):
        DiffusionInterpolator(str(tiny_folder), still_levels=-1)


def test_blend_with_dis_mixes_in_flow_warp_along_dis_where_its_warps_agree_better(tiny_folder):
    # A smooth random texture moving 5 px to the right: DIS finds the motion and its warps agree.
    texture = F.avg_pool2d(torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0)) * 5 - 2.5, 5, 1, 2)
    left, right = texture[..., 8:72].clamp(-1, 1), texture[..., 3:67].clamp(-1, 1)
    dis_lr, dis_rl = DISFlow().bidirectional(left, right)
    plain, blending = (DiffusionInterpolator(str(tiny_folder), blend_with_dis=mix) for mix in (False, True))
    along_dis = FlowWarpInterpolator()(left, right, dis_lr, dis_rl, [0.5])
    # Given DIS's own flow both renderings' warps agree alike, and the margin weighs the model's frame
    # 1 / (1 + exp(-margin / temperature)).
    share = 1 / (1 + np.exp(-AGREEMENT_MARGIN / AGREEMENT_TEMPERATURE))
    torch.testing.assert_close(blending(left, right, dis_lr, dis_rl, [0.5]),
                               share * plain(left, right, dis_lr, dis_rl, [0.5]) + (1 - share) * along_dis)
    # Given no flow the model's warps disagree everywhere, and flow warping along DIS takes over.
    still = torch.zeros_like(dis_lr)
    mixed, unmixed = (interpolator(left, right, still, still, [0.5]) for interpolator in (blending, plain))
    assert (mixed - along_dis).abs().mean() < 0.05 * (unmixed - along_dis).abs().mean()


def test_bad_settings_are_clear_errors(tiny_folder, tmp_path):
    with pytest.raises(InbetweenError, match="not an interpolator model folder"):
        DiffusionInterpolator(str(tmp_path))
    with pytest.raises(InbetweenError, match="tile must be a multiple of 4"):
        DiffusionInterpolator(str(tiny_folder), tile=30)
    interpolator = DiffusionInterpolator(str(tiny_folder))
    left, right, *_ = world_pair()
    with pytest.raises(InbetweenError, match="needs flow"):
        interpolator(left, right, None, None, [0.5])
    with pytest.raises(InbetweenError, match=r"\[0, 1\]"):
        interpolator(left, right, *world_pair()[2:], [1.5])


def test_model_folder_is_safetensors_and_round_trips(tiny_folder):
    loaded = InterpolatorModel.load(tiny_folder)
    stored = load_file(str(tiny_folder / "denoiser.safetensors"))
    assert all(tensor.dtype == torch.float16 for tensor in stored.values())
    for name, tensor in loaded.unet.state_dict().items():
        torch.testing.assert_close(tensor, stored[name].float())


def test_training_items_are_reproducible_masked_and_never_evaluation_clips():
    options = dict(size=32, frames=3, world_items=16, world_gaps=(2, 8))
    data, again = InterpolationClips(DISFlow(), **options), InterpolationClips(DISFlow(), **options)
    gaps_seen = set()
    for index in range(len(data)):
        item = data[index]
        for key, value in item.items():
            torch.testing.assert_close(value, again[index][key], atol=0, rtol=0)
        real = int(item["mask"].sum())
        assert 1 <= real <= 3 and bool(item["mask"][:real].all()) and not item["mask"][real:].any()
        assert item["keys"].shape == (2, 3, 32, 32) and item["flows"].shape == (2, 2, 32, 32)
        times = item["times"][:real]
        assert bool((times > 0).all() and (times < 1).all() and (times.diff() > 0).all())
        gaps_seen.add(real)
    assert gaps_seen == {1, 2, 3}
    with pytest.raises(InbetweenError, match="below"):
        InterpolationClips(DISFlow(), world_items=EVALUATION_SEEDS_START + 1)


def time_coded_render(t: float) -> np.ndarray:
    """A flat 8x8 frame whose value is ``t`` in 1/240ths: each frame says when it was rendered."""
    return np.full((8, 8, 3), round(t * 240), np.uint8)


def test_shot_sequences_are_a_gap_of_four_keyframes_with_the_keyframes_beyond():
    places = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        sequence, offsets, gap, _, (before, after) = _clip_sequence(
            time_coded_render, lambda t0, t1: (np.zeros((2, 8, 8), np.float32), np.ones((8, 8), bool)),
            rng, 9, (2, 8), 3, shot=True)
        left, right = int(sequence[0, 0, 0, 0]), int(sequence[gap, 0, 0, 0])
        assert right - left == 80 and left in (0, 80, 160)  # one of the gaps of keyframes at t = 0, 1/3, 2/3, 1
        assert [int(sequence[k, 0, 0, 0]) for k in offsets] == [left + round(80 * k / gap) for k in offsets]
        assert (before is None) == (left == 0) and (after is None) == (right == 240)
        assert before is None or int(before[0, 0, 0]) == left - 80
        assert after is None or int(after[0, 0, 0]) == right + 80
        places.add(left)
    assert places == {0, 80, 160}


def test_video_shot_items_take_the_frames_a_gap_before_and_after():
    """Frames coded by their index: the keyframes beyond a gap are the video's frames one gap before the left
    keyframe and one after the right, also when the item is played backwards."""
    data = InterpolationClips(DISFlow(), size=8, frames=2, world_items=0, neighbour_share=1.0)
    data.video_items, data.strides = 40, (2, 4)
    data.videos = [np.broadcast_to(np.arange(30, dtype=np.uint8)[:, None, None, None] * 8, (30, 8, 8, 3))]
    patterns = set()
    for index in range(40):
        item = data[index]
        left, right = (int(key[0, 0, 0]) // 8 for key in item["keys"])
        step = right - left  # negative when played backwards
        assert 2 <= abs(step) <= 4
        for side, (expected, present) in enumerate(zip((left - step, right + step), item["beyond_known"].tolist())):
            image = item["beyond"][side]
            assert int(image[0, 0, 0]) // 8 == expected if present else not image.any()
        patterns.add(tuple(item["beyond_known"].tolist()))
    assert patterns == {(True, True), (True, False), (False, True)}


def test_a_batch_of_items_with_and_without_neighbours_is_conditioned_item_by_item():
    data = InterpolationClips(DISFlow(), size=32, frames=2, world_items=12, neighbour_share=0.7)
    items = [data[index] for index in range(12)]
    assert len({tuple(item["beyond_known"].tolist()) for item in items}) >= 3
    model = InterpolatorModel.build(TINY_CONFIG)
    blend, cond = batch_conditioning(model, default_collate(items))
    for row, item in enumerate(items):
        alone = batch_conditioning(model, default_collate([item]))
        torch.testing.assert_close(blend[row], alone[0][0])
        torch.testing.assert_close(cond[row], alone[1][0])
        if item["beyond_known"].any():
            straight = model.conditioning(*(from_uint8(key.permute(1, 2, 0))[None] for key in item["keys"]),
                                          *item["flows"][:, None], item["times"][None])
            assert (straight[1][0] - cond[row]).abs().max() > 1e-3
    with pytest.raises(InbetweenError, match="neighbour_share"):
        InterpolationClips(DISFlow(), neighbour_share=1.5)


class CountingFlow(DISFlow):
    """DIS that counts its calls."""

    calls = 0

    def bidirectional(self, first, second):
        CountingFlow.calls += 1
        return super().bidirectional(first, second)


def test_training_items_are_read_back_from_the_cache_without_recomputing(tmp_path):
    options = dict(size=32, frames=2, world_items=3, cache=str(tmp_path / "items"))
    made = InterpolationClips(CountingFlow(), **options)
    items = [made[index] for index in range(3)]
    assert CountingFlow.calls == 3
    (folder,) = (tmp_path / "items").iterdir()
    assert sorted(path.name for path in folder.iterdir()) == ["0000000.pt", "0000001.pt", "0000002.pt"]
    for index, item in enumerate(items):  # a new run (same options, same flow) reads them back
        for key, value in InterpolationClips(CountingFlow(), **options)[index].items():
            torch.testing.assert_close(value, item[key], atol=0, rtol=0)
    assert CountingFlow.calls == 3
    InterpolationClips(CountingFlow(preset="fast"), **options)[0]  # other flow settings: another folder
    InterpolationClips(CountingFlow(), **{**options, "seed": 1})[0]  # other data options likewise
    assert CountingFlow.calls == 5 and len(list((tmp_path / "items").iterdir())) == 3


@pytest.mark.parametrize("source, margin", [("world", 0.3), ("layered", 0.2)])
def test_exact_flows_lead_each_in_between_back_to_both_keyframes(source, margin):
    """Through the mirror and play-backwards augmentations, ``exact_flows`` of world and layered photo
    items stay the true flows and ``exact_visible`` says where following them reaches the same
    surface in the keyframe. ``margin``: how many more moving pixels the warp matches than the
    keyframe left in place (photographs have smooth regions that match unmoved)."""
    if source == "layered" and not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data/real")
    items = dict(world_items=16) if source == "world" else dict(
        world_items=0, layered_items=16, photos=str(SHARED_DATA / "train" / "photos"))
    data = InterpolationClips(DISFlow(), size=64, frames=3, world_gaps=(4, 8), **items)
    warped_hits, still_hits = [], []  # per item and keyframe: moving pixels the keyframe matches within 0.1
    visible_hits, hidden_hits = [], []  # pixels the warped keyframe matches, where visible / hidden there
    for index in range(len(data)):
        item = data[index]
        real = int(item["mask"].sum())
        assert bool(item["exact_known"][:real].all()) and not item["exact_known"][real:].any()
        truth, keys = (pixels.float() / 127.5 - 1 for pixels in (item["truth"][:real], item["keys"]))
        exact = item["exact_flows"][:real].float()
        for side, (key, flow) in enumerate(((keys[0], exact[:, 0:2]), (keys[1], exact[:, 2:4]))):
            moved = (flow.norm(dim=1, keepdim=True) > 1).expand_as(truth)
            warped = backward_warp(key.expand(real, -1, -1, -1), flow)
            hit = ((warped - truth).abs() < 0.1).all(dim=1)
            warped_hits.append(((warped - truth).abs() < 0.1)[moved].float().mean())
            still_hits.append(((key - truth).abs() < 0.1)[moved].float().mean())
            visible = item["exact_visible"][:real, side]
            visible_hits.append(hit[visible].float().mean())
            if (~visible).sum() > 20:
                hidden_hits.append(hit[~visible].float().mean())
    assert min(warped_hits) > 0.75  # occlusions and leaving the frame account for the rest
    assert np.mean(warped_hits) - np.mean(still_hits) > margin
    assert min(visible_hits) > 0.9 and len(hidden_hits) > 4 and np.mean(hidden_hits) < np.mean(visible_hits) - 0.5


def test_visible_share_takes_the_keyframe_that_shows_the_pixel():
    """Both keyframes show it: the plain (1 - t, t) mix; one does: all of it; neither: undefined."""
    left, right = [True, True, False, False], [True, False, True, False]  # one pixel per case
    visible = torch.tensor([left, right]).view(1, 1, 2, 4, 1)  # (B, T, 2, H, W)
    share, seen = visible_share(visible, torch.tensor([[0.25]]))
    torch.testing.assert_close(share.flatten(), torch.tensor([0.75, 1.0, 0.0, 0.0]))
    assert seen.flatten().tolist() == [True, True, True, False]


def test_log_mse_image_loss_is_mean_psnr_per_item_and_ignores_padding():
    """An item whose frames are 50 dB from the truth costs log(2); one at 30 dB costs log(101). Each
    item weighs the same however large its error (plain mse: the 30 dB item is all of the loss);
    padded frames count for nothing."""
    residual_scale = 5.0
    x0_error_at = {psnr: 2 * residual_scale * 10 ** (-psnr / 20) for psnr in (50, 30)}  # [0, 1] units -> x0
    squared = torch.stack([torch.full((2, 3, 4, 4), x0_error_at[50] ** 2), torch.full((2, 3, 4, 4), x0_error_at[30] ** 2)])
    squared[:, 1] = 1e3  # padding
    weight = torch.tensor([[1.0, 0.0], [1.0, 0.0]])[:, :, None, None, None]
    log_mse = InterpolatorTask(DISFlow(), residual_scale=residual_scale)._image_loss(squared, weight)
    torch.testing.assert_close(log_mse, torch.tensor((np.log(2) + np.log(101)) / 2, dtype=torch.float32))
    plain = InterpolatorTask(DISFlow(), residual_scale=residual_scale, image_loss="mse")._image_loss(squared, weight)
    torch.testing.assert_close(plain, torch.tensor((x0_error_at[50] ** 2 + x0_error_at[30] ** 2) / 2))
    with pytest.raises(InbetweenError, match="image_loss must be one of"):
        InterpolatorTask(DISFlow(), image_loss="l1")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data/real")
def test_video_items_skip_the_frames_evaluation_uses():
    """``videos`` are read from ``video_skip_frames`` on, ``training_videos`` whole; both are kept to
    ``video_max_frames`` frames, shrunk to a short side of ``video_short_side``."""
    data = InterpolationClips(DISFlow(), size=64, world_items=0, video_items=4, videos=[str(SHARED_DATA / "videos")],
                              training_videos=[str(SHARED_DATA / "train" / "videos")], video_skip_frames=64,
                              video_short_side=96, video_max_frames=12)
    evaluation_videos = find_videos([SHARED_DATA / "videos"], "videos")
    training_videos = find_videos([SHARED_DATA / "train" / "videos"], "training_videos")
    assert len(data.videos) == len(evaluation_videos) + len(training_videos) == 12
    for path, frames in zip(evaluation_videos + training_videos, data.videos):
        first = read_video(path, max_frames=65)[64 if path in evaluation_videos else 0]
        scale = 96 / min(first.shape[:2])
        expected = cv2.resize(first, (round(first.shape[1] * scale), round(first.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA)
        assert len(frames) == 12 and min(frames.shape[1:3]) == 96
        np.testing.assert_array_equal(frames[0], expected)
    assert data[3]["keys"].shape == (2, 3, 64, 64)
    with pytest.raises(InbetweenError, match="needs task.data.videos or task.data.training_videos"):
        InterpolationClips(DISFlow(), world_items=0, video_items=4)


def tiny_training(output, steps: int):
    overrides = ["stage=interpolator", f"trainer.steps={steps}", "trainer.batch_size=4", "trainer.warmup_steps=1",
                 "trainer.checkpoint_every=2", "trainer.sample_every=100", "trainer.log_every=1",
                 "task.data.size=32", "task.data.world_items=8", "task.data.layered_items=0", "task.data.video_items=0",
                 "task.data.frames=2",
                 "task.unet.patch=2", "task.unet.channels=[16,24]", "task.unet.temporal=[false,true]",
                 "task.unet.heads=2", "task.unet.refine_channels=8", "task.grid_clips=1", f"output_dir={output}"]
    return run_cli("train", *overrides, cwd=output.parent)


def test_training_stopped_and_resumed_ends_with_the_same_weights(tmp_path):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert tiny_training(whole, 4).returncode == 0
    assert tiny_training(halves, 2).returncode == 0
    resumed = tiny_training(halves, 4)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed interpolator at step 2" in resumed.stdout + resumed.stderr
    assert (halves / "model" / "denoiser.safetensors").read_bytes() == (whole / "model" / "denoiser.safetensors").read_bytes()
    loaded = DiffusionInterpolator(str(whole / "model"))
    left, right, flow_lr, flow_rl = world_pair((32, 32))
    assert loaded(left, right, flow_lr, flow_rl, [0.5]).shape == (1, 1, 3, 32, 32)


def test_training_starts_from_a_model_folder_with_the_same_settings(tiny_folder):
    model = InterpolatorTask(DISFlow(), unet=TINY_UNET, init=str(tiny_folder)).build_model()
    saved = InterpolatorModel.load(tiny_folder).unet.state_dict()
    assert model.training and all(parameter.requires_grad for parameter in model.parameters())
    assert all(torch.equal(tensor, saved[key]) for key, tensor in model.state_dict().items())
    other = InterpolatorTask(DISFlow(), unet={**TINY_UNET, "refine_channels": 4}, init=str(tiny_folder))
    with pytest.raises(InbetweenError, match="task.init"):
        other.build_model()


def test_the_shipped_model_is_the_default_and_training_can_go_on_from_it():
    stage = yaml.safe_load((Path(__file__).parents[1] / "conf" / "stage" / "interpolator.yaml").read_text())["task"]
    settings = {key: stage[key] for key in ("unet", "schedule", "residual_scale", "flow_scale")}
    network = InterpolatorTask(DISFlow(), **settings, init=str(shipped("interpolator"))).build_model()
    default = DiffusionInterpolator(steps=1)
    saved = default.model.unet.state_dict()
    assert all(torch.equal(tensor, saved[key]) for key, tensor in network.state_dict().items())
    left, right, flow_lr, flow_rl = world_pair((32, 32))
    assert default(left, right, flow_lr, flow_rl, [0.5]).shape == (1, 1, 3, 32, 32)


def test_tiled_inference_matches_untiled_on_a_mid_size_frame(tiny_folder):
    left, right, flow_lr, flow_rl = world_pair((160, 224), kind="texture")
    # fp32: bf16 rounding differs between tile layouts, and random weights turn it into large flow changes
    whole = DiffusionInterpolator(str(tiny_folder), tile=256, overlap=0, precision="fp32")
    tiled = DiffusionInterpolator(str(tiny_folder), tile=96, overlap=48, precision="fp32")
    whole, tiled = (method(left, right, flow_lr, flow_rl, [0.5]) for method in (whole, tiled))
    blend = FlowWarpInterpolator()(left, right, flow_lr, flow_rl, [0.5])
    change = (whole - blend).abs().mean()  # what the network adds to flow warping
    assert change > 0.01
    assert (tiled - whole).abs().mean() < 0.05 * change
    assert 10 * torch.log10(4 / (tiled - whole).square().mean()) > 40  # PSNR of tiled against untiled, dB


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data/real")
def test_evaluate_scores_a_trained_folder_beside_the_baselines_with_flow_epe(tiny_folder, tmp_path):
    output = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[world]", "world.gaps=[4]", "world.clips_per_kind=1", "world.size=32",
                     "methods=[flow_warp,diffusion]", f"+method_options.diffusion.checkpoint={tiny_folder}",
                     f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["method"]: row for row in csv.DictReader(open(output / "eval_world.csv")) if row["subset"] == "all"}
    assert set(rows) == {"flow_warp", "diffusion"}
    assert float(rows["diffusion"]["flow_epe"]) == pytest.approx(float(rows["flow_warp"]["flow_epe"]))
    assert float(rows["flow_warp"]["flow_epe"]) > 0
    result = run_cli("evaluate", "datasets=[world]", "+method_options.magic.checkpoint=x", f"output_dir={output}",
                     cwd=tmp_path)
    assert result.returncode == 2 and "options are given for magic" in result.stderr
