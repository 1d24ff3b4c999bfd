"""Exponential moving average (EMA) of a network's weights, the usual weights to sample with."""

from __future__ import annotations

import copy

import torch
from torch import nn

#: The state-dict key holding the update count (a long scalar tensor).
UPDATES_KEY = "ema_updates"


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, else ``model``."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model




class EMA:
    """Averaged copy ``self.model`` (eval mode, no gradients) of a network's parameters.

    Each :meth:`update` does ``avg = decay * avg + (1 - decay) * current`` for the
    parameters and copies the buffers (statistics, counters, constant masks: averaging an
    attention mask's ``-inf`` would give NaN). With ``warmup`` the decay is
    ``min(decay, (1 + n) / (10 + n))`` where ``n`` is the number of earlier updates, so
    early averages are not dominated by the initial weights.

    :meth:`state_dict` is ``self.model``'s state dict plus :data:`UPDATES_KEY`; load bare
    averaged weights into a network from ``ema.model.state_dict()``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0 <= decay <= 1:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay!r}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.model = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (same architecture, possibly wrapped)."""
        weight = 1 - self.current_decay()
        network = _unwrap(model)
        parameters = dict(network.named_parameters())
        for name, average in self.model.named_parameters():
            average.lerp_(parameters[name], weight)
        buffers = dict(network.named_buffers())
        for name, average in self.model.named_buffers():
            average.copy_(buffers[name])
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged module's state dict and the update count; tensors only (``weights_only``-loadable)."""
        return {**self.model.state_dict(), UPDATES_KEY: torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict`'s output."""
        weights = dict(state)
        self.updates = int(weights.pop(UPDATES_KEY))
        self.model.load_state_dict(weights)
