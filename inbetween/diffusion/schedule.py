"""Discrete variance-preserving noise schedule and the training objectives built on it.

Conventions (see :mod:`inbetween.diffusion`): ``x_t = alpha_t * x0 + sigma_t * eps`` with
``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``; timesteps are integer indices
``0 .. steps - 1``, 0 the cleanest. Per-sample quantities (``t``, ``alpha``, ``sigma``) are
``(B,)`` and broadcast over every trailing dimension of the data, whatever its rank
(``(B, C, H, W)``, ``(B, T, C, H, W)``, ...).

A network predicts one of :data:`PREDICTIONS`:

* ``"eps"``: the noise ``eps``;
* ``"v"``: the velocity ``v = alpha * eps - sigma * x0`` (Salimans & Ho 2022);
* ``"x0"``: the clean data itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULE_KINDS = ("cosine", "linear")
PREDICTIONS = ("eps", "v", "x0")

#: ``(x_t (B, ...), t (B,) long) -> tensor shaped like x_t``: a network's raw prediction
#: or, for a *denoiser*, the estimate of ``x0``.
Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_MAX_BETA = 0.999


def _cosine_betas(steps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal (2021) betas ``(steps,)``: ``abar(t) ~ cos^2((t/T + s) / (1 + s) * pi/2)``."""
    phase = (torch.arange(steps + 1, dtype=torch.float64) / steps + offset) / (1 + offset)
    abar = torch.cos(phase * math.pi / 2) ** 2
    return 1 - abar[1:] / abar[:-1]


def _linear_betas(steps: int) -> torch.Tensor:
    """DDPM betas ``(steps,)`` from 1e-4 to 0.02, scaled by ``1000 / steps`` (Nichol & Dhariwal)."""
    scale = 1000 / steps
    return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)


_BETAS = {"cosine": _cosine_betas, "linear": _linear_betas}


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` values reshaped to ``(B, 1, ..., 1)`` with ``like``'s rank and dtype."""
    return values.to(like.dtype).reshape(-1, *(1,) * (like.ndim - 1))


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


class NoiseSchedule:
    """A discrete VP schedule of ``steps`` training timesteps.

    ``alphas_cumprod`` is the float64 ``(steps,)`` tensor of ``abar_t``, strictly decreasing
    in ``(0, 1)``. Betas are clipped at 0.999 (this only bites at the cosine schedule's last
    step, or for the linear schedule with ``steps <= 20``).
    """

    def __init__(self, kind: str = "cosine", steps: int = 1000) -> None:
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"schedule kind must be one of {SCHEDULE_KINDS}, got {kind!r}")
        if steps < 2:
            raise ValueError(f"schedule steps must be an integer >= 2, got {steps!r}")
        self.kind = kind
        self.steps = steps
        betas = _BETAS[kind](steps).clamp(max=_MAX_BETA)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self._alpha = self.alphas_cumprod.sqrt().float()
        self._sigma = (1 - self.alphas_cumprod).sqrt().float()

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(abar_t), sqrt(1 - abar_t))``, each float32 ``(B,)`` on ``t``'s device, for long ``t`` ``(B,)``."""
        return self._alpha.to(t.device)[t], self._sigma.to(t.device)[t]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = alpha_t * x0 + sigma_t * noise``; ``x0`` and ``noise`` ``(B, ...)``, ``t`` ``(B,)``."""
        alpha, sigma = self.alpha_sigma(t)
        return _per_sample(alpha, x0) * x0 + _per_sample(sigma, x0) * noise

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
        """``batch`` timesteps uniform in ``[0, steps)``, long ``(batch,)``.

        Drawn on ``device`` (default: the generator's device, else the CPU), which must be
        the generator's device.
        """
        if device is None:
            device = generator.device if generator is not None else "cpu"
        return torch.randint(0, self.steps, (batch,), generator=generator, device=device)

    def noised(self, x0: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A training draw for clean data ``x0`` ``(B, ...)``: ``(x_t, t (B,), noise)``, with ``t``
        uniform and the noise drawn from ``generator`` (which must live on ``x0``'s device)."""
        t = self.sample_timesteps(x0.shape[0], generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.add_noise(x0, noise, t), t, noise


def training_target(x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                    prediction: str) -> torch.Tensor:
    """What a network with output kind ``prediction`` should output for ``x_t = alpha x0 + sigma noise``.

    ``x0``, ``noise``: ``(B, ...)``; ``alpha``, ``sigma``: ``(B,)``. Returns ``(B, ...)``.
    """
    _check_prediction(prediction)
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    return _per_sample(alpha, x0) * noise - _per_sample(sigma, x0) * x0


def predicted_x0(model_output: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                 prediction: str) -> torch.Tensor:
    """The ``x0`` estimate implied by a ``prediction``-kind output; inverse of :func:`training_target`.

    ``model_output``, ``x_t``: ``(B, ...)``; ``alpha``, ``sigma``: ``(B,)`` with
    ``alpha^2 + sigma^2 = 1``. For ``"eps"`` this divides by ``alpha``, which amplifies
    errors near the noisiest timesteps.
    """
    _check_prediction(prediction)
    if prediction == "x0":
        return model_output
    alpha, sigma = _per_sample(alpha, x_t), _per_sample(sigma, x_t)
    if prediction == "eps":
        return (x_t - sigma * model_output) / alpha
    return alpha * x_t - sigma * model_output


def diffusion_loss(predict: Predictor, x0: torch.Tensor, schedule: NoiseSchedule, prediction: str,
                   generator: torch.Generator | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar mean squared error between ``predict(x_t, t)`` and the ``prediction`` target.

    ``x0`` is a ``(B, ...)`` batch of clean data; ``t`` (uniform) and the noise are drawn
    from ``generator``, which must live on ``x0``'s device. ``weight`` (broadcastable to
    ``x0``, e.g. 0 on padding) makes it a weighted mean.
    """
    _check_prediction(prediction)
    x_t, t, noise = schedule.noised(x0, generator)
    target = training_target(x0, noise, *schedule.alpha_sigma(t), prediction)
    return weighted_mean((predict(x_t, t) - target) ** 2, weight)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None = None, per_item: bool = False) -> torch.Tensor:
    """Mean of ``values`` ``(B, ...)`` weighted by ``weight`` (broadcastable to it; e.g. 0 on padding);
    plain mean if None. A scalar, or with ``per_item`` one mean per item over all but the first dim, ``(B,)``."""
    dims = tuple(range(1 if per_item else 0, values.dim()))
    if weight is None:
        return values.mean(dims)
    weight = weight.expand_as(values)
    return (values * weight).sum(dims) / weight.sum(dims).clamp_min(1e-12)


def x0_denoiser(predict: Predictor, schedule: NoiseSchedule, prediction: str) -> Predictor:
    """Wrap a ``prediction``-kind network ``predict(x_t, t)`` into a denoiser ``(x_t, t) -> x0``."""
    _check_prediction(prediction)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = schedule.alpha_sigma(t)
        return predicted_x0(predict(x_t, t), x_t, alpha, sigma, prediction)

    return denoise
