"""The learned flow stage (flow.learned): global matching, any frame size, model folders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from flow import DISFlow, endpoint_error
from flow.learned import (LearnedFlow, LocalRefiner, MatchingFlowNet, fuse_flows, global_matching, local_correlation,
                          save_network)
from flow.training import FlowTask, endpoint_loss
from inbetween.errors import InbetweenError
from inbetween.flow_eval import read_flo
from inbetween.video import from_uint8
from inbetween.world import Clip
from tests.conftest import SHARED_DATA, load_run, run_cli, textured_frames

OPTIONS = {"encoder_channels": [8, 8, 16], "channels": 16, "layers": 1, "heads": 2, "refine_channels": 8}
LOCAL = {"channels": 8, "radius": 1, "hidden": 8, "iterations": 2}


def test_global_matching_finds_a_match_however_far_it_moved():
    height, width = 4, 6
    tokens0 = torch.eye(height * width)[None] * 20  # every pixel unlike every other
    rows, cols = np.mgrid[0:height, 0:width]
    moved = ((rows + 3) % height) * width + (cols + 5) % width  # pixel p of image 0 is at moved[p] in image 1
    tokens1 = torch.zeros_like(tokens0)
    tokens1[0, torch.from_numpy(moved.reshape(-1))] = tokens0[0]
    flow_01, flow_10 = global_matching(tokens0, tokens1, height, width)
    expected = np.stack([(cols + 5) % width - cols, (rows + 3) % height - rows], axis=-1).reshape(1, -1, 2)
    assert torch.allclose(flow_01, torch.from_numpy(expected).float(), atol=1e-3)
    assert torch.allclose(flow_10[0, torch.from_numpy(moved.reshape(-1))], -flow_01[0], atol=1e-3)


def test_local_correlation_peaks_at_the_offset_the_features_moved_by():
    features0 = torch.randn(1, 16, 12, 10)
    features1 = torch.roll(features0, shifts=(1, -2), dims=(2, 3))  # pixel p of 0 is at p + (dx, dy) = (-2, 1) in 1
    correlation = local_correlation(features0, features1, radius=2)
    assert correlation.shape == (1, 25, 12, 10)
    offset = (1 + 2) * 5 + (-2 + 2)  # row-major from (-2, -2)
    inside = correlation[..., 2:-2, 2:-2]
    assert (inside.argmax(dim=1) == offset).all()
    expected = (features0[..., 4:8, 4:6] * features1[..., 5:9, 2:4]).sum(1) / 4
    assert torch.allclose(correlation[0, offset, 4:8, 4:6], expected[0], atol=1e-5)


def test_local_refiner_starts_from_the_flow_it_is_given():
    """Its residual head starts at zero, so before training it hands back a smooth flow unchanged (away
    from the border, where convex upsampling mixes in zero flow until its masks learn to leave it out)."""
    torch.manual_seed(0)
    refiner = LocalRefiner(**LOCAL)
    image0, image1 = torch.rand(2, 1, 3, 32, 48) * 2 - 1
    flows = (torch.full((1, 2, 32, 48), 3.5), torch.full((1, 2, 32, 48), -3.5))
    outputs = refiner(image0, image1, flows)
    assert len(outputs) == LOCAL["iterations"]
    for refined, given in zip(outputs[-1], flows):
        assert torch.allclose(refined[..., 4:-4, 4:-4], given[..., 4:-4, 4:-4], atol=1e-5)


def test_train_only_names_parts_the_network_has():
    with pytest.raises(InbetweenError, match=r"task.train_only names \['locl'\].*choose among \[.*'local'"):
        FlowTask("photos", network={**OPTIONS, "local": LOCAL}, train_only=["locl"]).build_model()


def test_endpoint_loss_is_the_mean_vector_length_on_the_predictions_grid():
    prediction, truth = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    assert endpoint_loss(prediction, truth) == pytest.approx((prediction - truth).norm(dim=1).mean().item(), rel=1e-5)
    constant = torch.full((1, 2, 16, 16), 8.0)
    assert endpoint_loss(torch.full((1, 2, 4, 4), 2.0), constant) == pytest.approx(0.0, abs=1e-5)  # 8 px is 2 px at 1/4


def _tiny_folder(tmp_path_factory, options):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("flow") / "model"
    save_network(MatchingFlowNet(**options), options, folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return _tiny_folder(tmp_path_factory, OPTIONS)


@pytest.fixture(scope="module")
def tiny_local_folder(tmp_path_factory):
    return _tiny_folder(tmp_path_factory, {**OPTIONS, "local": LOCAL})


@pytest.mark.parametrize("folder", ["tiny_folder", "tiny_local_folder"])
@pytest.mark.parametrize("height, width", [(37, 53), (64, 64), (200, 120)])
def test_any_size_gives_both_flows_at_that_size_and_same_input_same_flow(request, folder, height, width):
    estimator = LearnedFlow(str(request.getfixturevalue(folder)), max_tokens=64)  # 200x120 is matched downsampled
    image0, image1 = torch.rand(2, 1, 3, height, width) * 2 - 1
    flow_01, flow_10 = estimator.bidirectional(image0, image1)
    assert flow_01.shape == flow_10.shape == (1, 2, height, width)
    assert torch.isfinite(flow_01).all() and torch.equal(flow_01, estimator(image0, image1))


def test_bad_folder_and_options_are_clear(tmp_path, tiny_folder):
    with pytest.raises(InbetweenError, match="is not a flow model folder"):
        LearnedFlow(str(tmp_path))
    with pytest.raises(InbetweenError, match="max_tokens must be 16 or more"):
        LearnedFlow(str(tiny_folder), max_tokens=4)
    with pytest.raises(InbetweenError, match=r"unknown refine 'raft'; choose one of \['none', 'dis', 'fuse'\]"):
        LearnedFlow(str(tiny_folder), refine="raft")
    with pytest.raises(InbetweenError, match="fuse_window must be an odd"):
        LearnedFlow(str(tiny_folder), fuse_window=4)
    with pytest.raises(InbetweenError, match="fuse_threshold is a distance in pixels and must be > 0"):
        LearnedFlow(str(tiny_folder), fuse_threshold=0)


def _large_world_pair(seed: int, size: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames 0 and 1 ``(1, 3, size, size)`` of a held-out ``large`` world clip and their true flow ``(1, 2, size, size)``."""
    clip = Clip.random(seed, "large")
    image0, image1 = (from_uint8(clip.render(t, size))[None] for t in (0.0, 1.0))
    return image0, image1, torch.from_numpy(clip.flow(0.0, 1.0, size))[None]


def test_dis_started_from_a_rough_flow_finds_the_large_motion():
    """What ``refine: dis`` rests on: DIS alone loses a texture that moves 30 px; started from a flow
    20% short of it, it finds the motion to the pixel."""
    frame0, frame1 = textured_frames(2, 96, 160, shift=30)
    image0, image1 = from_uint8(frame0)[None], from_uint8(frame1)[None]
    truth = torch.zeros(1, 2, 96, 160)
    truth[:, 0] = 30.0
    rough, dis = 0.8 * truth, DISFlow()
    refined = endpoint_error(dis.refine(image0, image1, rough), truth)
    assert refined < 0.25 * endpoint_error(rough, truth) and refined < 0.1 * endpoint_error(dis(image0, image1), truth)


def test_fusion_takes_the_flow_that_warps_better_and_with_a_threshold_only_where_consistent():
    """A texture panning 30 px. The base pair is 1.5 px short but consistent. The refined forward flow
    is exact; the refined backward flow is exact left of x = 128 and 10 px short from there. So
    forwards the refined flow warps better everywhere (taken, but with a 2 px threshold not where its
    round trip is 10 px: where it lands past x = 128); backwards it warps worse past x = 128."""
    frame0, frame1 = textured_frames(2, 64, 192, shift=30)
    image0, image1 = from_uint8(frame0)[None], from_uint8(frame1)[None]
    truth = torch.zeros(1, 2, 64, 192)
    truth[:, 0] = 30.0
    base = (0.95 * truth, -0.95 * truth)
    refined = (truth, -truth.clone())
    refined[1][:, 0, :, 128:] += 10.0
    by_warp_01, by_warp_10 = fuse_flows(image0, image1, base, refined, window=5)
    fused_01, fused_10 = fuse_flows(image0, image1, base, refined, window=5, threshold=2.0)
    for fused_10_ in (by_warp_10, fused_10):
        assert torch.equal(fused_10_[..., 36:124], -truth[..., 36:124])
        assert torch.equal(fused_10_[..., 132:], base[1][..., 132:])
    assert torch.equal(by_warp_01[..., :160], truth[..., :160])  # further right both land outside
    assert torch.equal(fused_01[..., :96], truth[..., :96]) and torch.equal(fused_01[..., 100:], base[0][..., 100:])
    assert torch.equal(fuse_flows(image0, image1, base, base, 5, 2.0)[0], base[0])  # ties: the base


def test_fusion_with_keep_occluded_gives_what_the_fused_pair_cannot_follow_back_the_base_flow():
    """A texture panning 30 px; the base flows stand still. A refined forward flow that is exact warps
    better and is taken; with ``keep_occluded`` it is given back where the fused pair fails the round
    trip (the backward flow stayed still), and kept where the refined backward flow matches it."""
    frame0, frame1 = textured_frames(2, 64, 192, shift=30)
    image0, image1 = from_uint8(frame0)[None], from_uint8(frame1)[None]
    truth = torch.zeros(1, 2, 64, 192)
    truth[:, 0] = 30.0
    still = (torch.zeros_like(truth), torch.zeros_like(truth))
    one_way = (truth, still[1])
    assert torch.equal(fuse_flows(image0, image1, still, one_way, 5)[0][..., :160], truth[..., :160])
    assert torch.equal(fuse_flows(image0, image1, still, one_way, 5, keep_occluded=True)[0], still[0])
    both_ways = fuse_flows(image0, image1, still, (truth, -truth), 5, keep_occluded=True)
    assert torch.equal(both_ways[0][..., :160], truth[..., :160])
    assert torch.equal(both_ways[1][..., 32:], -truth[..., 32:])


def test_flo_files_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(size=(2, 5, 7)).astype(np.float32)
    path = tmp_path / "f.flo"
    path.write_bytes(np.float32(202021.25).tobytes() + np.int32([7, 5]).tobytes()
                     + flow.transpose(1, 2, 0).tobytes())
    assert np.array_equal(read_flo(path), flow)
    path.write_bytes(b"JPEG" + bytes(8))
    with pytest.raises(InbetweenError, match="not a .flo file"):
        read_flo(path)


@pytest.mark.skipif(not (SHARED_DATA / "flow_gt" / "sintel").is_dir(), reason="needs ../shared/data/real/flow_gt")
def test_evaluate_scores_every_flow_method_on_sintel_and_world(tmp_path, tiny_folder):
    output = tmp_path / "eval"
    result = run_cli("evaluate", "datasets=[flow]", "flow_methods=[dis,learned]", "world.clips_per_kind=1",
                     f"+flow_method_options.learned.checkpoint={tiny_folder}", f"output_dir={output}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(output / "eval_flow.csv") as handle:
        rows = {(row["subset"], row["method"]): float(row["epe"]) for row in csv.DictReader(handle)}
    subsets = ["alley_1 clean", "alley_1 final", "market_5 clean", "market_5 final", "world gap 8"]
    assert set(rows) == {(subset, method) for subset in subsets for method in ("dis", "learned")}
    # DIS's figures in the flow issue: small motion well under a pixel, market_5's large motion lost
    assert rows[("alley_1 clean", "dis")] == pytest.approx(0.28, abs=0.01)
    assert rows[("market_5 final", "dis")] == pytest.approx(23.1, abs=0.1)
    assert load_run(output)["metrics"]["flow.world gap 8.learned.epe"] == rows[("world gap 8", "learned")]


@pytest.mark.skipif(not (SHARED_DATA / "train" / "photos").is_dir(), reason="needs ../shared/data/real/train/photos")
def test_train_stage_flow_then_estimate_with_it_and_start_another_run_from_it(tmp_path):
    network = [f"task.network.{key}={value}".replace(" ", "") for key, value in OPTIONS.items()]
    common = ["stage=flow", "trainer.steps=3", "trainer.batch_size=2", "trainer.warmup_steps=1",
              "trainer.checkpoint_every=3", "trainer.sample_every=3", "trainer.log_every=1", "task.data.size=32",
              "task.data.layered_items=2", "task.data.world_items=2", "task.grid_pairs=2", *network]
    first = tmp_path / "first"
    result = run_cli("train", *common, f"output_dir={first}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    losses = [json.loads(line)["loss"] for line in (first / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert (first / "samples" / "step_000003.png").exists()
    image0, image1 = torch.rand(2, 1, 3, 40, 48) * 2 - 1
    assert LearnedFlow(str(first / "model"))(image0, image1).shape == (1, 2, 40, 48)
    local = "task.network.local={" + ",".join(f"{key}:{value}" for key, value in LOCAL.items()) + "}"
    second = run_cli("train", *common, f"task.init={first / 'model'}", local, "task.train_only=[local]",
                     "task.compile=true", "trainer.steps=1", f"output_dir={tmp_path / 's'}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    before, after = (load_file(str(folder / "model" / "flow.safetensors")) for folder in (first, tmp_path / "s"))
    assert all(torch.equal(after[key], value) for key, value in before.items())  # frozen, loaded from the first run
    assert any(key.startswith("local.") for key in after) and set(before) < set(after)
    mismatched = run_cli("train", *common, f"task.init={first / 'model'}", "task.network.channels=32",
                         f"output_dir={tmp_path / 'm'}", cwd=tmp_path)
    assert mismatched.returncode == 2 and "other options than task.network" in mismatched.stderr


def test_shipped_learned_flow_beats_dis_on_large_world_motion():
    """Flat shapes moving further than their size: DIS loses them, global matching finds them (the
    network alone: ``refine: none``). Seeds from 600000 are neither trained on (below 8000) nor
    evaluated (from 1000000)."""
    learned, dis = LearnedFlow(refine="none"), DISFlow()
    errors = {"learned": [], "dis": []}
    for seed in range(600000, 600004):
        image0, image1, truth = _large_world_pair(seed)
        errors["learned"].append(endpoint_error(learned(image0, image1), truth))
        errors["dis"].append(endpoint_error(dis(image0, image1), truth))
    assert np.mean(errors["learned"]) < 0.5 * np.mean(errors["dis"]), errors
