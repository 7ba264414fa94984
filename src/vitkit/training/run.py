"""The state of one training run: what setup builds and the engine, loop and checkpointing change.

`Run` is the one owner of that state. setup.py fills it; engine.py (one epoch), loop.py (the
epochs) and checkpointing.py read it and advance its counters (`step`, `best`, `start_*`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.samplers import EpochPosition, TrainLoader
from ..parallel.distributed import Dist
from .budget import Clock
from .checkpointing import Every
from .config import TrainConfig
from .ema import ModelEma
from .few_epochs import FewEpochs
from .losses import DistillationLoss
from .preempt import StopRequest
from .tracking import Trackers


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step and per epoch (rank 0 only), and the same
    figures to the experiment trackers (training/tracking/)."""

    def __init__(self, path: Path, enabled: bool, trackers: Trackers | None = None):
        self.path, self.enabled = path, enabled
        self.trackers = trackers or Trackers({})

    def write(self, **record) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if record.get("kind") == "step":
            self.trackers.log("train", record["step"], {k: record[k] for k in ("loss", "lr", "img_s", "size")})
        elif record.get("kind") == "epoch" and record.get("top1") is not None:
            self.trackers.log("eval", record["step"], {k: record.get(k) for k in (
                "top1", "top5", "loss", "best_top1", "train_loss", "epoch")})


@dataclass
class Run:
    cfg: TrainConfig
    d: Dist
    out: Path
    model: nn.Module  # what the step calls: maybe compiled, maybe DDP-wrapped
    raw_model: nn.Module  # the plain module: checkpoints, EMA, clipping
    optimizer: torch.optim.Optimizer
    ema: ModelEma | None
    criterion: DistillationLoss
    mixer: Any
    classes: list[str]
    sampler: Any  # RankSampler, or shards.ShardLoader for WebDataset shards
    train_loader: Any
    val_loader: Any
    n_train: int
    n_val: int
    size: int  # the model's (final) training size
    precision: str  # resolved: "fp32" | "bf16"
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    preprocess: dict
    log: MetricsLog
    clock: Clock
    few: FewEpochs  # few_epochs: the settings switched when the budget buys few epochs
    start_epoch: int = 0
    start_batch: int = 0  # the first batch of start_epoch to train (> 0: resumed mid-epoch)
    step: int = 0
    best: float = -1.0
    cache_skipped: int = 0  # unreadable images left out when the tensor cache was built
    checkpoint_every: Every | None = None
    last_ckpt_t: float = field(default_factory=time.time)
    stop: StopRequest = field(default_factory=StopRequest)
    probe: Any = None  # a few fixed validation images (B, C, H, W) for the trackers' attention pictures
    fsdp: bool = False  # FSDP2: checkpoints through torch.distributed.checkpoint, by every rank

    @property
    def primary(self) -> nn.Module:
        """The weights evaluated and kept as best: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.raw_model
