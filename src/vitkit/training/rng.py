"""Seeds, and the process-wide switches a training run sets and must give back.

    with kept_global_state():      # vitkit.train(): RNGs, deterministic mode, a 1-process group
        run_training(cfg)           # ... are as before when this returns, also on an error

The trap: a library call that seeds the global RNGs, turns on deterministic algorithms or leaves
a process group behind changes the caller's program after it returns; a second `vitkit.train()`
in the same process would then not behave like the first.
"""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoint.train_state import rng_state, set_rng_state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The RNG seed of one optimizer step (dropout, drop path, PatchDropout, MixUp): a function of
    where the run is, not of what ran before, so a run resumed at any step draws the same numbers."""
    return (seed * 1_000_003 + step * 1_009 + rank) % (2**63)


def set_deterministic(on: bool) -> None:
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def kept_global_state():
    """Restore the RNGs, deterministic mode, cudnn.benchmark, CUBLAS_WORKSPACE_CONFIG and the
    process-group state of the caller when the block ends (normally or not)."""
    rng = rng_state()
    det, det_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    bench = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    had_group = dist.is_available() and dist.is_initialized()
    try:
        yield
    finally:
        set_rng_state(rng)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.benchmark = bench
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
        if not had_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()  # e.g. the 1-process group FSDP2 needs (parallel/fsdp.py)
