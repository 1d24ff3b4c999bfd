"""Samplers: turn a denoiser and standard normal noise ``x_T`` into data.

A *denoiser* is ``(x_t (B, ...), t (B,) long) -> x0_hat (B, ...)``, the estimate of the
clean data (see :func:`inbetween.diffusion.x0_denoiser` to wrap a network). Every sampler
makes exactly ``steps`` denoiser calls at timesteps evenly spaced from
``schedule.steps - 1`` down to 0 (see :func:`sampling_timesteps`), moves ``x`` from each
timestep to the next, and returns the denoiser's ``x0`` estimate at ``t = 0``.

* ``"ddpm"``: ancestral sampling from the DDPM posterior ``q(x_t' | x_t, x0_hat)`` on the
  strided timesteps (the same distribution as DDIM with ``eta = 1``).
* ``"ddim"``: DDIM (Song et al. 2021); ``eta = 0`` is deterministic, ``eta = 1`` ancestral.
* ``"dpmpp_2m"``: DPM-Solver++(2M) (Lu et al. 2022), the deterministic multistep
  second-order solver of the probability-flow ODE in ``lambda = log(alpha / sigma)`` with
  data prediction; its first and last steps are first order.

Stochastic samplers draw their noise from ``generator`` (on the noise's device).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from inbetween.diffusion.schedule import NoiseSchedule, Predictor
from inbetween.progress import progress_bar

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")

Condition = torch.Tensor | tuple[torch.Tensor, ...]

#: ``(x_t, x0_hat, t, t_next) -> x_t_next`` for python-int timesteps ``t > t_next``.
_Step = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def sampling_timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` distinct timesteps from ``schedule.steps - 1`` down to 0, evenly spaced (rounded).

    ``steps = 1`` gives just ``[schedule.steps - 1]``.
    """
    if not 1 <= steps <= schedule.steps:
        raise ValueError(f"sampling steps must be in 1..{schedule.steps}, got {steps!r}")
    spaced = torch.linspace(schedule.steps - 1, 0, steps, dtype=torch.float64)
    return [int(t) for t in spaced.round().tolist()]


def _alpha_sigma(schedule: NoiseSchedule, t: int) -> tuple[float, float]:
    """``(alpha_t, sigma_t)`` in float64 precision, as python floats."""
    abar = float(schedule.alphas_cumprod[t])
    return math.sqrt(abar), math.sqrt(1 - abar)


def _gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _check_eta(eta: float, sampler: str) -> None:
    """``eta`` is DDIM's knob: the other samplers accept only its default, 0."""
    if eta != 0:
        raise ValueError(f"eta applies to the 'ddim' sampler only; got eta={eta!r} for {sampler!r} (use 0)")


def _integrate(denoiser: Predictor, noise: torch.Tensor, schedule: NoiseSchedule, steps: int, progress: bool,
               step: _Step) -> torch.Tensor:
    """Shared loop: denoise at each sampling timestep, ``step`` to the next, return the last ``x0_hat``."""
    times = sampling_timesteps(schedule, steps)
    x = noise
    for index, t in enumerate(progress_bar(times, show=progress, desc="sampling", unit="step")):
        x0 = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        if index + 1 < len(times):
            x = step(x, x0, t, times[index + 1])
    return x0


def ddpm_sample(denoiser: Predictor, noise: torch.Tensor, schedule: NoiseSchedule, steps: int = 20,
                eta: float = 0.0, generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Ancestral DDPM sampling from ``noise`` ``(B, ...)``; returns ``x0`` ``(B, ...)``. ``eta`` must be 0."""
    _check_eta(eta, "ddpm")

    def step(x: torch.Tensor, x0: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        (alpha, sigma), (alpha_next, sigma_next) = _alpha_sigma(schedule, t), _alpha_sigma(schedule, t_next)
        beta = 1 - (alpha / alpha_next) ** 2  # the strided step's beta
        mean = alpha_next * beta / sigma**2 * x0 + alpha / alpha_next * (sigma_next / sigma) ** 2 * x
        return mean + sigma_next / sigma * math.sqrt(beta) * _gaussian_like(x, generator)

    return _integrate(denoiser, noise, schedule, steps, progress, step)


def ddim_sample(denoiser: Predictor, noise: torch.Tensor, schedule: NoiseSchedule, steps: int = 20,
                eta: float = 0.0, generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """DDIM sampling from ``noise`` ``(B, ...)`` with stochasticity ``eta`` in ``[0, 1]``; returns ``x0``."""
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")

    def step(x: torch.Tensor, x0: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        (alpha, sigma), (alpha_next, sigma_next) = _alpha_sigma(schedule, t), _alpha_sigma(schedule, t_next)
        eps = (x - alpha * x0) / sigma
        spread = eta * sigma_next / sigma * math.sqrt(1 - (alpha / alpha_next) ** 2)
        x_next = alpha_next * x0 + math.sqrt(sigma_next**2 - spread**2) * eps
        return x_next + spread * _gaussian_like(x, generator) if spread > 0 else x_next

    return _integrate(denoiser, noise, schedule, steps, progress, step)


def dpmpp_2m_sample(denoiser: Predictor, noise: torch.Tensor, schedule: NoiseSchedule, steps: int = 20,
                    eta: float = 0.0, generator: torch.Generator | None = None,
                    progress: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M) from ``noise`` ``(B, ...)``; returns ``x0``. Deterministic: ``eta`` must be 0
    and ``generator`` is unused."""
    _check_eta(eta, "dpmpp_2m")
    previous: tuple[torch.Tensor, float] | None = None  # the last step's x0_hat and its lambda step h

    def step(x: torch.Tensor, x0: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        nonlocal previous
        (alpha, sigma), (alpha_next, sigma_next) = _alpha_sigma(schedule, t), _alpha_sigma(schedule, t_next)
        h = math.log(alpha_next / sigma_next) - math.log(alpha / sigma)
        data = x0
        # The last step, to t = 0, is first order: it is long in lambda, and extrapolating
        # from the previous, much shorter step overshoots badly.
        if previous is not None and t_next > 0:
            x0_previous, h_previous = previous
            half_inverse_ratio = h / (2 * h_previous)  # 1 / (2 r) with r = h_previous / h
            data = (1 + half_inverse_ratio) * x0 - half_inverse_ratio * x0_previous
        previous = x0, h
        return sigma_next / sigma * x - alpha_next * math.expm1(-h) * data

    return _integrate(denoiser, noise, schedule, steps, progress, step)


_SAMPLER_FUNCTIONS = {"ddpm": ddpm_sample, "ddim": ddim_sample, "dpmpp_2m": dpmpp_2m_sample}


def sample(denoiser: Predictor, noise: torch.Tensor, schedule: NoiseSchedule, sampler: str = "dpmpp_2m",
           steps: int = 20, eta: float = 0.0, generator: torch.Generator | None = None,
           progress: bool = False) -> torch.Tensor:
    """Run ``sampler`` (one of :data:`SAMPLERS`) for ``steps`` denoiser calls from ``noise`` = ``x_T``.

    ``noise``: standard normal ``(B, ...)``. Returns the final ``x0`` estimate ``(B, ...)``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return _SAMPLER_FUNCTIONS[sampler](denoiser, noise, schedule, steps=steps, eta=eta, generator=generator,
                                       progress=progress)


def _concat(cond: Condition, uncond: Condition) -> Condition:
    """``cond`` and ``uncond`` stacked along dim 0 (elementwise for tuples)."""
    if isinstance(cond, tuple) != isinstance(uncond, tuple):
        raise ValueError(f"cond and uncond must both be tensors or both tuples, got {type(cond).__name__} "
                         f"and {type(uncond).__name__}")
    if isinstance(cond, tuple):
        return tuple(torch.cat([c, u]) for c, u in zip(cond, uncond, strict=True))
    return torch.cat([cond, uncond])


def classifier_free_guidance(denoise: Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor],
                             cond: Condition, uncond: Condition, scale: float) -> Predictor:
    """A denoiser ``(x_t, t) -> uncond + scale * (cond - uncond)`` from ``denoise(x_t, t, condition)``.

    ``cond`` / ``uncond``: a ``(B, ...)`` tensor or a tuple of them, batch-aligned with
    ``x_t``. Both halves run in one batched call of size ``2B``; ``scale == 1`` makes one
    call of size ``B`` with ``cond`` only.
    """
    if scale == 1:
        return lambda x_t, t: denoise(x_t, t, cond)
    both = _concat(cond, uncond)

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0_cond, x0_uncond = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), both).chunk(2)
        return x0_uncond + scale * (x0_cond - x0_uncond)

    return guided
