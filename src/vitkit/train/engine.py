"""One epoch of training (DeiT's `train_one_epoch`): batches → loss → step, nothing else.

Setup lives in `setup.py`, evaluation in `evaluate.py`, checkpoints and the epoch loop in
`loop.py`. Per step: the RNG seeded from (seed, step, rank), lr from the schedule, the batch
resized for progressive training, MixUp / CutMix, forward under the resolved precision,
backward, one all-reduce of the loss, the budget clock and the stop flag (so every rank stops
together on NaN, on a spent budget or on a signal), clipping, the optimizer, EMA, and a
mid-epoch checkpoint when one is due (checkpointing.py).
"""
from __future__ import annotations

import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import TrainingDiverged
from ..hardware import autocast
from . import distributed as dist_utils
from .checkpointing import write_checkpoint
from .fsdp import grad_sync
from .optim import lr_at, set_lr
from .progressive import size_at
from .setup import Run, seed_everything


def step_seed(seed: int, step: int, rank: int) -> int:
    """The RNG seed of one optimizer step (dropout, drop path, PatchDropout, MixUp): a function of
    where the run is, not of what ran before, so a run resumed at any step draws the same numbers."""
    return (seed * 1_000_003 + step * 1_009 + rank) % (2**63)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, C, size, size), antialiased when shrinking (progressive resizing)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def train_one_epoch(run: Run, epoch: int) -> dict:
    """Train one epoch (from batch `run.start_batch` when resumed into it); returns its statistics
    and `stop`: None, "max_steps", "budget" or "signal"."""
    cfg, d, o = run.cfg, run.d, run.cfg.optim
    first = run.start_batch if epoch == run.start_epoch else 0  # batches already trained
    run.sampler.set_epoch(epoch, first, o.batch_size // (d.world * o.accum_steps))
    run.model.train()
    run.criterion.train()
    t_epoch, seen, skipped, loss_sum, loss_n = time.time(), 0, 0, 0.0, 0
    window_t, window_seen = time.time(), 0
    lr, stop = 0.0, None
    bar = tqdm(total=run.steps_per_epoch, initial=first // o.accum_steps, desc=f"epoch {epoch + 1}/{o.epochs}",
               disable=not (d.is_main and cfg.run.progress and sys.stderr.isatty()),  # no bar in logs
               dynamic_ncols=True, leave=True)
    step_loss = torch.zeros((), device=d.device)
    size = run.size
    for i, (x, y, bad) in enumerate(run.train_loader, start=first):
        skipped += bad
        micro = i % o.accum_steps
        if micro == 0:
            seed_everything(step_seed(cfg.run.seed, run.step, d.rank))
            lr = lr_at(run.step, run.total_steps, run.warmup_steps, o.lr, o.min_lr, o.schedule,
                       budget_used=run.clock.fraction())
            set_lr(run.optimizer, lr)
            size = size_at(cfg.data.progressive, cfg.data.progressive_end,
                           run.clock.progress(run.step, run.total_steps), run.size)
        if x is not None:
            x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
            x = resize_batch(x, size)
            if run.mixer is not None:
                x, y = run.mixer(x, y)
            skip_sync = d.enabled and micro < o.accum_steps - 1
            with grad_sync(run.model, not skip_sync), autocast(d.device, run.precision):
                loss = run.criterion(run.model(x), y, x) / o.accum_steps
            loss.backward()
            step_loss += loss.detach()
            seen += x.shape[0]
            window_seen += x.shape[0]
        if micro != o.accum_steps - 1:
            continue
        # One all-reduce carries the loss, each rank's projected end for a time budget (budget.py)
        # and whether a signal reached it (preempt.py), so every rank takes the same lr, size and
        # stop decision: one rank signalled stops all after this step, none hangs.
        # Rank 0's clock decides a time-based checkpoint for all (a sharded one needs every rank).
        every = run.checkpoint_every
        time_due = d.is_main and every is not None and every.time_due(time.time() - run.last_ckpt_t)
        packed = torch.stack([step_loss, step_loss.new_tensor(run.clock.projected_s()),
                              step_loss.new_tensor(float(run.stop.requested)), step_loss.new_tensor(float(time_due))])
        value, run.clock.synced_s, signalled, time_due = (dist_utils.all_reduce_sum(packed, d) / d.world).tolist()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss became {value} at epoch {epoch + 1}, step {run.step + 1}; stopped before updating "
                f"weights. {run.out / 'last.pt'} is untouched; lower --lr or lengthen warmup")
        if o.clip_grad:
            torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), o.clip_grad)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        if run.ema is not None:
            run.ema.update(run.raw_model)
        run.step += 1
        step_loss.zero_()
        loss_sum, loss_n = loss_sum + value, loss_n + 1
        bar.update(1)
        if run.step % cfg.run.log_every == 0 or run.step == 1:
            now = time.time()
            ips = window_seen * d.world / max(now - window_t, 1e-9)
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}", px=size)
            run.log.write(kind="step", epoch=epoch + 1, step=run.step, loss=value, lr=lr, img_s=ips,
                          size=size, time=now)
            window_t, window_seen = now, 0
        if cfg.run.max_steps is not None and run.step >= cfg.run.max_steps:
            stop = "max_steps"
        elif run.clock.exhausted():
            stop = "budget"
        elif signalled > 0:
            stop = "signal"
        at_epoch_end = i + 1 == len(run.train_loader) + first
        due = time_due > 0 or (every is not None and every.steps_due(run.step))
        if (d.is_main or run.sharded) and (stop == "signal" or (due and not stop and not at_epoch_end)):
            # (epoch, i + 1): the next batch to train; the epoch end writes its own checkpoint.
            write_checkpoint(run, "last.pt", run.raw_model, epoch, (epoch, i + 1))
        if stop:
            break
    bar.close()
    skipped_t = dist_utils.all_reduce_sum(torch.tensor([skipped], device=d.device), d)
    train_time = time.time() - t_epoch
    return {"train_loss": loss_sum / max(loss_n, 1), "lr": lr, "img_s": seen * d.world / max(train_time, 1e-9),
            "epoch_time_s": train_time, "skipped_images": int(skipped_t.item()) + run.cache_skipped,
            "stop": stop}
