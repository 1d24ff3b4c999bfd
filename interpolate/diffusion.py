"""The temporal diffusion interpolator (``interpolate=diffusion``).

The diffusion variable is the *residual* over flow warping: for each in-between at time
``t`` the frame is ``blend + residual / residual_scale``, where ``blend`` is
:class:`interpolate.classical.FlowWarpInterpolator`'s frame. The residual is sampled by the
diffusion core from noise with ``x0`` prediction, conditioned per frame (:func:`conditioning`)
on both keyframes, both keyframes warped to ``t``, the flows from ``t`` to each keyframe,
their visibility masks and ``t`` itself. All in-betweens of a gap are denoised together
(:class:`interpolate.unet.TemporalUNet`).

The network does not paint the residual directly: it corrects the flows from ``t`` to each
keyframe and the weight of the left keyframe, and adds a pixel residual (:func:`synthesise`).
Moving content therefore comes from the keyframes' own pixels, sharp wherever the corrected
flow is right: this is how the model places an object that eases, travels on an arc or moves
further than the estimated flow says. With all outputs zero the frame is exactly ``blend``.
One sampling step returns the network's estimate of the mean frame given the keyframes (the
least-squares answer); more steps refine it from its own earlier answer.

A model folder (``inbetween train stage=interpolator`` writes one as ``OUT/model``) holds
``config.json`` (``unet`` options, ``schedule``, ``residual_scale``, ``flow_scale``) and
``denoiser.safetensors`` (EMA weights, float16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from checkpoints import shipped
from flow.opencv import DISFlow
from inbetween.diffusion import NoiseSchedule, autocast, resolve_precision, sample
from inbetween.errors import InbetweenError
from inbetween.warp import backward_warp
from inbetween.weights import load_weights, read_config, save_folder
from interpolate.base import Interpolator, Neighbour, Neighbours
from interpolate.classical import FlowWarpInterpolator, agreement_weight, bent_paths, check_times
from interpolate.tiling import run_tiled
from interpolate.unet import TemporalUNet

DENOISER = "denoiser"  # the weights file: denoiser.safetensors
#: Channels of :func:`conditioning`: blend, warped left, warped right, left, right (3 each),
#: visibility in left and right (1 each), flows from t to left and right (2 each).
COND_CHANNELS = 21
#: Channels the network outputs per frame (see :func:`synthesise`): flow corrections towards
#: the left and right keyframes (2 each, in units of ``flow_scale`` pixels), the change of
#: the left keyframe's blend weight (1, a logit) and a pixel residual (3).
OUTPUT_CHANNELS = 8
_WARPED_LEFT, _WARPED_RIGHT = slice(3, 6), slice(6, 9)
_LEFT, _RIGHT, _VISIBLE, _FLOWS = slice(9, 12), slice(12, 15), slice(15, 17), slice(17, 21)


def conditioning(warper: FlowWarpInterpolator, left: torch.Tensor, right: torch.Tensor, flow_lr: torch.Tensor,
                 flow_rl: torch.Tensor, times: torch.Tensor, flow_scale: float,
                 neighbours: Neighbours | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What the denoiser sees of each in-between: ``(blend (B, T, 3, H, W), cond (B, T, 21, H, W))``.

    ``left``, ``right``: keyframes ``(B, 3, H, W)``; ``flow_lr``, ``flow_rl``: ``(B, 2, H, W)``
    in pixels; ``times``: ``(B, T)`` in ``[0, 1]``. Flows enter divided by ``flow_scale``.
    ``neighbours``: the shot's keyframes beyond the gap; with them the flows from ``t`` (and so every
    warp) follow the paths bent through them (:class:`interpolate.classical.NeighbourPaths`, fitted once
    for all times), else straight lines. Frames are warped one time at a time, so memory grows with one
    frame's worth of splatting.
    """
    paths = bent_paths(flow_lr, flow_rl, neighbours)
    blends, conds = [], []
    for t in times.unbind(1):
        warped = warper.warp(left, right, flow_lr, flow_rl, t.view(-1, 1, 1, 1).to(left), paths)
        flows = warped.flows
        conds.append(torch.cat([warped.blend, warped.left, warped.right, left, right, flows.visible_0,
                                flows.visible_1, flows.flow_t0 / flow_scale, flows.flow_t1 / flow_scale], dim=1))
        blends.append(warped.blend)
    return torch.stack(blends, dim=1), torch.stack(conds, dim=1)


@dataclass
class Synthesis:
    """The network's answer for each in-between, every tensor ``(B, T, ., H, W)``.

    ``x0``: the clean diffusion variable (residual over ``blend`` times ``residual_scale``);
    ``flow_t0``, ``flow_t1``: corrected flows in pixels from the frame at ``t`` to the left and
    right keyframes, as :func:`inbetween.warp.backward_warp` reads them; ``logit_left``: the left
    keyframe's blend weight is ``sigmoid(logit_left)`` (1 channel).
    """

    x0: torch.Tensor
    flow_t0: torch.Tensor
    flow_t1: torch.Tensor
    logit_left: torch.Tensor


def _warp_frames(keyframe: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """:func:`backward_warp` of ``keyframe`` ``(B, T, 3, H, W)`` along ``flow`` ``(B, T, 2, H, W)``."""
    return backward_warp(keyframe.flatten(0, 1), flow.flatten(0, 1)).view_as(keyframe)


def synthesise(output: torch.Tensor, cond: torch.Tensor, times: torch.Tensor, flow_scale: float,
               residual_scale: float, visibility_floor: float) -> Synthesis:
    """Frames from the network's ``output`` ``(B, T, 8, H, W)`` (see :data:`OUTPUT_CHANNELS`).

    The flows from ``t`` in ``cond`` (``(B, T, 21, H, W)``, :func:`conditioning`) are corrected,
    both keyframes are warped along them and blended with the left weight
    ``sigmoid(prior + change)``, whose prior is flow warping's weight
    ``(1 - t)(v0 + f) / ((1 - t)(v0 + f) + t (v1 + f))`` (``f``: ``visibility_floor``); the pixel
    residual is added. All outputs zero reproduce ``blend`` (``x0`` = 0). ``times``: ``(B, T)``.
    """
    output, cond = output.float(), cond.float()
    flows = (cond[:, :, _FLOWS] + output[:, :, 0:4]) * flow_scale
    t = times[:, :, None, None, None].to(cond).clamp(1e-4, 1 - 1e-4)
    visible_left, visible_right = (cond[:, :, _VISIBLE] + visibility_floor).log().split(1, dim=2)
    prior = (1 - t).log() + visible_left - t.log() - visible_right
    logit_left = prior + output[:, :, 4:5]
    weight_left = torch.sigmoid(logit_left)
    frame = (weight_left * _warp_frames(cond[:, :, _LEFT], flows[:, :, 0:2])
             + (1 - weight_left) * _warp_frames(cond[:, :, _RIGHT], flows[:, :, 2:4]))
    x0 = (frame - cond[:, :, 0:3]) * residual_scale + output[:, :, 5:8]
    return Synthesis(x0, flows[:, :, 0:2], flows[:, :, 2:4], logit_left)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the last two dims of ``x`` ``(..., H, W)`` on the bottom and right to multiples of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    padded = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate")
    return padded.view(*x.shape[:-2], height + pad_h, width + pad_w)


@dataclass
class InterpolatorModel:
    """A :class:`TemporalUNet` and the settings it was trained with."""

    unet: TemporalUNet
    config: dict[str, Any]  # unet kwargs, schedule, residual_scale, flow_scale
    warper: FlowWarpInterpolator

    def __post_init__(self) -> None:
        self.schedule = NoiseSchedule(self.config["schedule"])

    @classmethod
    def build(cls, config: dict[str, Any]) -> InterpolatorModel:
        """A fresh (untrained) model; ``config`` as in ``config.json``."""
        return cls(TemporalUNet(COND_CHANNELS, OUTPUT_CHANNELS, **config["unet"]), config, FlowWarpInterpolator())

    def conditioning(self, left, right, flow_lr, flow_rl, times,
                     neighbours: Neighbours | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`conditioning` with this model's flow scale."""
        return conditioning(self.warper, left, right, flow_lr, flow_rl, times, self.config["flow_scale"],
                            neighbours)

    def residual_target(self, truth: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        """The diffusion variable for true frames ``truth`` over ``blend`` (both ``(B, T, 3, H, W)``)."""
        return (truth - blend) * self.config["residual_scale"]

    def frames(self, blend: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, 3, H, W)`` in ``[-1, 1]`` from ``blend`` and a sampled ``residual``."""
        return (blend + residual.float() / self.config["residual_scale"]).clamp(-1, 1)

    def synthesise(self, output: torch.Tensor, cond: torch.Tensor, times: torch.Tensor) -> Synthesis:
        """:func:`synthesise` with this model's settings."""
        return synthesise(output, cond, times, self.config["flow_scale"], self.config["residual_scale"],
                          self.warper.visibility_floor)

    def denoiser(self, cond: torch.Tensor, times: torch.Tensor, tile: int, overlap: int):
        """``denoise(x_t (B, T, 3, H, W), t (B,)) -> x0``.

        The network runs over tiles of ``cond``'s frames (it is local, so memory stays bounded);
        :func:`synthesise` runs on whole frames, so corrected flows may reach across tiles.
        """

        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            def on_tile(x_tile: torch.Tensor, cond_tile: torch.Tensor) -> torch.Tensor:
                return self.unet(x_tile, t, cond_tile, times).float()

            output = run_tiled(on_tile, [x_t, cond], tile, overlap, align=self.unet.multiple)
            return self.synthesise(output, cond, times).x0

        return denoise

    def save(self, folder: str | Path) -> None:
        save_folder(folder, self.config, {DENOISER: self.unet})

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> InterpolatorModel:
        """The model saved in ``folder`` (safetensors and JSON only), in eval mode on ``device``."""
        config = read_config(folder, [DENOISER], "an interpolator model folder", "train one with `inbetween train "
                             "stage=interpolator` and pass its OUT/model folder")
        model = cls.build(config)
        load_weights(model.unet, folder, DENOISER).to(device).eval().requires_grad_(False)
        return model


def holds(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Which gaps are holds, ``(B,)`` bool: their keyframes ``left``, ``right`` ``(B, 3, H, W)`` are one image.

    A hold's in-betweens are that image, exactly. The model cannot promise that: it is trained to
    about 50 dB (``task.image_loss``' floor), so sampled frames of a still picture would shimmer.
    """
    return (left == right).flatten(1).all(1)


def still_pixels(left: torch.Tensor, right: torch.Tensor, blend: torch.Tensor, levels: float) -> torch.Tensor:
    """Where a gap's picture stands still, ``(B, T, 1, H, W)`` bool: both keyframes ``left``, ``right``
    ``(B, 3, H, W)`` and flow warping's frame ``blend`` ``(B, T, 3, H, W)`` (all in ``[-1, 1]``) agree
    within ``levels`` 8-bit levels in every channel."""
    tolerance = levels * 2 / 255
    keyframes_agree = (left - right).abs().amax(1, keepdim=True) <= tolerance
    blend_agrees = torch.maximum((blend - left[:, None]).abs(), (blend - right[:, None]).abs()).amax(2, keepdim=True)
    return keyframes_agree[:, None] & (blend_agrees <= tolerance)


class DiffusionInterpolator(Interpolator):
    """In-betweens sampled by a trained :class:`InterpolatorModel` (see the module docstring).

    * ``checkpoint``: a model folder (``inbetween train stage=interpolator`` writes ``OUT/model``); None:
      the shipped ``checkpoints/interpolator`` (see its model card).
    * ``sampler``, ``steps``, ``eta``: the diffusion core's sampler (see
      :func:`inbetween.diffusion.sample`); ``steps=1`` returns the one-shot mean estimate.
    * ``seed``: the noise of every call is drawn from it, at full frame size, so the same
      seed gives the same frames and tiles share one noise field.
    * ``tile``, ``overlap``: frames larger than ``tile`` pixels are denoised in overlapping
      tiles (memory stays bounded; see :mod:`interpolate.tiling`).
    * ``times_per_call``: in-betweens denoised together (they attend to one another); the pipeline
      splits longer gaps into runs of this many.
    * ``precision``: ``bf16`` autocast, ``fp32``, or ``auto`` (bf16 where the device runs it faster
      than fp32: CUDA, AMX; see :func:`inbetween.diffusion.resolve_precision`).
    * ``neighbours``: take the shot's keyframes beyond the gap (``k - 1``, ``k + 2``): the model is
      conditioned on flows from ``t`` along paths bent through them (:func:`conditioning`), for curved
      and eased motion. Without them, or in a shot of two keyframes, the frames are the gap's alone.

    A gap whose two keyframes are one image is a hold (:func:`holds`): its in-betweens are copies.
    Where the picture stands still (:func:`still_pixels`: both keyframes and flow warping's frame
    agree within ``still_levels``), the frame is flow warping's: the model's corrections there are
    noise at its precision (about 50 dB), which costs static shots and steady cameras most.
    ``still_levels=None`` takes the model's frame everywhere.

    ``blend_with_dis=True`` mixes the frames per pixel with flow warping's along DIS's flow
    (:class:`flow.DISFlow`, its defaults) by how well each one's warped keyframes agree
    (:func:`interpolate.classical.agreement_weight`; the model's frame counts as its flow's): meant for
    another ``flow=`` (e.g. ``learned``, which finds large motion that DIS misses while DIS is more
    precise on real texture), as ``flow_warp``'s option of the same name.
    """

    name = "diffusion"
    needs_flow = True
    accepts_neighbours = True

    def __init__(self, checkpoint: str | None = None, sampler: str = "ddim", steps: int = 4, eta: float = 0.0,
                 seed: int = 0, tile: int = 256, overlap: int = 64, times_per_call: int = 16, precision: str = "auto",
                 neighbours: bool = False, still_levels: float | None = 8.0, blend_with_dis: bool = False,
                 device: str = "cpu"):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = InterpolatorModel.load(checkpoint or shipped("interpolator"), device)
        multiple = self.model.unet.multiple
        if tile % multiple or not 0 <= overlap < tile:
            raise InbetweenError(f"tile must be a multiple of {multiple} and overlap in [0, tile); "
                                 f"got tile={tile}, overlap={overlap}.")
        self.sampler, self.steps, self.eta, self.seed = sampler, steps, eta, seed
        if times_per_call < 1:
            raise InbetweenError(f"times_per_call must be 1 or more, got {times_per_call}.")
        self.tile, self.overlap, self.times_per_call = tile, overlap, times_per_call
        self.uses_neighbours = neighbours
        if still_levels is not None and still_levels < 0:
            raise InbetweenError(f"still_levels must be 0 or more (8-bit levels), or null to turn it off; got {still_levels}.")
        self.still_levels = still_levels
        self.dis = DISFlow() if blend_with_dis else None

    @torch.no_grad()
    def __call__(self, left, right, flow_lr, flow_rl, times: Sequence[float],
                 neighbours: Neighbours | None = None) -> torch.Tensor:
        if flow_lr is None or flow_rl is None:
            raise InbetweenError("the diffusion interpolator needs flow in both directions; configure a flow estimator")
        times = check_times(times)
        height, width = left.shape[-2:]
        if not times:
            return left.new_zeros((left.shape[0], 0, 3, height, width))
        held = holds(left, right)
        if held.all():
            return left[:, None].expand(-1, len(times), -1, -1, -1).clone()
        like = left  # the caller's device and dtype
        left, right, flow_lr, flow_rl = (x.to(self.device, torch.float32) for x in (left, right, flow_lr, flow_rl))
        time_grid = torch.tensor(times, device=self.device).expand(left.shape[0], -1)
        neighbours = self._on_device(neighbours)
        blend, cond = self.model.conditioning(left, right, flow_lr, flow_rl, time_grid, neighbours)
        warps = cond[:, :, _WARPED_LEFT], cond[:, :, _WARPED_RIGHT]
        multiple = self.model.unet.multiple
        cond = _pad_to(cond, multiple)
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn((*cond.shape[:2], 3, *cond.shape[-2:]), generator=generator).to(self.device)
        denoise = self.model.denoiser(cond, time_grid, self.tile, self.overlap)
        with autocast(self.device, self.precision):
            residual = sample(denoise, noise, self.model.schedule, self.sampler, self.steps, self.eta,
                              torch.Generator(self.device).manual_seed(self.seed + 1))
        frames = self.model.frames(blend, residual[..., :height, :width])
        if self.still_levels is not None:
            frames = torch.where(still_pixels(left, right, blend, self.still_levels), blend, frames)
        if self.dis is not None:
            frames = self._mixed_with_dis(left, right, frames, warps, times, neighbours)
        return torch.where(held.to(self.device)[:, None, None, None, None], left[:, None], frames).to(like)

    def _mixed_with_dis(self, left, right, frames: torch.Tensor, warps: tuple[torch.Tensor, torch.Tensor],
                        times: Sequence[float], neighbours: Neighbours | None) -> torch.Tensor:
        """``frames`` ``(B, T, 3, H, W)``, rendered from ``warps`` (the keyframes warped to each time along
        the configured flow, each ``(B, T, 3, H, W)``), mixed per pixel with flow warping's frames along
        DIS's flow by :func:`agreement_weight`."""
        mixed = []
        for i, dis in enumerate(self.model.warper.warps_along(self.dis, left, right, times, neighbours)):
            weight = agreement_weight((warps[0][:, i], warps[1][:, i]), (dis.left, dis.right))
            mixed.append(weight * frames[:, i] + (1 - weight) * dis.blend)
        return torch.stack(mixed, dim=1)

    def _on_device(self, neighbours: Neighbours | None) -> Neighbours | None:
        """``neighbours`` with every tensor float32 on this interpolator's device."""
        if neighbours is None:
            return None

        def moved(neighbour: Neighbour | None) -> Neighbour | None:
            if neighbour is None:
                return None
            return Neighbour(*(x.to(self.device, torch.float32) for x in
                               (neighbour.image, neighbour.flow_from_gap, neighbour.flow_to_gap)))

        return Neighbours(moved(neighbours.before), moved(neighbours.after))
