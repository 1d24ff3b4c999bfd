"""inbetween.diffusion: schedules, objectives, samplers (checked on Gaussian data, where the
exact denoiser and the exact probability-flow map are known), guidance and the weight EMA."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inbetween.diffusion import (
    EMA,
    PREDICTIONS,
    SAMPLERS,
    NoiseSchedule,
    autocast,
    classifier_free_guidance,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
    predicted_x0,
    resolve_precision,
    sample,
    training_target,
    x0_denoiser,
)
from inbetween.diffusion.ema import UPDATES_KEY
from inbetween.diffusion.precision import cpu_has_amx
from inbetween.errors import InbetweenError
from inbetween.diffusion.samplers import sampling_timesteps

# Gaussian data x0 ~ N(MU, S^2), iid per dimension.
MU, S = 0.3, 0.5


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, *(1,) * (like.ndim - 1))


def gaussian_posterior(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``x0 | x_t`` for Gaussian data: both broadcastable to ``x_t``."""
    alpha, sigma = (per_sample(v, x_t) for v in schedule.alpha_sigma(t))
    marginal_var = alpha**2 * S**2 + sigma**2
    mean = MU + alpha * S**2 / marginal_var * (x_t - alpha * MU)
    return mean, S * sigma / marginal_var.sqrt()


def mean_denoiser(schedule: NoiseSchedule):
    """The exact denoiser E[x0 | x_t]."""
    return lambda x_t, t: gaussian_posterior(schedule, x_t, t)[0]


def posterior_sample_denoiser(schedule: NoiseSchedule, seed: int):
    """Returns a *sample* of ``x0 | x_t``. Then every DDIM-family step (any eta) draws ``x_t'``
    from the exact marginal, so the output is exactly N(MU, S^2) at any step count. (With the
    posterior *mean*, ancestral sampling misses Var[x0 | x_t] and is under-dispersed at 50 steps.)"""
    generator = torch.Generator().manual_seed(seed)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mean, std = gaussian_posterior(schedule, x_t, t)
        return mean + std * torch.randn(x_t.shape, generator=generator)

    return denoise


def standard_noise(seed: int = 0, shape: tuple[int, ...] = (20000, 4)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def flow_map_error(out: torch.Tensor, noise: torch.Tensor) -> float:
    """Max deviation from the probability-flow map ``x_T -> MU + S x_T`` (exact up to abar_T, sigma_0 ~ 0)."""
    return (out - (MU + S * noise)).abs().max().item()


# ---------------------------------------------------------------- schedule


@pytest.mark.parametrize("kind", ["cosine", "linear"])
@pytest.mark.parametrize("steps", [1000, 100, 10])
def test_alphas_cumprod_strictly_decreasing_inside_unit_interval(kind, steps):
    abar = NoiseSchedule(kind, steps).alphas_cumprod
    assert abar.dtype == torch.float64 and abar.shape == (steps,)
    assert (abar.diff() < 0).all()
    assert (abar > 0).all() and (abar < 1).all()


def test_cosine_schedule_matches_closed_form():
    schedule = NoiseSchedule("cosine")
    t = torch.arange(1000, dtype=torch.float64)
    f = torch.cos(((t + 1) / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    closed_form = f / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    # identical except the last step, whose beta (~1) is clipped at 0.999
    torch.testing.assert_close(schedule.alphas_cumprod[:-1], closed_form[:-1], rtol=1e-10, atol=0)
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(closed_form[-2].item() * 0.001, rel=1e-9)
    assert schedule.alphas_cumprod[-1] < 1e-8 and schedule.alphas_cumprod[0] > 0.99995


def test_linear_schedule_is_ddpm():
    abar = NoiseSchedule("linear").alphas_cumprod
    assert abar[0].item() == pytest.approx(1 - 1e-4, abs=1e-15)
    assert abar[1].item() == pytest.approx((1 - 1e-4) * (1 - 1e-4 - 0.0199 / 999), rel=1e-12)
    assert 4.0e-5 < abar[-1] < 4.1e-5  # the classic DDPM value ~4.04e-5


@pytest.mark.parametrize(("kind", "steps"), [("sigmoid", 1000), ("Cosine", 1000), ("cosine", 1)])
def test_bad_schedule_arguments_raise(kind, steps):
    with pytest.raises(ValueError, match="cosine" if steps > 1 else "steps"):
        NoiseSchedule(kind, steps)


def test_alpha_sigma_and_add_noise_broadcast_over_any_rank():
    schedule = NoiseSchedule()
    t = torch.tensor([0, 500, 999])
    alpha, sigma = schedule.alpha_sigma(t)
    assert alpha.dtype == sigma.dtype == torch.float32 and alpha.shape == (3,)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(3))
    torch.testing.assert_close(alpha.double() ** 2, schedule.alphas_cumprod[t])
    for shape in [(3, 2, 4, 5), (3, 6, 2, 4, 5)]:
        x0, noise = torch.randn(shape), torch.randn(shape)
        x_t = schedule.add_noise(x0, noise, t)
        for i in range(3):
            torch.testing.assert_close(x_t[i], alpha[i] * x0[i] + sigma[i] * noise[i])


def test_sample_timesteps_uniform_and_seeded():
    schedule = NoiseSchedule(steps=100)
    t = schedule.sample_timesteps(20000, torch.Generator().manual_seed(3))
    assert t.dtype == torch.long and t.shape == (20000,)
    counts = torch.bincount(t, minlength=100)
    assert counts.numel() == 100 and counts.min() > 140 and counts.max() < 260  # 200 expected each
    again = schedule.sample_timesteps(20000, torch.Generator().manual_seed(3))
    assert torch.equal(t, again)


# ---------------------------------------------------------------- objectives


@settings(max_examples=60, deadline=None)
@given(alphas=st.lists(st.floats(1e-3, 1 - 1e-9), min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1))
def test_predicted_x0_inverts_training_target(alphas, seed):
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.tensor(alphas, dtype=torch.float64)
    sigma = (1 - alpha**2).sqrt()
    x0 = torch.rand((len(alphas), 3, 4, 5), generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    x_t = per_sample(alpha, x0) * x0 + per_sample(sigma, x0) * noise
    for prediction in PREDICTIONS:
        target = training_target(x0, noise, alpha, sigma, prediction)
        torch.testing.assert_close(predicted_x0(target, x_t, alpha, sigma, prediction), x0, rtol=0, atol=1e-9)
    v = training_target(x0, noise, alpha, sigma, "v")
    torch.testing.assert_close(v, per_sample(alpha, x0) * noise - per_sample(sigma, x0) * x0)
    assert training_target(x0, noise, alpha, sigma, "eps") is noise
    assert training_target(x0, noise, alpha, sigma, "x0") is x0


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_diffusion_loss_is_zero_for_the_exact_target(prediction):
    schedule = NoiseSchedule()
    x0 = torch.rand(6, 2, 3, 4, 5, dtype=torch.float64) * 2 - 1
    # replay the draws diffusion_loss makes from the same seed: timesteps, then noise
    replay = torch.Generator().manual_seed(7)
    t_expected = torch.randint(0, 1000, (6,), generator=replay)
    noise = torch.randn(x0.shape, generator=replay, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t_expected)
    target = training_target(x0, noise, alpha, sigma, prediction)

    def exact(x_t, t):
        assert torch.equal(t, t_expected)
        torch.testing.assert_close(x_t, schedule.add_noise(x0, noise, t_expected))
        return target

    loss = diffusion_loss(exact, x0, schedule, prediction, torch.Generator().manual_seed(7))
    assert loss.ndim == 0 and loss.item() == 0
    zero = diffusion_loss(lambda x_t, t: torch.zeros_like(x_t), x0, schedule, prediction,
                          torch.Generator().manual_seed(7))
    torch.testing.assert_close(zero, target.pow(2).mean())


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_x0_denoiser_recovers_clean_data(prediction):
    schedule = NoiseSchedule("linear")
    x0, noise = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8)
    t = torch.tensor([0, 10, 500, 900])

    def network(x_t, t_):
        return training_target(x0, noise, *schedule.alpha_sigma(t_), prediction)

    denoised = x0_denoiser(network, schedule, prediction)(schedule.add_noise(x0, noise, t), t)
    torch.testing.assert_close(denoised, x0, rtol=0, atol=1e-3)


@pytest.mark.parametrize("call", [
    lambda: training_target(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1), "score"),
    lambda: predicted_x0(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1), "epsilon"),
    lambda: diffusion_loss(lambda x, t: x, torch.zeros(1, 2), NoiseSchedule(), "velocity"),
    lambda: x0_denoiser(lambda x, t: x, NoiseSchedule(), "X0"),
])
def test_unknown_prediction_raises(call):
    with pytest.raises(ValueError, match="eps"):
        call()


# ---------------------------------------------------------------- samplers on Gaussian data


@pytest.mark.parametrize(("kind", "sampler", "steps", "tolerance"), [
    ("cosine", "ddim", 250, 0.02),
    ("linear", "ddim", 250, 0.035),
    ("cosine", "dpmpp_2m", 20, 0.012),
    ("linear", "dpmpp_2m", 30, 0.03),
])
def test_deterministic_samplers_follow_the_probability_flow_map(kind, sampler, steps, tolerance):
    schedule = NoiseSchedule(kind)
    noise = standard_noise(shape=(20000, 1))
    out = sample(mean_denoiser(schedule), noise, schedule, sampler, steps)
    assert flow_map_error(out, noise) < tolerance
    # the moments of the exact map of this very noise, free of sampling error ...
    assert out.mean().item() == pytest.approx(MU + S * noise.mean().item(), abs=0.005)
    assert out.std().item() == pytest.approx(S * noise.std().item(), rel=0.015)
    # ... and of the data distribution
    assert out.mean().item() == pytest.approx(MU, abs=0.015)
    assert out.std().item() == pytest.approx(S, abs=0.01)


@pytest.mark.parametrize(("sampler", "eta"), [("ddpm", 0.0), ("ddim", 1.0), ("ddim", 0.0)])
def test_samplers_reproduce_gaussian_data(sampler, eta):
    schedule = NoiseSchedule()
    out = sample(posterior_sample_denoiser(schedule, seed=1), standard_noise(), schedule, sampler, 50, eta,
                 torch.Generator().manual_seed(2))
    assert out.mean().item() == pytest.approx(MU, abs=0.008)
    assert out.std().item() == pytest.approx(S, abs=0.006)


def test_dpmpp_2m_is_higher_order_than_ddim():
    schedule = NoiseSchedule()
    noise = standard_noise(shape=(4000, 1))
    errors = {(sampler, steps): flow_map_error(sample(mean_denoiser(schedule), noise, schedule, sampler, steps), noise)
              for sampler in ("ddim", "dpmpp_2m") for steps in (10, 20)}
    assert errors["dpmpp_2m", 10] < 0.5 * errors["ddim", 10]
    assert 1.7 < errors["ddim", 10] / errors["ddim", 20] < 2.4  # first order: error ~ 1 / steps
    assert errors["dpmpp_2m", 10] / errors["dpmpp_2m", 20] > 4


def test_ddpm_posterior_equals_ddim_eta_one():
    schedule = NoiseSchedule()
    noise = standard_noise(shape=(64, 3))
    ddpm = ddpm_sample(mean_denoiser(schedule), noise, schedule, 20, generator=torch.Generator().manual_seed(5))
    ddim = ddim_sample(mean_denoiser(schedule), noise, schedule, 20, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ddpm, ddim, rtol=1e-5, atol=1e-5)


def test_determinism_and_seeding():
    schedule = NoiseSchedule()
    noise = standard_noise(shape=(16, 2, 3))
    denoise = mean_denoiser(schedule)
    first = sample(denoise, noise, schedule, "ddim", 10, generator=torch.Generator().manual_seed(0))
    second = sample(denoise, noise, schedule, "ddim", 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and torch.equal(first, sample(denoise, noise, schedule, "ddim", 10))
    ddpm = [sample(denoise, noise, schedule, "ddpm", 10, generator=torch.Generator().manual_seed(seed))
            for seed in (4, 4, 5)]
    assert torch.equal(ddpm[0], ddpm[1])
    assert (ddpm[0] - ddpm[2]).abs().max() > 1e-2


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(("steps", "expected"), [(1, [999]), (2, [999, 0]), (5, [999, 749, 500, 250, 0])])
def test_samplers_call_the_denoiser_once_per_step_on_trailing_timesteps(sampler, steps, expected):
    schedule = NoiseSchedule()
    calls = []

    def recording(x_t, t):
        assert t.dtype == torch.long and t.shape == (3,) and (t == t[0]).all()
        calls.append(int(t[0]))
        return torch.full_like(x_t, len(calls))

    out = sample(recording, torch.randn(3, 2), schedule, sampler, steps, generator=torch.Generator().manual_seed(0))
    assert calls == expected
    assert torch.equal(out, torch.full((3, 2), float(steps)))  # the last call's x0 estimate


def test_sampling_timesteps_full_range():
    assert sampling_timesteps(NoiseSchedule(steps=50), 50) == list(range(49, -1, -1))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sampler": "euler"}, "dpmpp_2m"),
    ({"steps": 0}, "1..1000"),
    ({"steps": 1001}, "1..1000"),
    ({"sampler": "ddim", "eta": 1.5}, "eta"),
    ({"sampler": "ddpm", "eta": 0.5}, "ddim"),
    ({"sampler": "dpmpp_2m", "eta": 1.0}, "ddim"),
])
def test_bad_sampler_arguments_raise(kwargs, match):
    schedule = NoiseSchedule()
    with pytest.raises(ValueError, match=match):
        sample(mean_denoiser(schedule), torch.randn(2, 2), schedule, **kwargs)


def test_progress_bar(capsys):
    schedule = NoiseSchedule()
    sample(mean_denoiser(schedule), torch.randn(2, 2), schedule, steps=3, progress=True)
    assert "3/3" in capsys.readouterr().err


# ---------------------------------------------------------------- classifier-free guidance


class RecordingConditional:
    """``denoise(x, t, c) = x + t + c`` for a tensor ``c``, ``x + t + c0 * c1`` for a pair; logs batch sizes."""

    def __init__(self):
        self.batches: list[int] = []

    def __call__(self, x_t, t, condition):
        self.batches.append(x_t.shape[0])
        value = condition[0] * condition[1] if isinstance(condition, tuple) else condition
        return x_t + t[:, None] + value


@pytest.mark.parametrize(("scale", "expected", "batches"), [(0.0, -1.0, [8]), (1.0, 2.0, [4]), (3.0, 8.0, [8])])
def test_classifier_free_guidance(scale, expected, batches):
    x, t = torch.randn(4, 5), torch.arange(4)
    denoise = RecordingConditional()
    guided = classifier_free_guidance(denoise, torch.full((4, 5), 2.0), torch.full((4, 5), -1.0), scale)
    torch.testing.assert_close(guided(x, t), x + t[:, None] + expected)
    assert denoise.batches == batches


def test_classifier_free_guidance_with_tuple_conditions():
    x, t = torch.randn(2, 3), torch.zeros(2, dtype=torch.long)
    cond = (torch.full((2, 3), 2.0), torch.full((2, 3), 3.0))  # product 6
    uncond = (torch.full((2, 3), 1.0), torch.full((2, 3), 1.0))  # product 1
    torch.testing.assert_close(classifier_free_guidance(RecordingConditional(), cond, uncond, 2.0)(x, t), x + 11)
    with pytest.raises(ValueError, match="both"):
        classifier_free_guidance(RecordingConditional(), cond, torch.zeros(2, 3), 2.0)


# ---------------------------------------------------------------- EMA


def small_network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def set_weights(network: nn.Module, value: float) -> None:
    with torch.no_grad():
        for tensor in [*network.parameters(), *(b for b in network.buffers() if b.is_floating_point() and b.numel() == 4)]:
            tensor.fill_(value)


def test_ema_averages_parameters_and_copies_buffers():
    network = small_network(0)
    network.register_buffer("mask", torch.tensor([0.0, float("-inf")]))  # e.g. a causal attention mask
    set_weights(network, 1.0)
    ema = EMA(network, decay=0.9)
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())
    set_weights(network, 3.0)
    network[1].num_batches_tracked.fill_(7)
    ema.update(network)
    set_weights(network, -1.0)
    ema.update(network)
    expected = 0.9 * (0.9 * 1.0 + 0.1 * 3.0) + 0.1 * -1.0
    for name, tensor in ema.model.named_parameters():
        torch.testing.assert_close(tensor, torch.full_like(tensor, expected), msg=name)
    torch.testing.assert_close(ema.model[1].running_mean, torch.full((4,), -1.0))  # buffers: the latest
    assert ema.model[1].num_batches_tracked.item() == 7
    assert torch.equal(ema.model.mask, network.mask)  # -inf stays -inf, no NaN
    assert network[0].weight.flatten()[0].item() == -1.0  # the live network is untouched


def test_ema_warmup_decay():
    network = small_network(0)
    set_weights(network, 0.0)
    ema = EMA(network, decay=0.5, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)
    set_weights(network, 1.0)
    ema.update(network)  # decay 1/10
    torch.testing.assert_close(ema.model[0].bias, torch.full((4,), 0.9))
    assert ema.current_decay() == pytest.approx(2 / 11)
    for _ in range(20):
        ema.update(network)
    assert ema.current_decay() == 0.5 and ema.updates == 21


def test_ema_state_dict_round_trips_through_weights_only_load(tmp_path):
    source = small_network(0)
    ema = EMA(source, decay=0.99, warmup=True)
    set_weights(source, 2.0)
    for _ in range(3):
        ema.update(source)
    torch.save(ema.state_dict(), tmp_path / "ema.pt")
    state = torch.load(tmp_path / "ema.pt", weights_only=True)
    assert set(state) == {*ema.model.state_dict(), UPDATES_KEY}
    restored = EMA(small_network(1), decay=0.99, warmup=True)
    restored.load_state_dict(state)
    assert restored.updates == 3 and restored.current_decay() == pytest.approx(4 / 13)
    for name, tensor in ema.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], tensor), name


def test_ema_unwraps_distributed_data_parallel():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(small_network(0))
        ema = EMA(wrapped, decay=0.0)
        assert set(ema.state_dict()) == {*small_network(0).state_dict(), UPDATES_KEY}
        set_weights(wrapped.module, 5.0)
        ema.update(wrapped)
        torch.testing.assert_close(ema.model[0].weight, torch.full((4, 3), 5.0))
    finally:
        dist.destroy_process_group()


def test_ema_bad_decay_raises():
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(2, 2), decay=1.5)


def _cpuinfo_flags() -> set[str]:
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags from /proc/cpuinfo")
def test_auto_precision_takes_bf16_only_on_a_cpu_with_amx():
    native = "amx_tile" in _cpuinfo_flags()  # AVX512-BF16 alone runs bf16 slower than fp32: fp32
    assert cpu_has_amx() == native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InbetweenError, match="trainer.precision must be one of auto, bf16, fp32, got 'fp16'"):
        resolve_precision("fp16", "cpu", "trainer.precision")
    with pytest.raises(InbetweenError, match="resolved precision"):
        autocast(torch.device("cpu"), "auto")
