"""AdamW parameter groups (no decay on norms, biases, tokens, position tables; optional layer-wise
lr decay; optional frozen backbone) and the warmup + cosine schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UsageError
from .config import OptimOptions


def layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for block i, depth + 1 for the final norm and heads (BEiT rule)."""
    if name.startswith(("cls_token", "dist_token", "pos_embed", "patch_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def is_head(name: str) -> bool:
    return name.startswith(("head.", "head_dist.", "fc.")) or name in ("fc_norm.weight", "fc_norm.bias")


def param_groups(model: nn.Module, o: OptimOptions) -> list[dict]:
    """Groups keyed by (decay?, layer); each carries `lr_scale` that the schedule multiplies in."""
    no_decay = set(getattr(model, "no_weight_decay", lambda: set())())
    depth = len(getattr(model, "blocks", []))
    if o.freeze not in (None, "backbone"):
        raise UsageError(f"optim.freeze={o.freeze!r}: the only choice is 'backbone'")
    if o.layer_decay is not None and not 0 < o.layer_decay <= 1:
        raise UsageError(f"optim.layer_decay must be in (0, 1], got {o.layer_decay}")
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if o.freeze == "backbone" and not is_head(name):
            p.requires_grad_(False)
        if not p.requires_grad:
            continue
        decay = not (p.ndim <= 1 or name in no_decay or name.endswith(".bias") or ".rel_pos." in name)
        lid = layer_id(name, depth) if depth else 0
        scale = o.layer_decay ** (depth + 1 - lid) if o.layer_decay is not None and depth else 1.0
        g = groups.setdefault((decay, lid), {"params": [], "names": [], "weight_decay": o.weight_decay if decay else 0.0,
                                             "lr_scale": scale, "layer": lid})
        g["params"].append(p)
        g["names"].append(name)
    if not groups:
        raise UsageError("no trainable parameters (everything is frozen)")
    return list(groups.values())


def build_optimizer(model: nn.Module, o: OptimOptions) -> torch.optim.Optimizer:
    groups = param_groups(model, o)
    for g in groups:
        g["lr"] = o.lr * g["lr_scale"]
    return torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups],
                             lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


SCHEDULES = ("cosine", "linear")


def lr_at(step: int, total: int, warmup: int, base: float, minimum: float, shape: str = "cosine",
          budget_used: float = 0.0) -> float:
    """Linear warmup from 0 to `base` over `warmup` steps, then cosine or linear down to `minimum`.

    Linear decay to (near) zero at the end of the budget is what Li et al. 2020 found best when
    the number of steps is fixed in advance; cosine is the DeiT/timm default. `budget_used` ∈
    [0, 1] (a wall-clock budget, train/budget.py) moves the decay on when time runs out before
    the steps do; warmup stays in steps.
    """
    if step < warmup:
        return base * (step + 1) / warmup
    t = max(min(1.0, (step - warmup) / max(1, total - warmup)), budget_used)
    if shape == "linear":
        return minimum + (base - minimum) * (1.0 - t)
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
