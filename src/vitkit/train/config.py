"""Training options as small dataclasses (model, data, optim, distill, run), filled from a YAML
recipe and then from command-line flags; the resolved result is written to RUN/config.yaml.

    cfg = load_train_config("recipes/cifar10_vit_tiny_cpu.yaml", ["optim.epochs=3", "run.out=runs/x"])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass
class ModelOptions:
    name: str = "vit_tiny_patch4_32"
    init: str | None = None  # start from these weights (any checkpoint load_model reads)
    # "auto": a new zero-init head when the class count OR the stored class names differ from the
    # data's (the trap: 5 classes -> 5 other classes keeps a head that maps dog to airplane);
    # "new" / "keep" force it.
    head: str = "auto"
    img_size: int | None = None  # None: the model's native size
    drop_path_rate: float = 0.1
    patch_dropout: float = 0.0  # training only: fraction of patch tokens dropped per image (PatchDropout)
    overrides: dict = field(default_factory=dict)  # any other ViTConfig field
    grad_checkpointing: bool = False


@dataclass
class DataOptions:
    path: str = ""  # an ImageFolder root, or WebDataset shards ('S/train-{000000..000099}.tar', a URL)
    val_path: str | None = None  # evaluation data (folder or shards); None: beside the training data
    shuffle_buffer: int = 1000  # shards: samples held for shuffling per DataLoader worker
    train_split: str = "train"
    val_split: str | None = None  # None: "val" if present, else "test"
    train_crop: str = "random_resized"  # "random_resized" | "pad_crop" (32-px data) | "resize"
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    pad: int = 4
    hflip: float = 0.5
    auto_augment: str = "none"  # "none" | "randaugment" | "trivialaugment"
    ra_num_ops: int = 2
    ra_magnitude: int = 9
    random_erasing: float = 0.0
    mixup: float = 0.0  # Beta(α, α) for MixUp; 0 disables
    cutmix: float = 0.0  # Beta(α, α) for CutMix; 0 disables
    label_smoothing: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875  # eval: resize to size/crop_pct, centre-crop size
    interpolation: str = "bicubic"
    workers: int = 2
    # "auto": decode once into memory and augment batches as tensors when the augmentations
    # allow it and the decoded set fits `cache_max_gb`; "memory": insist; "none": per-image path.
    cache: str = "auto"
    cache_max_gb: float | None = None  # None: half the memory available at start
    cache_dir: str | None = None  # keep the decoded cache on disk: a folder, or "auto" (DATA/.vitkit-cache)
    # Progressive resizing: train at these sizes in turn, in equal shares of the first
    # `progressive_end` of training; the last must be the model's size (e.g. [24, 32], 0.5).
    progressive: list[int] | None = None
    progressive_end: float = 0.5
    classes: list[str] | None = None  # train on these class folders only
    subset: float | None = None  # keep this fraction of each training class
    per_class: int | None = None  # or at most this many images per training class
    subset_seed: int = 0


@dataclass
class OptimOptions:
    epochs: int = 100
    batch_size: int = 128  # global: summed over processes and accumulation steps
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 5.0
    schedule: str = "cosine"  # "cosine" | "linear" (to min_lr; Li et al. 2020, budgeted training)
    # Train for this many minutes of wall time (decoding and evaluation included) instead of a
    # fixed step count: the lr schedule and progressive sizes follow the clock, epochs becomes an
    # upper bound, and the final evaluation is fitted inside the budget. See train/budget.py.
    budget_minutes: float | None = None
    accum_steps: int = 1
    clip_grad: float | None = 1.0
    ema_decay: float | None = None
    layer_decay: float | None = None  # e.g. 0.65: lr × decay^(depth - layer) (BEiT/MAE)
    freeze: str | None = None  # "backbone": train the head only (linear probe)


@dataclass
class DistillOptions:
    kind: str = "none"  # "none" | "soft" | "hard"
    teacher: str | None = None  # a vitkit run / checkpoint of a ResNet teacher
    alpha: float = 0.5
    tau: float = 1.0


@dataclass
class RunOptions:
    out: str = "runs/exp"
    seed: int = 0
    deterministic: bool = False
    resume: bool = False
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    precision: str = "auto"  # "auto": bf16 on CUDA and on CPUs with native bf16, else fp32 | "fp32" | "bf16"
    attention: str = "auto"  # "auto": SDPA on CUDA, explicit on CPU (faster there) | "sdpa" | "explicit"
    eval_tta: str = "none"  # "none" | "flip": average logits over the image and its mirror
    compile: bool = False
    log_every: int = 20
    eval_every: int = 1  # evaluate every N epochs (always after the last)
    max_steps: int | None = None  # stop early after this many optimizer steps (smoke tests)
    # Also write last.pt mid-epoch: every N optimizer steps ("500") or by wall time ("10m", "90s",
    # "1h"); None: at epoch ends only. See train/checkpointing.py.
    checkpoint_every: str | None = None
    # "ddp": each process holds the whole model (DistributedDataParallel); "fsdp": FSDP2 shards
    # parameters, gradients and optimizer state over processes (train/fsdp.py)
    strategy: str = "ddp"
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    distill: DistillOptions = field(default_factory=DistillOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    """YAML / CLI values into the field's type; one-line errors for values that cannot fit."""
    t = str(f.type)
    if value is None or t.startswith("dict"):
        return value
    try:
        if t.startswith("tuple") and isinstance(value, (list, tuple)):
            return tuple(float(x) for x in value)
        if t.startswith("list[int]"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError(value)
            return [int(x) for x in items if str(x).strip()]
        if t.startswith("list") and isinstance(value, (list, tuple)):
            return [str(x) for x in value]
        if t.startswith("list") and isinstance(value, str):
            return [x for x in value.split(",") if x]
        if t.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if t.startswith("int"):
            return int(value)
        if t.startswith("float"):
            return float(value)
        return str(value) if t.startswith("str") else value
    except (TypeError, ValueError):
        raise UsageError(f"{section}.{f.name}: cannot use {value!r} (expected {t})") from None


def _update(cfg: TrainConfig, section: str, values: dict, origin: str) -> None:
    if not hasattr(cfg, section) or section.startswith("_"):
        raise UsageError(f"{origin}: unknown section {section!r} (sections: model, data, optim, distill, run)")
    if not isinstance(values, dict):
        raise UsageError(f"{origin}: section {section!r} must be a mapping")
    obj = getattr(cfg, section)
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise UsageError(f"{origin}: unknown option {section}.{key}")
        setattr(obj, key, _coerce(section, fields[key], value))


def _apply_sets(cfg: TrainConfig, sets: list[str]) -> None:
    for item in sets:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--set {item!r}: expected section.field=value")
        _update(cfg, section, {name: yaml.safe_load(raw) if raw else ""}, "--set")


# Every numeric option's valid interval, checked before any work starts (one line, exit 2).
# NaN fails every interval. Options absent here are free (e.g. the seed) or checked where used.
RANGES: dict[str, str] = {
    "model.img_size": "[1, inf)", "model.drop_path_rate": "[0, 1)", "model.patch_dropout": "[0, 1)",
    "data.pad": "[0, inf)", "data.hflip": "[0, 1]", "data.ra_num_ops": "[0, inf)", "data.ra_magnitude": "[0, 30]",
    "data.random_erasing": "[0, 1]", "data.mixup": "[0, inf)", "data.cutmix": "[0, inf)",
    "data.label_smoothing": "[0, 1)", "data.crop_pct": "(0, 1]", "data.workers": "[0, inf)",
    "data.cache_max_gb": "(0, inf)", "data.progressive_end": "(0, 1]", "data.subset": "(0, 1]",
    "data.per_class": "[1, inf)", "data.shuffle_buffer": "[1, inf)",
    "optim.epochs": "[1, inf)", "optim.batch_size": "[1, inf)", "optim.lr": "(0, inf)", "optim.min_lr": "[0, inf)",
    "optim.weight_decay": "[0, inf)", "optim.warmup_epochs": "[0, inf)", "optim.budget_minutes": "(0, inf)",
    "optim.accum_steps": "[1, inf)", "optim.clip_grad": "(0, inf)", "optim.ema_decay": "(0, 1)",
    "optim.layer_decay": "(0, 1]",
    "distill.alpha": "[0, 1]", "distill.tau": "(0, inf)",
    "run.log_every": "[1, inf)", "run.eval_every": "[1, inf)", "run.max_steps": "[1, inf)",
}


def in_interval(value: float, interval: str) -> bool:
    """`value` ∈ "[lo, hi)"-style interval; False for NaN."""
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    above = value >= lo if interval[0] == "[" else value > lo
    below = value <= hi if interval[-1] == "]" else value < hi
    return bool(above and below)


def check_ranges(cfg: "TrainConfig") -> None:
    for key, interval in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None and not in_interval(value, interval):
            raise UsageError(f"{key} must be in {interval}, got {value}")
    from .checkpointing import parse_every  # late: it imports torch

    parse_every(cfg.run.checkpoint_every)


def load_train_config(recipe: str | Path | None = None, sets: list[str] | None = None,
                      base: list[str] | None = None) -> TrainConfig:
    """Defaults ← `base` (e.g. finetune's) ← YAML recipe ← `section.field=value` overrides."""
    cfg = TrainConfig()
    _apply_sets(cfg, base or [])
    if recipe:
        path = Path(recipe)
        if not path.is_file():
            raise UsageError(f"recipe {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: a recipe is a mapping of sections")
        for section, values in data.items():
            _update(cfg, section, values, str(path))
    _apply_sets(cfg, sets or [])
    check_ranges(cfg)
    return cfg


def save_train_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def config_from_dict(d: dict) -> TrainConfig:
    cfg = TrainConfig()
    for section, values in d.items():
        _update(cfg, section, values, "checkpoint")
    return cfg
