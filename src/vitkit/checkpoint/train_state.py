"""Training checkpoints: RUN/last.pt and RUN/best.pt, one atomic file each.

A file holds the model config and weights, optimizer, EMA, RNG states, epoch, step, the
position in the epoch (train/checkpointing.py), best accuracy, class names, preprocessing and
the resolved training config, all as tensors and plain containers, so `torch.load(weights_only=True)` reads it without running pickled code.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import atomic_write, read_torch_file
from .native import TRAIN_FORMAT, model_state_dict

# RUN/.vitkit-running holds "pid host" while a run is in progress (training/setup.py writes it,
# training/loop.py removes it at the end); `vitkit runs` (viz/runs.py) reads it.
RUNNING_MARKER = ".vitkit-running"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: Path, *, model, optimizer, ema, epoch: int, step: int, best_top1: float,
                     class_names: list[str], preprocess: dict, train_config: dict,
                     spent_s: float = 0.0, position: list[int] | None = None, sharded: str | None = None,
                     tracking: dict | None = None, few_epochs: dict | None = None) -> None:
    """`sharded`: the DCP folder (beside `path`) that holds weights and optimizer state (FSDP2);
    the file then carries everything else."""
    obj = {"format": TRAIN_FORMAT, "model": model.cfg.to_dict(),
           "model_state": None if sharded else model_state_dict(model),
           "optimizer": None if sharded else optimizer.state_dict(),
           "ema_state": model_state_dict(ema.module) if ema else None, "sharded": sharded,
           "rng": rng_state(), "epoch": epoch, "step": step, "best_top1": best_top1,
           "class_names": list(class_names), "preprocess": preprocess, "train_config": train_config,
           "tracking": tracking or {},  # the experiment trackers' run ids: a resume continues them
           "few_epochs": few_epochs,  # training/few_epochs.py's decision, None before it (or off)
           "spent_s": spent_s,  # wall seconds of the run so far (a time budget continues from here)
           # [epoch, batch]: the next batch to train; batch > 0 for a checkpoint written mid-epoch
           "position": list(position) if position is not None else [epoch + 1, 0]}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_train_state(path: Path) -> dict[str, Any]:
    return read_torch_file(path)


def resume_position(state: dict[str, Any]) -> tuple[int, int]:
    """(epoch, batch) to continue from; checkpoints without `position` ended an epoch."""
    pos = state.get("position")
    return (int(pos[0]), int(pos[1])) if pos else (int(state["epoch"]) + 1, 0)
