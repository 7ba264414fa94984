"""One epoch of training (DeiT's `train_one_epoch`): batches → loss → step.

Setup lives in setup.py, evaluation in inference/evaluate.py, the epoch loop and epoch-end
checkpoints in loop.py. Per optimizer step: the RNG seeded from (seed, step, rank), lr from
the schedule, the batch resized for progressive training, MixUp / CutMix, forward under the
resolved precision, backward (`_accumulate`); then one all-reduce carrying the loss, the budget
clock and the stop flags, clipping, the optimizer and EMA (`_sync_and_step`); then the log line
and a mid-epoch checkpoint when one is due (`_after_step`).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import TrainingDiverged
from ..checkpoint.native import unwrap
from ..hardware import autocast
from ..parallel import distributed as dist_utils
from ..parallel.fsdp import grad_sync
from .checkpointing import write_checkpoint
from .optim import lr_at, set_lr
from .progressive import patch_dropout_at, size_at
from .rng import seed_everything, step_seed
from .run import Run


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, C, size, size), antialiased when shrinking (progressive resizing)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@dataclass
class EpochStats:
    """What one epoch accumulates between steps."""
    t_start: float = field(default_factory=time.time)
    seen: int = 0
    skipped: int = 0
    loss_sum: float = 0.0
    loss_n: int = 0
    window_t: float = field(default_factory=time.time)  # img/s over the steps since the last log line
    window_seen: int = 0
    lr: float = 0.0
    size: int = 0


def _begin_step(run: Run, st: EpochStats) -> None:
    """Seed, lr and image size of the optimizer step about to start."""
    cfg, o = run.cfg, run.cfg.optim
    seed_everything(step_seed(cfg.run.seed, run.step, run.d.rank))
    st.lr = lr_at(run.step, run.total_steps, run.warmup_steps, o.lr, o.min_lr, o.schedule,
                  budget_used=run.clock.fraction())
    set_lr(run.optimizer, st.lr)
    progress = run.clock.progress(run.step, run.total_steps)
    if run.few.decide(run.step, run.steps_per_epoch, progress) and run.d.is_main:
        print(f"vitkit train: {run.few.describe(run.step, run.steps_per_epoch)}", flush=True)
        run.log.write(kind="few_epochs", step=run.step, short=run.few.short, projected_epochs=run.few.projected,
                      options=run.few.options if run.few.short else {}, time=time.time())
    st.size = size_at(run.few.value(cfg, "data.progressive"), run.few.value(cfg, "data.progressive_end"),
                      progress, run.size)
    pd_end = run.few.value(cfg, "model.patch_dropout_end")
    if pd_end < 1.0:
        unwrap(run.model).set_patch_dropout(patch_dropout_at(cfg.model.patch_dropout, pd_end, progress))


def _accumulate(run: Run, st: EpochStats, x, y, micro: int, step_loss: torch.Tensor) -> None:
    """Forward and backward of one micro-batch; gradients summed until the last micro-batch."""
    d, o = run.d, run.cfg.optim
    x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
    x = resize_batch(x, st.size)  # (B, C, size, size)
    if run.mixer is not None:
        x, y = run.mixer(x, y)  # y: (B, classes) soft labels
    skip_sync = d.enabled and micro < o.accum_steps - 1
    with grad_sync(run.model, not skip_sync), autocast(d.device, run.precision):
        loss = run.criterion(run.model(x), y, x) / o.accum_steps
    loss.backward()
    step_loss += loss.detach()
    st.seen += x.shape[0]
    st.window_seen += x.shape[0]


def _sync_and_step(run: Run, epoch: int, step_loss: torch.Tensor) -> tuple[float, bool, bool]:
    """All-reduce, then clip / step / EMA. Returns (mean loss, signalled, time checkpoint due).

    One all-reduce carries the loss, each rank's projected end for a time budget (budget.py),
    whether a signal reached it (preempt.py) and rank 0's checkpoint clock, so every rank takes
    the same lr, size, stop and checkpoint decision: one rank signalled stops all after this
    step, none hangs (a DCP checkpoint needs every rank).
    """
    d, every = run.d, run.checkpoint_every
    time_due = d.is_main and every is not None and every.time_due(time.time() - run.last_ckpt_t)
    packed = torch.stack([step_loss, step_loss.new_tensor(run.clock.projected_s()),
                          step_loss.new_tensor(float(run.stop.requested)), step_loss.new_tensor(float(time_due))])
    value, run.clock.synced_s, signalled, due = (dist_utils.all_reduce_sum(packed, d) / d.world).tolist()
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"loss became {value} at epoch {epoch + 1}, step {run.step + 1}; stopped before updating "
            f"weights. {run.out / 'last.pt'} is untouched; lower --lr or lengthen warmup")
    if run.cfg.optim.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), run.cfg.optim.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.raw_model)
    run.step += 1
    step_loss.zero_()
    return value, signalled > 0, due > 0


def _log_step(run: Run, st: EpochStats, epoch: int, value: float, bar) -> None:
    if run.step % run.cfg.run.log_every and run.step != 1:
        return
    now = time.time()
    ips = st.window_seen * run.d.world / max(now - st.window_t, 1e-9)
    bar.set_postfix(loss=f"{value:.4f}", lr=f"{st.lr:.2e}", img_s=f"{ips:.0f}", px=st.size)
    run.log.write(kind="step", epoch=epoch + 1, step=run.step, loss=value, lr=st.lr, img_s=ips, size=st.size, time=now)
    st.window_t, st.window_seen = now, 0


def _stop_reason(run: Run, signalled: bool) -> str | None:
    if run.cfg.run.max_steps is not None and run.step >= run.cfg.run.max_steps:
        return "max_steps"
    if run.clock.exhausted():
        return "budget"
    return "signal" if signalled else None


def train_one_epoch(run: Run, epoch: int) -> dict:
    """Train one epoch (from batch `run.start_batch` when resumed into it); returns its statistics
    and `stop`: None, "max_steps", "budget" or "signal"."""
    d, o = run.d, run.cfg.optim
    first = run.start_batch if epoch == run.start_epoch else 0  # batches already trained
    run.sampler.set_epoch(epoch, first, o.batch_size // (d.world * o.accum_steps))
    run.model.train()
    run.criterion.train()
    st, stop = EpochStats(size=run.size), None
    bar = tqdm(total=run.steps_per_epoch, initial=first // o.accum_steps, desc=f"epoch {epoch + 1}/{o.epochs}",
               disable=not (d.is_main and run.cfg.run.progress and sys.stderr.isatty()),  # no bar in logs
               dynamic_ncols=True, leave=True)
    step_loss = torch.zeros((), device=d.device)
    n_batches = len(run.train_loader) + first
    for i, (x, y, bad) in enumerate(run.train_loader, start=first):
        st.skipped += bad
        micro = i % o.accum_steps
        if micro == 0:
            _begin_step(run, st)
        if x is not None:
            _accumulate(run, st, x, y, micro, step_loss)
        if micro != o.accum_steps - 1:
            continue
        value, signalled, time_due = _sync_and_step(run, epoch, step_loss)
        st.loss_sum, st.loss_n = st.loss_sum + value, st.loss_n + 1
        bar.update(1)
        _log_step(run, st, epoch, value, bar)
        stop = _stop_reason(run, signalled)
        due = time_due or (run.checkpoint_every is not None and run.checkpoint_every.steps_due(run.step))
        if (d.is_main or run.fsdp) and (stop == "signal" or (due and not stop and i + 1 < n_batches)):
            # (epoch, i + 1): the next batch to train; the epoch end writes its own checkpoint.
            write_checkpoint(run, "last.pt", run.raw_model, epoch, (epoch, i + 1))
        if stop:
            break
    bar.close()
    skipped = dist_utils.all_reduce_sum(torch.tensor([st.skipped], device=d.device), d)
    train_time = time.time() - st.t_start
    return {"train_loss": st.loss_sum / max(st.loss_n, 1), "lr": st.lr, "img_s": st.seen * d.world / max(train_time, 1e-9),
            "epoch_time_s": train_time, "skipped_images": int(skipped.item()) + run.cache_skipped, "stop": stop}
