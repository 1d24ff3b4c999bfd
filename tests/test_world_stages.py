"""The flow and interpolation stages measured on Shapes World clips with exact ground truth,
and the stage configs in conf/ kept equal to the constructors' defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from flow import DISFlow, endpoint_error
from inbetween.evaluation import psnr
from inbetween.video import from_uint8, to_uint8
from inbetween.world import CLIP_KINDS, Clip
from interpolate import FlowWarpInterpolator, LinearInterpolator

SIZE = 96
CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("seed", range(4))
def test_dis_end_point_error_below_one_pixel_on_textured_small_motion(seed):
    clip = Clip.random(seed, "texture")
    frames = from_uint8(np.stack([clip.render(t, SIZE) for t in (0.0, 1.0)]))
    estimate = DISFlow()(frames[:1], frames[1:])
    truth = torch.from_numpy(clip.flow(0.0, 1.0, SIZE))[None]
    visible = torch.from_numpy(clip.visible_mask(0.0, 1.0, SIZE))[None, None].float()
    assert truth.abs().max() > 1.0  # the clip really moves
    assert endpoint_error(estimate, truth, visible) < 1.0


def mean_psnr(interpolator, gap: int, seeds: range) -> float:
    """Mean PSNR of ``interpolator`` on clips of every kind, keyframes ``gap`` frames apart."""
    times = [j / gap for j in range(1, gap)]
    flow = DISFlow()
    scores = []
    for kind in CLIP_KINDS:
        for seed in seeds:
            clip = Clip.random(seed, kind)
            left, right = (from_uint8(clip.render(t, SIZE))[None] for t in (0.0, 1.0))
            truth = np.stack([clip.render(t, SIZE) for t in times])
            flow_lr, flow_rl = flow.bidirectional(left, right)
            frames = interpolator(left, right, flow_lr, flow_rl, times)[0]
            scores.append(psnr(to_uint8(frames), truth))
    return float(np.mean(scores))


@pytest.mark.parametrize("gap", [2, 4])
def test_flow_warp_beats_cross_fade_on_world_clips(gap):
    seeds = range(50, 52)
    flow_warp, linear = mean_psnr(FlowWarpInterpolator(), gap, seeds), mean_psnr(LinearInterpolator(), gap, seeds)
    assert flow_warp > linear + 1.0, (flow_warp, linear)


@pytest.mark.parametrize("path", sorted(CONF.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stage_configs_state_the_constructor_defaults(path):
    node = OmegaConf.load(path)
    if "_target_" not in node:
        pytest.skip("not a stage config")
    cls = hydra.utils.get_class(node._target_)
    parameters = inspect.signature(cls).parameters.values()
    # a required argument is Hydra's mandatory "???"; interpolations resolve as in a bare compose
    defaults = {p.name: "???" if p.default is p.empty else p.default
                for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD}
    composed = OmegaConf.to_container(OmegaConf.create({"stage": node}), resolve=True, throw_on_missing=False)
    assert composed["stage"] == {"_target_": node._target_, **defaults}
