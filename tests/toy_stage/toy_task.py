"""A toy stage for the trainer's tests: a small MLP learns a fixed random function of
seeded random inputs from noisy copies of them, in milliseconds per step."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset

from inbetween.training import TrainingTask

INPUTS, OUTPUTS = 2, 3


class ToyTask(TrainingTask):
    """Regress ``y = sin(x @ A)`` (``x`` ``(N, 2)`` in ``[-1, 1]``, ``y`` ``(N, 3)``, ``A`` seeded) from
    ``x + noise * eps``, ``eps`` drawn from the step's generator; ``delay_s`` slows each
    step down (so a test can kill a run part-way)."""

    name = "toy"

    def __init__(self, size: int = 256, width: int = 32, noise: float = 0.05, data_seed: int = 0,
                 delay_s: float = 0.0) -> None:
        self.size, self.width, self.noise, self.data_seed, self.delay_s = size, width, noise, data_seed, delay_s

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(INPUTS, self.width), nn.SiLU(), nn.Linear(self.width, OUTPUTS))

    @staticmethod
    def target(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.sin(inputs @ torch.randn(INPUTS, OUTPUTS, generator=generator))

    def dataset(self) -> TensorDataset:
        generator = torch.Generator().manual_seed(self.data_seed)
        inputs = torch.rand(self.size, INPUTS, generator=generator) * 2 - 1
        return TensorDataset(inputs, self.target(inputs, generator))

    def loss(self, model: nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        inputs, targets = batch
        time.sleep(self.delay_s)
        noisy = inputs + self.noise * torch.randn(inputs.shape, generator=generator, device=generator.device)
        return nn.functional.mse_loss(model(noisy).float(), targets)

    def sample_grid(self, model: nn.Module) -> np.ndarray:
        """The model's outputs over ``[-1, 1]^2`` as a 32 x 32 RGB picture."""
        axis = torch.linspace(-1, 1, 32)
        inputs = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, INPUTS)
        outputs = model(inputs.to(next(model.parameters()).device)).float().cpu().reshape(32, 32, OUTPUTS)
        return ((outputs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def export(self, model: nn.Module, folder: Path) -> None:
        save_file({name: tensor.contiguous().cpu() for name, tensor in model.state_dict().items()},
                  str(folder / "toy.safetensors"))
