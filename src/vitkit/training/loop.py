"""The training loop: one process, or one of many under torchrun, same code.

    vitkit train --config recipes/cifar10_speedrun_cpu.yaml --data DIR --out runs/cifar
    torchrun --nproc_per_node 2 -m vitkit train --config ... --data DIR --out runs/cifar

setup (setup.py) → for each epoch: train_one_epoch (engine.py) → evaluate (inference/evaluate.py) →
checkpoints. Only rank 0 writes (checkpoints, metrics.jsonl, config.yaml). Checkpoints are
written atomically at the end of each epoch and, with `run.checkpoint_every`, mid-epoch
(checkpointing.py); `--resume` continues from RUN/last.pt, at the batch where it stopped.
SIGTERM / SIGINT / SIGUSR1 stop after the current step with last.pt written (preempt.py).
"""
from __future__ import annotations

import gc
import time

import torch

from ..errors import Preempted
from ..inference.evaluate import evaluate
from ..parallel import distributed as dist_utils
from .checkpointing import write_checkpoint
from .config import TrainConfig
from .engine import train_one_epoch
from .rng import seed_everything
from .run import Run
from ..checkpoint.train_state import RUNNING_MARKER
from .setup import setup


def train(cfg: TrainConfig) -> dict:
    """Run training as configured; returns the last epoch's metrics."""
    d = dist_utils.init(cfg.run.device)
    run = None
    try:
        run = setup(cfg, d)
        status, record = "failed", {}
        try:
            record = _train(run)
            status = "finished"
        except Preempted:
            status = "stopped"
            raise
        finally:
            _end(run, status, record)
        return record
    finally:
        # The trap: the wrapped model (FSDP2's modules, DDP's reducer) sits in reference cycles and
        # holds the process group; left to the interpreter's teardown it was freed after
        # destroy_process_group, with no Python frame left, and 2 of 117 2-process runs under load
        # aborted there ("terminate called without an active exception", SIGABRT after the last
        # epoch's line; tests/test_fsdp.py in CI). Freed here, while the group still exists.
        del run
        gc.collect()
        dist_utils.shutdown(d)


def _end(run: Run, status: str, record: dict) -> None:
    """Rank 0: the closing metrics.jsonl record (`vitkit runs` reads it), the trackers' end, and
    the running marker removed."""
    if not run.d.is_main:
        return
    run.log.write(kind="end", status=status, step=run.step, best_top1=run.best, time=time.time())
    run.log.trackers.finish(record, run.out, {"finished": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED"))
    (run.out / RUNNING_MARKER).unlink(missing_ok=True)


def _end_of_epoch(run: Run, epoch: int, stats: dict) -> dict:
    """Evaluate (when due), log, print and write last.pt / best.pt."""
    cfg, d = run.cfg, run.d
    o = cfg.optim
    evaluated = (epoch + 1) % max(cfg.run.eval_every, 1) == 0 or epoch + 1 == o.epochs or stats["stop"]
    t_eval = time.time()
    metrics = evaluate(run.primary, run.val_loader, d, len(run.classes), precision=run.precision,
                       tta=cfg.run.eval_tta) if evaluated else {"loss": None, "top1": None, "top5": None}
    if evaluated:  # a time budget keeps this much free for the final evaluation
        run.clock.reserve_s = time.time() - t_eval
    is_best = evaluated and metrics["top1"] > run.best
    run.best = max(run.best, metrics["top1"]) if evaluated else run.best
    record = {"kind": "epoch", "epoch": epoch + 1, "step": run.step, "train_loss": stats["train_loss"],
              "loss": metrics["loss"], "top1": metrics["top1"], "top5": metrics["top5"], "best_top1": run.best,
              "lr": stats["lr"], "img_s": stats["img_s"], "epoch_time_s": stats["epoch_time_s"],
              "skipped_images": stats["skipped_images"], "time": time.time()}
    run.log.write(**record)
    if evaluated and run.log.trackers and run.probe is not None and d.is_main:
        from ..viz.overlays import rollout_overlays

        run.log.trackers.images(run.step, rollout_overlays(run.primary, run.probe.to(d.device), cfg.data.mean,
                                                           cfg.data.std))
    if d.is_main:
        val = (f"val loss {metrics['loss']:.4f}  top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%"
               if evaluated else "(not evaluated this epoch)")
        print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  {val}  ({stats['epoch_time_s']:.0f}s, "
              f"{record['img_s']:.0f} img/s"
              + (f", {record['skipped_images']} unreadable images skipped" if record["skipped_images"] else "")
              + ")", flush=True)
    if d.is_main or run.fsdp:  # an FSDP2 (DCP) checkpoint is written by every rank
        # best first: a failed write of best.pt then leaves last.pt at the previous epoch, consistent
        if is_best:
            write_checkpoint(run, "best.pt", run.primary, epoch + 1, (epoch + 1, 0))
        write_checkpoint(run, "last.pt", run.raw_model, epoch + 1, (epoch + 1, 0))
    dist_utils.barrier(d)
    return record


def _stopped(run: Run, where: str):
    """Every rank reaches this together (the stop flag was all-reduced); rank 0 has written last."""
    dist_utils.barrier(run.d)  # no rank exits while rank 0 still writes
    return Preempted(f"stopped by {run.stop.name} {where} (step {run.step}); {run.out / 'last.pt'} holds it. "
                     f"Continue with the same command plus --resume auto (or: vitkit train --out {run.out} --resume)")


def _train(run: Run) -> dict:
    record: dict = {}
    if run.clock.exhausted():
        if run.d.is_main:
            print(f"vitkit train: the time budget of {run.cfg.optim.budget_minutes:g} min is already spent; "
                  f"nothing to train", flush=True)
        return record
    run.stop.install()
    try:
        for epoch in range(run.start_epoch, run.cfg.optim.epochs):
            # The RNG is also reseeded per step (rng.step_seed); this covers what runs before
            # the first step (e.g. the folder loader's first batch with workers=0).
            seed_everything(run.cfg.run.seed * 1000 + epoch * 10 + run.d.rank)
            stats = train_one_epoch(run, epoch)
            if stats["stop"] == "signal":
                raise _stopped(run, f"in epoch {epoch + 1}")
            record = _end_of_epoch(run, epoch, stats)
            if stats["stop"]:
                break
            # A signal during the evaluation: last.pt was just written at this epoch's end.
            flag = torch.tensor([float(run.stop.requested)], device=run.d.device)
            if dist_utils.all_reduce_sum(flag, run.d).item() > 0:
                raise _stopped(run, f"after epoch {epoch + 1}")
    finally:
        run.stop.uninstall()
    return record
