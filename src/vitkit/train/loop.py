"""The training loop: one process, or one of many under torchrun, same code.

    vitkit train --config recipes/cifar10_speedrun_cpu.yaml --data DIR --out runs/cifar
    torchrun --nproc_per_node 2 -m vitkit train --config ... --data DIR --out runs/cifar

setup (setup.py) → for each epoch: train_one_epoch (engine.py) → evaluate (evaluate.py) →
checkpoints. Only rank 0 writes (checkpoints, metrics.jsonl, config.yaml). Checkpoints are
written at the end of each epoch, atomically; `--resume` continues from RUN/last.pt.
"""
from __future__ import annotations

import time

from . import distributed as dist_utils
from .config import TrainConfig
from .engine import train_one_epoch
from .evaluate import evaluate
from .setup import Run, seed_everything, setup, wants_new_head  # noqa: F401  (wants_new_head: public)
from .state import save_train_state


def train(cfg: TrainConfig) -> dict:
    """Run training as configured; returns the last epoch's metrics."""
    d = dist_utils.init(cfg.run.device)
    try:
        return _train(setup(cfg, d))
    finally:
        dist_utils.shutdown(d)


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
    if d.is_main:
        val = (f"val loss {metrics['loss']:.4f}  top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%"
               if evaluated else "(not evaluated this epoch)")
        print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  {val}  ({stats['epoch_time_s']:.0f}s, "
              f"{record['img_s']:.0f} img/s"
              + (f", {record['skipped_images']} unreadable images skipped" if record["skipped_images"] else "")
              + ")", flush=True)
        state = dict(optimizer=run.optimizer, ema=run.ema, epoch=epoch, step=run.step, best_top1=run.best,
                     class_names=run.classes, preprocess=run.preprocess, train_config=cfg.to_dict(),
                     spent_s=run.clock.spent_s())
        save_train_state(run.out / "last.pt", model=run.raw_model, **state)
        if is_best:
            save_train_state(run.out / "best.pt", model=run.primary, **state)
    dist_utils.barrier(d)
    return record


def _train(run: Run) -> dict:
    record: dict = {}
    if run.clock.exhausted():
        if run.d.is_main:
            print(f"vitkit train: the time budget of {run.cfg.optim.budget_minutes:g} min is already spent; "
                  f"nothing to train", flush=True)
        return record
    for epoch in range(run.start_epoch, run.cfg.optim.epochs):
        # The global RNG (dropout, drop path, PatchDropout, MixUp) restarts from (seed, epoch,
        # rank) each epoch, so a run resumed at an epoch boundary continues exactly.
        seed_everything(run.cfg.run.seed * 1000 + epoch * 10 + run.d.rank)
        stats = train_one_epoch(run, epoch)
        record = _end_of_epoch(run, epoch, stats)
        if stats["stop"]:
            break
    return record
