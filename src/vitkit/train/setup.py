"""Everything a run needs before its first step: the resolved config, model, data, optimizer, resume.

`setup(cfg, dist)` returns a `Run`; `engine.train_one_epoch` and `evaluate.evaluate` use it, and
`loop.train` strings them together. Every check that can fail on user input happens here, before
any file is written.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import model_from_checkpoint, read_checkpoint
from ..errors import UsageError
from ..hardware import describe_device, resolve_attention, resolve_precision
from ..models import build_any, config_from_dict
from ..models.resnet import CNN_MODELS, CNNConfig
from ..registry import model_config
from . import distributed as dist_utils
from .config import OptimOptions, TrainConfig, check_ranges, save_train_config
from .config import config_from_dict as train_config_from_dict
from .budget import Clock, process_start_time
from .data import Data, ShardSampler, batch_mixer, build_datasets, eval_transform, make_loader, resolve_data_root
from .data import train_transform
from .ema import ModelEma
from .evaluate import make_eval_loader
from .fsdp import STRATEGIES, load_sharded, shard_model
from .losses import DistillationLoss
from .optim import SCHEDULES, build_optimizer
from .progressive import check_progressive
from .checkpointing import parse_every
from .preempt import StopRequest
from .state import load_train_state, resume_position
from .tensor_data import TensorLoader, build_tensor_set, use_tensor_path


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
    # A training choice of this run, not of the weights: a fine-tune from a PatchDropout-trained
    # checkpoint does not inherit it.
    overrides.setdefault("patch_dropout", cfg.model.patch_dropout)
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


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step and per epoch (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **record) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


@dataclass
class Run:
    cfg: TrainConfig
    d: dist_utils.Dist
    out: Path
    model: nn.Module  # what the step calls: maybe compiled, maybe DDP-wrapped
    raw_model: nn.Module  # the plain module: checkpoints, EMA, clipping
    optimizer: torch.optim.Optimizer
    ema: ModelEma | None
    criterion: DistillationLoss
    mixer: Any
    classes: list[str]
    sampler: Any  # ShardSampler, or shards.ShardLoader for WebDataset shards
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
    start_epoch: int = 0
    start_batch: int = 0  # the first batch of start_epoch to train (> 0: resumed mid-epoch)
    step: int = 0
    best: float = -1.0
    cache_skipped: int = 0  # unreadable images left out when the tensor cache was built
    extra: dict = field(default_factory=dict)
    checkpoint_every: Any = None  # checkpointing.Every | None
    last_ckpt_t: float = field(default_factory=time.time)
    stop: StopRequest = field(default_factory=StopRequest)
    sharded: bool = False  # FSDP2: checkpoints through torch.distributed.checkpoint, by every rank

    @property
    def primary(self) -> nn.Module:
        """The weights evaluated and kept as best: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.raw_model


def drop_metrics_after(path: Path, step: int) -> None:
    """Keep metrics.jsonl records up to the resumed checkpoint's step: the steps after it are
    trained again, and each must appear once (also after several restarts)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    from ..checkpoint.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in kept)))


def _resume_config(cfg: TrainConfig, out: Path):
    """The run continues with the config it started with; only how far it goes (epochs,
    max_steps) and where it runs may change. More epochs stretch the schedule. An epochs value
    still at its default means "not given": keep the run's own."""
    last = out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist (nothing to resume)")
    resume = load_train_state(last)
    given_epochs = cfg.optim.epochs if cfg.optim.epochs != OptimOptions().epochs else None
    keep = (cfg.run.max_steps, cfg.run.progress, cfg.run.device)
    cfg = train_config_from_dict(resume["train_config"])
    cfg.run.resume = True
    cfg.run.max_steps, cfg.run.progress, cfg.run.device = keep
    cfg.run.out = str(out)  # the run may have been moved since it started
    cfg.optim.epochs = given_epochs or cfg.optim.epochs
    return cfg, resume


def _check_options(cfg: TrainConfig, d: dist_utils.Dist) -> None:
    o = cfg.optim
    if not cfg.data.path:
        raise UsageError("no training data: pass --data DIR (ImageFolder layout: DIR/train/<class>/...)")
    if o.schedule not in SCHEDULES:
        raise UsageError(f"optim.schedule={o.schedule!r}: choose {', '.join(SCHEDULES)}")
    if o.batch_size % (d.world * o.accum_steps):
        raise UsageError(f"batch size {o.batch_size} is not divisible by processes × accumulation "
                         f"steps ({d.world} × {o.accum_steps})")
    if cfg.run.eval_tta not in ("none", "flip"):
        raise UsageError(f"run.eval_tta={cfg.run.eval_tta!r}: choose none or flip")
    check_ranges(cfg)  # configs built in Python skip load_train_config's check
    if cfg.run.strategy not in STRATEGIES:
        raise UsageError(f"run.strategy={cfg.run.strategy!r}: choose {' or '.join(STRATEGIES)}")
    if cfg.run.strategy == "fsdp" and (o.ema_decay or cfg.model.name in CNN_MODELS):
        raise UsageError("run.strategy=fsdp shards a ViT's blocks and keeps no EMA: drop --ema (or use ddp)")
    if o.budget_minutes is not None and cfg.run.deterministic:
        raise UsageError("a time budget (optim.budget_minutes) makes the step count depend on speed; "
                         "it cannot be --deterministic")


def _shard_data(cfg: TrainConfig) -> tuple[Data, dict]:
    """Classes and sample counts of WebDataset shards (train/shards.py) from their manifest."""
    from .shards import read_manifest

    o = cfg.data
    if o.classes or o.subset is not None or o.per_class is not None:
        raise UsageError("data.classes / subset / per_class select files of a folder; with shards, "
                         "write shards of the selection instead (vitkit shards)")
    manifest = read_manifest(o.path)
    return Data(train=None, val=None, classes=list(manifest["classes"])), manifest


def _shard_loaders(cfg: TrainConfig, d: dist_utils.Dist, classes: list[str], manifest: dict, size: int,
                   per_proc: int):
    """(train ShardLoader, val loader, n_train, n_val) for a shard --data; --val-data may be
    shards, a shard folder, or an ImageFolder."""
    from .data import ImageFolderSafe, eval_folder
    from .shards import ShardLoader, ShardStream, eval_shards, expand_shards, shard_eval_loader

    o = cfg.data
    n_train = int(manifest["splits"]["train"]["samples"])
    batches = (n_train // cfg.optim.batch_size) * cfg.optim.accum_steps
    stream = ShardStream(expand_shards(o.path), train_transform(o, size), cfg.run.seed, o.shuffle_buffer)
    train = ShardLoader(stream, per_proc, batches, o.workers)
    val_tf = eval_transform(size, o.mean, o.std, o.crop_pct, o.interpolation)
    shards = eval_shards(o.val_path, o.path, manifest, classes)
    if shards is not None:
        spec, n_val = shards
        return train, shard_eval_loader(spec, val_tf, per_proc, o.workers), n_train, n_val
    val_ds = ImageFolderSafe(eval_folder(o.val_path), val_tf, classes=classes)
    return train, make_eval_loader(val_ds, per_proc, d, o.workers, d.device.type == "cuda"), n_train, len(val_ds)


def _loaders(cfg: TrainConfig, d: dist_utils.Dist, data, size: int, per_proc: int, sampler: ShardSampler):
    """The tensor path when data.cache allows it, else torchvision DataLoaders."""
    n_all = len(data.train) + len(data.val)
    if use_tensor_path(cfg.data, n_all, size, d.is_main):
        root = resolve_data_root(cfg.data.path)
        t0 = time.time()
        train_ts = build_tensor_set(data.train, "train", cfg.data, size, root, cfg.data.workers, d.is_main)
        val_ts = build_tensor_set(data.val, "val", cfg.data, size, root, cfg.data.workers, d.is_main)
        if d.is_main:
            gib = (train_ts.images.numel() + val_ts.images.numel()) / 2**30
            print(f"vitkit train: {len(train_ts)} train / {len(val_ts)} val images decoded into memory "
                  f"({gib:.2f} GiB, {time.time() - t0:.0f}s); augmenting batches on {d.device.type}",
                  flush=True)
        sampler.n = len(train_ts)
        o = cfg.data
        pad = o.pad if o.train_crop == "pad_crop" else 0
        train = TensorLoader(train_ts, per_proc, d.device, o.mean, o.std, sampler=sampler, pad=pad,
                             hflip=o.hflip, seed=cfg.run.seed)
        val = TensorLoader(val_ts, per_proc, d.device, o.mean, o.std, indices=list(range(d.rank, len(val_ts), d.world)))
        return train, val, len(train_ts), len(val_ts), train_ts.skipped + val_ts.skipped
    pin = d.device.type == "cuda"
    train = make_loader(data.train, per_proc, sampler, cfg.data.workers, pin, cfg.run.seed)
    val = make_eval_loader(data.val, per_proc, d, cfg.data.workers, pin)
    return train, val, len(data.train), len(data.val), 0


def setup(cfg: TrainConfig, d: dist_utils.Dist) -> Run:
    t_start = time.time()  # wall time counts decoding and setup, not only steps
    out = Path(cfg.run.out)
    resume = None
    if dist_utils.restart_count() > 0 and (out / "last.pt").exists():
        cfg.run.resume = True  # torchrun --max-restarts: a restarted worker continues by itself
    if cfg.run.resume:
        cfg, resume = _resume_config(cfg, out)
    if resume is None and (out / "last.pt").exists():
        raise UsageError(f"{out} already holds a run (last.pt); pass --resume to continue it, "
                         f"or choose another --out")
    _check_options(cfg, d)
    o = cfg.optim
    precision = resolve_precision(cfg.run.precision, d.device)
    fused = resolve_attention(cfg.run.attention, d.device)
    _set_deterministic(cfg.run.deterministic)
    seed_everything(cfg.run.seed)

    src, init_ck = _source(cfg)
    size = cfg.model.img_size or src.img_size[0]
    check_progressive(cfg.data.progressive, cfg.data.progressive_end, size, getattr(src, "patch_size", None))
    from .shards import is_shard_spec

    shards = is_shard_spec(cfg.data.path)
    data, manifest = _shard_data(cfg) if shards else (build_datasets(cfg.data, size, cfg.run.seed), None)
    if resume is not None:
        model = build_any(config_from_dict(resume["model"]))
        if not resume.get("sharded"):  # a sharded run's weights load after sharding, below
            model.load_state_dict(resume["model_state"])
    else:
        model, new_head = _build_model(cfg, init_ck, data.classes, size)
        if init_ck is not None and d.is_main:
            print(f"vitkit train: weights from {cfg.model.init}, "
                  f"{'new zero-init head' if new_head else 'head kept (same classes)'}", flush=True)
    model.to(d.device)
    if hasattr(model, "set_attention_impl"):
        model.set_attention_impl(fused)
    if cfg.model.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    sharded = cfg.run.strategy == "fsdp"
    if sharded:  # before the optimizer: it must hold the sharded parameters
        shard_model(model, d.device, precision)
    optimizer = build_optimizer(model, o)
    ema = ModelEma(model, o.ema_decay) if o.ema_decay else None
    criterion = _build_criterion(cfg, d.device)
    mixer = batch_mixer(cfg.data, len(data.classes))
    start_epoch, start_batch, step, best, spent = 0, 0, 0, -1.0, 0.0
    if resume is not None:
        spent = float(resume.get("spent_s", 0.0))
        if resume.get("sharded"):
            if not sharded:
                raise UsageError(f"{out}: a sharded (fsdp) run resumes with run.strategy=fsdp")
            load_sharded(out / resume["sharded"], model, optimizer)  # resharded to this world size
        else:
            optimizer.load_state_dict(resume["optimizer"])
        if ema is not None and resume.get("ema_state") is not None:
            ema.module.load_state_dict(resume["ema_state"])
        (start_epoch, start_batch), step, best = resume_position(resume), resume["step"], resume["best_top1"]

    raw_model = model
    if cfg.run.compile:
        model = torch.compile(model)
    if d.enabled and not sharded:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)

    per_proc = o.batch_size // (d.world * o.accum_steps)
    if shards:  # the ShardLoader takes the sampler's part (set_epoch, skip on resume)
        train_loader, val_loader, n_train, n_val = _shard_loaders(cfg, d, data.classes, manifest, size, per_proc)
        sampler, cache_skipped = train_loader, 0
    else:
        sampler = ShardSampler(len(data.train), d.rank, d.world, o.batch_size, cfg.run.seed)
        train_loader, val_loader, n_train, n_val, cache_skipped = _loaders(cfg, d, data, size, per_proc, sampler)
    if n_train < o.batch_size:
        raise UsageError(f"{n_train} training images is fewer than one batch of {o.batch_size}; "
                         f"lower --batch-size")
    steps_per_epoch = n_train // o.batch_size
    preprocess = {"img_size": size, "mean": list(cfg.data.mean), "std": list(cfg.data.std),
                  "crop_pct": cfg.data.crop_pct, "interpolation": cfg.data.interpolation}
    log = MetricsLog(out / "metrics.jsonl", d.is_main)
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            drop_metrics_after(out / "metrics.jsonl", step)
        save_train_config(cfg, out / "config.yaml")
        n_params = sum(p.numel() for p in raw_model.parameters()) / 1e6
        print(f"vitkit train: {cfg.model.name}, {n_params:.2f}M params, {n_train} train / {n_val} val images, "
              f"{len(data.classes)} classes, {d.world} process(es) on {d.device.type}, {steps_per_epoch} "
              f"steps/epoch, {precision}, {'SDPA' if fused else 'explicit'} attention, out {out}", flush=True)
        print(f"vitkit train: {describe_device(d.device)}", flush=True)
        if o.budget_minutes:
            print(f"vitkit train: time budget {o.budget_minutes:g} min (schedule and sizes follow the clock; "
                  f"at most {o.epochs} epochs)", flush=True)
        log.write(kind="start", time=t_start, resumed=resume is not None,
                  device=describe_device(d.device), precision=precision)
    return Run(cfg=cfg, d=d, out=out, model=model, raw_model=raw_model, optimizer=optimizer, ema=ema,
               criterion=criterion, mixer=mixer, classes=data.classes, sampler=sampler,
               train_loader=train_loader, val_loader=val_loader, n_train=n_train, n_val=n_val, size=size,
               precision=precision, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * o.epochs,
               warmup_steps=int(round(o.warmup_epochs * steps_per_epoch)), preprocess=preprocess, log=log,
               clock=Clock(o.budget_minutes, process_start_time(), spent), start_epoch=start_epoch,
               start_batch=start_batch, step=step, best=best, cache_skipped=cache_skipped,
               checkpoint_every=parse_every(cfg.run.checkpoint_every), sharded=sharded)
