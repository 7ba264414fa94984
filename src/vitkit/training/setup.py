"""Everything a run needs before its first step, as a list of named steps (DeiT's `main.py`).

`setup(cfg, d)` resolves the config (resume.py), checks it (config.validate and the checks
across options below), builds the model, optimizer and data (builders.py), loads a resumed
state, and returns the `Run` (run.py) that engine.py and loop.py use. Nothing is written
before every check has passed.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch
from torch import nn

from ..checkpoint.io import check_out_folder
from ..checkpoint.train_state import resume_position
from ..config import config_from_dict
from ..data.transforms import batch_mixer
from ..errors import UsageError
from ..hardware import describe_device, resolve_attention, resolve_precision
from ..models import build_model as model_from_config
from ..parallel import distributed as dist_utils
from ..parallel.fsdp import apply_fsdp, load_dcp
from ..registry import CNN_MODELS
from . import builders
from .budget import Clock, process_start_time
from .checkpointing import parse_every
from .config import TrainConfig, save_train_config, validate
from .ema import ModelEma
from .few_epochs import FewEpochs
from .optim import build_optimizer
from .resume import drop_metrics_after, resume_config
from .rng import seed_everything, set_deterministic
from ..checkpoint.train_state import RUNNING_MARKER
from .run import MetricsLog, Run
from .tracking import check_available as check_trackers
from .tracking import flatten, git_commit, open_trackers, package_version




def check_across_options(cfg: TrainConfig, d: dist_utils.Dist) -> None:
    """What no single option's range or choices can say (those: config.validate)."""
    o = cfg.optim
    if not cfg.data.path:
        raise UsageError("no training data: pass --data DIR (ImageFolder layout: DIR/train/<class>/...)")
    if o.batch_size % (d.world * o.accum_steps):
        raise UsageError(f"batch size {o.batch_size} is not divisible by processes × accumulation "
                         f"steps ({d.world} × {o.accum_steps})")
    if cfg.run.strategy == "fsdp" and (o.ema_decay or cfg.model.name in CNN_MODELS):
        raise UsageError("run.strategy=fsdp shards a ViT's blocks and keeps no EMA: drop --ema (or use ddp)")
    check_trackers(cfg.run.log_to)
    if o.budget_minutes is not None and cfg.run.deterministic:
        raise UsageError("a time budget (optim.budget_minutes) makes the step count depend on speed; "
                         "it cannot be --deterministic")


def resolve_config(cfg: TrainConfig, d: dist_utils.Dist) -> tuple[TrainConfig, dict | None]:
    """(the config to run, the resumed training state or None), checked."""
    out = Path(cfg.run.out)
    if dist_utils.restart_count() > 0 and (out / "last.pt").exists():
        cfg.run.resume = True  # torchrun --max-restarts: a restarted worker continues by itself
    resume = None
    if cfg.run.resume:
        cfg, resume = resume_config(cfg, out)
    elif (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a run (last.pt); pass --resume to continue it, "
                         f"or choose another --out")
    validate(cfg)  # configs built in Python have not been through load_train_config
    check_across_options(cfg, d)
    return cfg, resume


def prepare_model(cfg: TrainConfig, d: dist_utils.Dist, resume: dict | None, init_ck, classes: list[str],
                  size: int, fused: bool, precision: str) -> nn.Module:
    """The model on its device: resumed, from --init, or new; attention path set; FSDP2 applied."""
    if resume is not None:
        model = model_from_config(config_from_dict(resume["model"]))
        if not resume.get("sharded"):  # an FSDP2 run's weights load after fully_shard, in load_state
            model.load_state_dict(resume["model_state"])
    else:
        model, new_head = builders.build_model(cfg, init_ck, classes, size)
        if init_ck is not None and d.is_main:
            print(f"vitkit train: weights from {cfg.model.init}, "
                  f"{'new zero-init head' if new_head else 'head kept (same classes)'}", flush=True)
    builders.conv_layout(model.to(d.device))  # a CNN trains channels-last (run.strategy=fsdp refuses CNNs)
    pd_end = min(cfg.model.patch_dropout_end, cfg.few_epochs.options.get("model.patch_dropout_end", 1.0))
    if pd_end < 1.0 and not hasattr(model, "set_patch_dropout"):
        raise UsageError(f"model.patch_dropout_end: {cfg.model.name} has no PatchDropout to stop (a ViT has)")
    if hasattr(model, "set_attention_impl"):
        model.set_attention_impl(fused)
    if cfg.model.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    if cfg.run.strategy == "fsdp":  # before the optimizer: it must hold the sharded parameters
        apply_fsdp(model, d.device, precision)
    return model


def load_state(run: Run, resume: dict) -> None:
    """Optimizer, EMA and position of a resumed run (its weights: prepare_model)."""
    if resume.get("sharded"):
        if not run.fsdp:
            raise UsageError(f"{run.out}: an FSDP2 (DCP) run resumes with run.strategy=fsdp")
        load_dcp(run.out / resume["sharded"], run.raw_model, run.optimizer)  # resharded to this world size
    else:
        run.optimizer.load_state_dict(resume["optimizer"])
    if run.ema is not None and resume.get("ema_state") is not None:
        run.ema.module.load_state_dict(resume["ema_state"])
    (run.start_epoch, run.start_batch), run.step, run.best = resume_position(resume), resume["step"], resume["best_top1"]
    run.few.restore(resume.get("few_epochs"))


def wrap(model: nn.Module, cfg: TrainConfig, d: dist_utils.Dist) -> nn.Module:
    """What the step calls: compiled and/or DDP-wrapped (FSDP2 needs no wrapper)."""
    if cfg.run.compile:
        model = torch.compile(model)
    if d.enabled and cfg.run.strategy != "fsdp":
        model = nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    return model


def setup(cfg: TrainConfig, d: dist_utils.Dist) -> Run:
    t_start = time.time()  # wall time counts decoding and setup, not only steps
    cfg, resume = resolve_config(cfg, d)
    o, out = cfg.optim, Path(cfg.run.out)
    if d.is_main:
        check_out_folder(out, "--out")  # before minutes of decoding, not after
    precision, fused = resolve_precision(cfg.run.precision, d.device), resolve_attention(cfg.run.attention, d.device)
    set_deterministic(cfg.run.deterministic)
    seed_everything(cfg.run.seed)
    src, init_ck = builders.source(cfg)
    size = builders.training_size(cfg, src)
    data, manifest = builders.build_datasets_for(cfg, size)
    model = prepare_model(cfg, d, resume, init_ck, data.classes, size, fused, precision)
    optimizer = build_optimizer(model, o)
    loaders = builders.build_loaders(cfg, d, data, manifest, size)
    if loaders.n_train < o.batch_size:
        raise UsageError(f"{loaders.n_train} training images is fewer than one batch of {o.batch_size}; "
                         f"lower --batch-size")
    steps_per_epoch = loaders.n_train // o.batch_size
    spent = float(resume.get("spent_s", 0.0)) if resume is not None else 0.0
    run = Run(cfg=cfg, d=d, out=out, model=model, raw_model=model, optimizer=optimizer,
              ema=ModelEma(model, o.ema_decay) if o.ema_decay else None,
              criterion=builders.build_criterion(cfg, d.device), mixer=batch_mixer(cfg.data, len(data.classes)),
              classes=data.classes, sampler=loaders.position, train_loader=loaders.train, val_loader=loaders.val,
              n_train=loaders.n_train, n_val=loaders.n_val, size=size, precision=precision,
              steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * o.epochs,
              warmup_steps=int(round(o.warmup_epochs * steps_per_epoch)),
              preprocess={"img_size": size, "mean": list(cfg.data.mean), "std": list(cfg.data.std),
                          "crop_pct": cfg.data.crop_pct, "interpolation": cfg.data.interpolation},
              log=MetricsLog(out / "metrics.jsonl", d.is_main), clock=Clock(o.budget_minutes, process_start_time(), spent),
              few=FewEpochs.from_config(cfg),
              cache_skipped=loaders.cache_skipped, checkpoint_every=parse_every(cfg.run.checkpoint_every),
              fsdp=cfg.run.strategy == "fsdp")
    if resume is not None:
        load_state(run, resume)
    run.model = wrap(model, cfg, d)
    if d.is_main:
        start_output(run, resume, t_start, fused)
    return run


def start_output(run: Run, resume: dict | None, t_start: float, fused: bool) -> None:
    """Rank 0: the run folder, config.yaml, metrics.jsonl trimmed on resume, the trackers, and the
    start lines."""
    cfg, d, o, resumed = run.cfg, run.d, run.cfg.optim, resume is not None
    run.out.mkdir(parents=True, exist_ok=True)
    if resumed:
        drop_metrics_after(run.out / "metrics.jsonl", run.step)
    save_train_config(cfg, run.out / "config.yaml")
    (run.out / RUNNING_MARKER).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    n_params = sum(p.numel() for p in run.raw_model.parameters()) / 1e6
    print(f"vitkit train: {cfg.model.name}, {n_params:.2f}M params, {run.n_train} train / {run.n_val} val images, "
          f"{len(run.classes)} classes, {d.world} process(es) on {d.device.type}, {run.steps_per_epoch} "
          f"steps/epoch, {run.precision}, {'SDPA' if fused else 'explicit'} attention, out {run.out}", flush=True)
    print(f"vitkit train: {describe_device(d.device)}", flush=True)
    if o.budget_minutes:
        print(f"vitkit train: time budget {o.budget_minutes:g} min (schedule and sizes follow the clock; "
              f"at most {o.epochs} epochs)", flush=True)
    run.log.write(kind="start", time=t_start, resumed=resumed, device=describe_device(d.device),
                  precision=run.precision)
    start_trackers(run, resume, n_params)


def start_trackers(run: Run, resume: dict | None, n_params_m: float) -> None:
    """Open the trackers of run.log_to (continuing the resumed run's ones), send them the config
    and the run's facts, and keep a few fixed validation images for attention pictures."""
    cfg = run.cfg
    if not cfg.run.log_to:
        return
    run.log.trackers = open_trackers(cfg.run.log_to, run.out, run.out.name, run.step if resume else None,
                                     (resume or {}).get("tracking"), cfg.run.log_checkpoint)
    run.log.trackers.start(flatten(cfg.to_dict()), {
        "params_M": round(n_params_m, 4), "device": describe_device(run.d.device), "precision": run.precision,
        "vitkit": package_version(), "commit": git_commit(), "train_images": run.n_train, "classes": len(run.classes)})
    x = next(iter(run.val_loader))[0]
    run.probe = None if x is None else x[:4].detach().cpu()
