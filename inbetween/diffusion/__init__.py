"""Model-agnostic diffusion core: noise schedule, training objectives, samplers, weight EMA.

Conventions:

* data lives in ``[-1, 1]``; batches are ``(B, ...)`` of any rank;
* noising is variance preserving: ``x_t = alpha_t * x0 + sigma_t * eps`` with
  ``alpha_t^2 + sigma_t^2 = 1`` and ``eps`` standard normal;
* timesteps are integer indices ``0 .. steps - 1`` (long ``(B,)``), 0 the cleanest;
* a *denoiser* maps ``(x_t, t)`` to an estimate of ``x0``; networks may predict ``eps``,
  ``v`` or ``x0`` (:data:`PREDICTIONS`) and :func:`x0_denoiser` converts.
"""

from __future__ import annotations

from inbetween.diffusion.ema import EMA
from inbetween.diffusion.precision import PRECISIONS, autocast, check_precision, resolve_precision
from inbetween.diffusion.samplers import (
    SAMPLERS,
    classifier_free_guidance,
    ddim_sample,
    ddpm_sample,
    dpmpp_2m_sample,
    sample,
)
from inbetween.diffusion.schedule import (
    PREDICTIONS,
    NoiseSchedule,
    diffusion_loss,
    predicted_x0,
    training_target,
    weighted_mean,
    x0_denoiser,
)

__all__ = [
    "EMA",
    "PRECISIONS",
    "PREDICTIONS",
    "SAMPLERS",
    "autocast",
    "check_precision",
    "NoiseSchedule",
    "classifier_free_guidance",
    "ddim_sample",
    "ddpm_sample",
    "diffusion_loss",
    "dpmpp_2m_sample",
    "predicted_x0",
    "resolve_precision",
    "sample",
    "training_target",
    "weighted_mean",
    "x0_denoiser",
]
