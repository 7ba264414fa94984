"""Exponential moving average of weights (kept in fp32 on the model's device).

    vitkit train ... --ema 0.9998    # optim.ema_decay

After each optimizer step every floating tensor (parameters and buffers) moves to
e ← decay·e + (1 − decay)·w; integer buffers (BatchNorm's step count) are copied. A run evaluates
the EMA and keeps it as best.pt (run.py `primary`); last.pt holds the raw weights and the EMA.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def _tensors(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(floating, other) tensors in a fixed order. parameters() and buffers() list a tied tensor
    once; state_dict() lists it under each name, and an update over it would average twice."""
    tensors = [*model.parameters(), *model.buffers()]
    return [t for t in tensors if t.dtype.is_floating_point], [t for t in tensors if not t.dtype.is_floating_point]


class ModelEma:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()  # a deepcopy keeps the order and the ties
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._float, self._other = _tensors(self.module)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # The model's tensors are listed on each call (cheap), so a parameter replaced since the
        # EMA was made is still followed; one foreach lerp instead of a kernel per tensor.
        # A model with other tensors than its EMA fails here: foreach checks the lists' lengths
        # and shapes, zip(strict=True) the integer buffers'.
        src_float, src_other = _tensors(model)
        torch._foreach_lerp_(self._float, src_float, 1.0 - self.decay)
        for e, m in zip(self._other, src_other, strict=True):
            e.copy_(m)
