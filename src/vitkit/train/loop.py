"""The training loop: one process, or one of many under torchrun, same code.

    vitkit train --config recipes/cifar10_vit_tiny_cpu.yaml --data DIR --out runs/cifar
    torchrun --nproc_per_node 2 -m vitkit train --config ... --data DIR --out runs/cifar

Only rank 0 writes (checkpoints, metrics.jsonl, config.yaml). Checkpoints are written at the end
of each epoch, atomically; `--resume` continues from RUN/last.pt.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint import model_from_checkpoint, read_checkpoint
from ..errors import TrainingDiverged, UsageError
from ..models import build_any, config_from_dict
from ..models.resnet import CNN_MODELS, CNNConfig
from ..registry import model_config
from . import distributed as dist_utils
from .config import OptimOptions, TrainConfig, save_train_config
from .config import config_from_dict as train_config_from_dict
from .data import ShardSampler, batch_mixer, build_datasets, make_loader
from .ema import ModelEma
from .evaluate import evaluate, make_eval_loader
from .losses import DistillationLoss
from .optim import build_optimizer, lr_at, set_lr
from .state import load_train_state, save_train_state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _set_deterministic(on: bool) -> None:
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def _source(cfg: TrainConfig):
    """The architecture before data decides the class count, and the --init checkpoint if any."""
    if cfg.model.init:
        ck = read_checkpoint(cfg.model.init)
        return ck.cfg, ck
    if cfg.model.name in CNN_MODELS:
        return CNNConfig(**CNN_MODELS[cfg.model.name]), None
    return model_config(cfg.model.name), None


def wants_new_head(mode: str, ck_classes: list[str] | None, n_ck: int, classes: list[str]) -> bool:
    """Whether fine-tuning from a checkpoint gets a new head (see ModelOptions.head)."""
    if mode not in ("auto", "new", "keep"):
        raise UsageError(f"model.head={mode!r}: choose auto, new or keep")
    if mode != "auto":
        if mode == "keep" and n_ck != len(classes):
            raise UsageError(f"model.head=keep: the checkpoint has {n_ck} classes, the data {len(classes)}")
        return mode == "new"
    # Same count but other names is a new task. Without stored names (timm, JAX) only the count tells.
    return n_ck != len(classes) or (ck_classes is not None and list(ck_classes) != list(classes))


def _build_model(cfg: TrainConfig, init_ck, classes: list[str], size: int) -> tuple[nn.Module, bool]:
    overrides = dict(cfg.model.overrides)
    overrides["num_classes"] = len(classes)
    overrides["img_size"] = size
    if init_ck is not None:  # positions resampled to `size`
        overrides.setdefault("drop_path_rate", cfg.model.drop_path_rate)
        new = wants_new_head(cfg.model.head, init_ck.class_names, init_ck.cfg.num_classes, classes)
        return model_from_checkpoint(init_ck, new_head=new, **overrides), new
    return build_any(cfg.model.name, drop_path_rate=cfg.model.drop_path_rate, **overrides), True


def _build_criterion(cfg: TrainConfig, device) -> DistillationLoss:
    dc = cfg.distill
    teacher = None
    if dc.kind != "none":
        if not dc.teacher:
            raise UsageError(f"--distill {dc.kind} needs --teacher CKPT")
        from ..checkpoint import load_model

        teacher = load_model(dc.teacher).to(device)
    try:
        return DistillationLoss(dc.kind, teacher, dc.alpha, dc.tau, cfg.data.label_smoothing)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step and per epoch (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **record) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig) -> dict:
    """Run training as configured; returns the last epoch's metrics."""
    d = dist_utils.init(cfg.run.device)
    try:
        return _train(cfg, d)
    finally:
        dist_utils.shutdown(d)


def _train(cfg: TrainConfig, d: dist_utils.Dist) -> dict:
    out = Path(cfg.run.out)
    resume = None
    if cfg.run.resume:
        last = out / "last.pt"
        if not last.exists():
            raise UsageError(f"--resume: {last} does not exist (nothing to resume)")
        resume = load_train_state(last)
        # The run continues with the config it started with; only how far it goes (epochs,
        # max_steps) and where it runs may change. More epochs stretch the cosine schedule.
        # An epochs value still at its default means "not given": keep the run's own.
        given_epochs = cfg.optim.epochs if cfg.optim.epochs != OptimOptions().epochs else None
        keep = (cfg.run.max_steps, cfg.run.progress, cfg.run.device)
        cfg = train_config_from_dict(resume["train_config"])
        cfg.run.resume = True
        cfg.run.max_steps, cfg.run.progress, cfg.run.device = keep
        cfg.run.out = str(out)  # the run may have been moved since it started
        cfg.optim.epochs = given_epochs or cfg.optim.epochs
    if resume is None and (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a run (last.pt); pass --resume to continue it, "
                         f"or choose another --out")
    if not cfg.data.path:
        raise UsageError("no training data: pass --data DIR (ImageFolder layout: DIR/train/<class>/...)")
    o = cfg.optim
    if o.batch_size % (d.world * o.accum_steps):
        raise UsageError(f"batch size {o.batch_size} is not divisible by processes × accumulation "
                         f"steps ({d.world} × {o.accum_steps})")
    _set_deterministic(cfg.run.deterministic)
    seed_everything(cfg.run.seed)

    src, init_ck = _source(cfg)
    size = cfg.model.img_size or src.img_size[0]
    data = build_datasets(cfg.data, size, cfg.run.seed)
    if resume is not None:
        model = build_any(config_from_dict(resume["model"]))
        model.load_state_dict(resume["model_state"])
    else:
        model, new_head = _build_model(cfg, init_ck, data.classes, size)
        if init_ck is not None and d.is_main:
            print(f"vitkit train: weights from {cfg.model.init}, "
                  f"{'new zero-init head' if new_head else 'head kept (same classes)'}", flush=True)
    model.to(d.device)
    if cfg.model.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    optimizer = build_optimizer(model, o)
    ema = ModelEma(model, o.ema_decay) if o.ema_decay else None
    criterion = _build_criterion(cfg, d.device)
    mixer = batch_mixer(cfg.data, len(data.classes))
    start_epoch, step, best = 0, 0, -1.0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        if ema is not None and resume.get("ema_state") is not None:
            ema.module.load_state_dict(resume["ema_state"])
        start_epoch, step, best = resume["epoch"] + 1, resume["step"], resume["best_top1"]

    raw_model = model
    if cfg.run.compile:
        model = torch.compile(model)
    if d.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)

    n_train = len(data.train)
    if n_train < o.batch_size:
        raise UsageError(f"{n_train} training images is fewer than one batch of {o.batch_size}; "
                         f"lower --batch-size")
    per_proc = o.batch_size // (d.world * o.accum_steps)
    sampler = ShardSampler(n_train, d.rank, d.world, o.batch_size, cfg.run.seed)
    pin = d.device.type == "cuda"
    loader = make_loader(data.train, per_proc, sampler, cfg.data.workers, pin, cfg.run.seed)
    val_loader = make_eval_loader(data.val, per_proc, d, cfg.data.workers, pin)
    steps_per_epoch = n_train // o.batch_size
    total = steps_per_epoch * o.epochs
    warmup = int(round(o.warmup_epochs * steps_per_epoch))
    preprocess = {"img_size": size, "mean": list(cfg.data.mean), "std": list(cfg.data.std),
                  "crop_pct": cfg.data.crop_pct, "interpolation": cfg.data.interpolation}
    log = MetricsLog(out / "metrics.jsonl", d.is_main)
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_train_config(cfg, out / "config.yaml")
        print(f"vitkit train: {cfg.model.name}, {sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f}M params, {n_train} train / "
              f"{len(data.val)} val images, {len(data.classes)} classes, {d.world} process(es) on "
              f"{d.device.type}, {steps_per_epoch} steps/epoch, out {out}", flush=True)

    last_metrics: dict = {}
    stop = False
    for epoch in range(start_epoch, o.epochs):
        if stop:
            break
        # The global RNG (dropout, drop path, MixUp) restarts from (seed, epoch, rank) each epoch,
        # so a run resumed at an epoch boundary continues exactly as an uninterrupted one.
        seed_everything(cfg.run.seed * 1000 + epoch * 10 + d.rank)
        sampler.set_epoch(epoch)
        model.train()
        criterion.train()
        t_epoch, seen, skipped, loss_sum, loss_n = time.time(), 0, 0, 0.0, 0
        window_t, window_seen = time.time(), 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{o.epochs}",
                   disable=not (d.is_main and cfg.run.progress and sys.stderr.isatty()),  # no bar in logs
                   dynamic_ncols=True, leave=True)
        step_loss = torch.zeros((), device=d.device)
        for i, (x, y, bad) in enumerate(loader):
            skipped += bad
            micro = i % o.accum_steps
            if micro == 0:
                lr = lr_at(step, total, warmup, o.lr, o.min_lr)
                set_lr(optimizer, lr)
            if x is not None:
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                if mixer is not None:
                    x, y = mixer(x, y)
                sync = d.enabled and micro < o.accum_steps - 1
                with (model.no_sync() if sync else contextlib.nullcontext()), _autocast(d.device, cfg.run.precision):
                    loss = criterion(model(x), y, x) / o.accum_steps
                loss.backward()
                step_loss += loss.detach()
                seen += x.shape[0]
                window_seen += x.shape[0]
            if micro != o.accum_steps - 1:
                continue
            # One all-reduce tells every rank the global loss, so all stop together on NaN.
            global_loss = dist_utils.all_reduce_sum(step_loss.clone(), d) / d.world
            value = global_loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at epoch {epoch + 1}, step {step + 1}; stopped before updating "
                    f"weights. {out / 'last.pt'} is untouched; lower --lr or lengthen warmup")
            if o.clip_grad:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), o.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(raw_model)
            step += 1
            step_loss.zero_()
            loss_sum, loss_n = loss_sum + value, loss_n + 1
            bar.update(1)
            if step % cfg.run.log_every == 0 or step == 1:
                now = time.time()
                ips = window_seen * d.world / max(now - window_t, 1e-9)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}")
                log.write(kind="step", epoch=epoch + 1, step=step, loss=value, lr=lr, img_s=ips, time=now)
                window_t, window_seen = now, 0
            if cfg.run.max_steps is not None and step >= cfg.run.max_steps:
                stop = True
                break
        bar.close()
        skipped_t = dist_utils.all_reduce_sum(torch.tensor([skipped], device=d.device), d)
        train_time = time.time() - t_epoch
        primary = ema.module if ema is not None else raw_model
        evaluated = (epoch + 1) % max(cfg.run.eval_every, 1) == 0 or epoch + 1 == o.epochs or stop
        metrics = evaluate(primary, val_loader, d, len(data.classes)) if evaluated else \
            {"loss": None, "top1": None, "top5": None}
        is_best = evaluated and metrics["top1"] > best
        best = max(best, metrics["top1"]) if evaluated else best
        last_metrics = {"kind": "epoch", "epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(loss_n, 1),
                        "loss": metrics["loss"], "top1": metrics["top1"], "top5": metrics["top5"],
                        "best_top1": best, "lr": lr, "img_s": seen * d.world / max(train_time, 1e-9),
                        "epoch_time_s": train_time, "skipped_images": int(skipped_t.item()), "time": time.time()}
        log.write(**last_metrics)
        if d.is_main:
            val = (f"val loss {metrics['loss']:.4f}  top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%"
                   if evaluated else "(not evaluated this epoch)")
            print(f"epoch {epoch + 1}: train loss {last_metrics['train_loss']:.4f}  {val}  ({train_time:.0f}s, "
                  f"{last_metrics['img_s']:.0f} img/s"
                  + (f", {last_metrics['skipped_images']} unreadable images skipped" if skipped_t.item() else "")
                  + ")", flush=True)
            state = dict(optimizer=optimizer, ema=ema, epoch=epoch, step=step, best_top1=best,
                         class_names=data.classes, preprocess=preprocess, train_config=cfg.to_dict())
            save_train_state(out / "last.pt", model=raw_model, **state)
            if is_best:
                save_train_state(out / "best.pt", model=primary, **state)
        dist_utils.barrier(d)
    return last_metrics
