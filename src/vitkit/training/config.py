"""Training options as small dataclasses (model, data, optim, distill, run), filled from a YAML
recipe and then from command-line flags; the resolved result is written to RUN/config.yaml.

    cfg = load_train_config("recipes/cifar10_vit_tiny_cpu.yaml", ["optim.epochs=3", "run.out=runs/x"])
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.options import DataOptions
from ..errors import UsageError


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
    # PatchDropout stops at this fraction of the run (steps or budget, as progressive resizing):
    # the last steps then train on every token, as the test-time model sees them. 1.0: never.
    patch_dropout_end: float = 1.0
    overrides: dict = field(default_factory=dict)  # any other ViTConfig field
    grad_checkpointing: bool = False


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
    # upper bound, and the final evaluation is fitted inside the budget. See training/budget.py.
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
class FewEpochsOptions:
    # Settings for a run that its time budget gives few epochs (training/few_epochs.py): when
    # the epochs projected at the pace so far are fewer than `below`, the `options` (from
    # SWITCHABLE below, e.g. {"model.patch_dropout_end": 0.85}) replace the configured
    # values for the rest of the run. None: off.
    below: float | None = None
    options: dict = field(default_factory=dict)
    # The progress at which to decide. None: the first point where an option would make a
    # difference — needed for data.progressive, whose sizes differ from the first step on.
    at: float | None = None


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
    # "1h"); None: at epoch ends only. See training/checkpointing.py.
    checkpoint_every: str | None = None
    # "ddp": each process holds the whole model (DistributedDataParallel); "fsdp": FSDP2 shards
    # parameters, gradients and optimizer state over processes (parallel/fsdp.py)
    strategy: str = "ddp"
    progress: bool = True
    # Experiment trackers, any of tensorboard, mlflow, wandb (training/tracking/); None: metrics.jsonl only
    log_to: list[str] | None = None
    log_checkpoint: bool = False  # MLflow: also keep best.pt and config.yaml as the run's artifacts


@dataclass
class TrainConfig:
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    distill: DistillOptions = field(default_factory=DistillOptions)
    few_epochs: FewEpochsOptions = field(default_factory=FewEpochsOptions)
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


SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _update(cfg: TrainConfig, section: str, values: dict, origin: str) -> None:
    if not hasattr(cfg, section) or section.startswith("_"):
        raise UsageError(f"{origin}: unknown section {section!r} (sections: {', '.join(SECTIONS)})")
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
    "model.patch_dropout_end": "(0, 1]",
    "data.pad": "[0, inf)", "data.hflip": "[0, 1]", "data.ra_num_ops": "[0, inf)", "data.ra_magnitude": "[0, 30]",
    "data.random_erasing": "[0, 1]", "data.mixup": "[0, inf)", "data.cutmix": "[0, inf)",
    "data.label_smoothing": "[0, 1)", "data.crop_pct": "(0, 1]", "data.workers": "[0, inf)",
    "data.cache_max_gb": "(0, inf)", "data.progressive_end": "(0, 1]", "data.subset": "(0, 1]",
    "data.per_class": "[1, inf)", "data.shuffle_buffer": "[1, inf)",
    "optim.epochs": "[1, inf)", "optim.batch_size": "[1, inf)", "optim.lr": "(0, inf)", "optim.min_lr": "[0, inf)",
    "optim.weight_decay": "[0, inf)", "optim.warmup_epochs": "[0, inf)", "optim.budget_minutes": "(0, inf)",
    "optim.accum_steps": "[1, inf)", "optim.clip_grad": "(0, inf)", "optim.ema_decay": "(0, 1)",
    "optim.layer_decay": "(0, 1]",
    "distill.alpha": "[0, 1]", "distill.tau": "(0, inf)", "few_epochs.below": "(0, inf)",
    "few_epochs.at": "(0, 1)",
    "run.log_every": "[1, inf)", "run.eval_every": "[1, inf)", "run.max_steps": "[1, inf)",
}


# Options a run may switch part-way (few_epochs.options): the engine reads them at every step
# (training/engine._begin_step). Others are built into the model, data or optimizer at setup.
SWITCHABLE = ("data.progressive", "data.progressive_end", "model.patch_dropout_end")


def in_interval(value: float, interval: str) -> bool:
    """`value` ∈ "[lo, hi)"-style interval; False for NaN."""
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    above = value >= lo if interval[0] == "[" else value > lo
    below = value <= hi if interval[-1] == "]" else value < hi
    return bool(above and below)


# Every enumerated option's choices: the one list the CLI's `choices=`, recipes and Python
# configs are all checked against (a typo is one line naming the option and its choices).
CHOICES: dict[str, tuple] = {
    "model.head": ("auto", "new", "keep"),
    "data.train_crop": ("random_resized", "pad_crop", "resize"),
    "data.auto_augment": ("none", "randaugment", "trivialaugment"),
    "data.interpolation": ("bicubic", "bilinear", "nearest"),
    "data.cache": ("auto", "memory", "none"),
    "optim.schedule": ("cosine", "linear"),
    "optim.freeze": (None, "backbone"),
    "distill.kind": ("none", "soft", "hard"),
    "run.device": ("auto", "cpu", "cuda"),
    "run.precision": ("auto", "fp32", "bf16"),
    "run.attention": ("auto", "sdpa", "explicit"),
    "run.eval_tta": ("none", "flip"),
    "run.strategy": ("ddp", "fsdp"),
}


# Options that take a list, each item one of these.
LIST_CHOICES: dict[str, tuple] = {"run.log_to": ("tensorboard", "mlflow", "wandb")}


def _show(choices: tuple) -> str:
    return ", ".join("null" if c is None else str(c) for c in choices)


def validate(cfg: "TrainConfig") -> None:
    """Every option's range and choices; the one check for the CLI, recipes and Python configs.
    Raises UsageError naming the option before anything is written."""
    for key, interval in RANGES.items():
        value = option_value(cfg, key)
        if value is not None and not in_interval(value, interval):
            raise UsageError(f"{key} must be in {interval}, got {value}")
    for key, choices in CHOICES.items():
        value = option_value(cfg, key)
        if value not in choices:
            raise UsageError(f"{key}={value!r} is not a choice: choose one of {_show(choices)}")
    for key, choices in LIST_CHOICES.items():
        for item in option_value(cfg, key) or []:
            if item not in choices:
                raise UsageError(f"{key}: {item!r} is not a choice: choose any of {_show(choices)}")
    _validate_few_epochs(cfg)
    from .checkpointing import parse_every  # late: it imports torch

    parse_every(cfg.run.checkpoint_every)


def _validate_few_epochs(cfg: "TrainConfig") -> None:
    """few_epochs.options: switchable keys, each value in its option's range (sizes for
    data.progressive, with `at` set); both below and options or neither."""
    fe = cfg.few_epochs
    if not isinstance(fe.options, dict):
        raise UsageError(f"few_epochs.options must be a mapping of option: value, got {fe.options!r}")
    if (fe.below is None) != (not fe.options):
        raise UsageError("few_epochs needs both below (an epoch count) and options (what to switch), or neither")
    if fe.at is not None and fe.below is None:
        raise UsageError("few_epochs.at needs below and options: there is nothing to decide")
    for key, value in fe.options.items():
        if key not in SWITCHABLE:
            raise UsageError(f"few_epochs.options: {key!r} cannot be switched during a run; "
                             f"switchable: {', '.join(SWITCHABLE)}")
        if key == "data.progressive":
            # sizes against the patch and the training size: builders.training_size, with the model
            if not isinstance(value, list) or not value or not all(_is_int(s) for s in value):
                raise UsageError(f"few_epochs.options: data.progressive must be a list of sizes, got {value!r}")
            if fe.at is None:
                raise UsageError("few_epochs.options switches data.progressive, whose sizes differ from the "
                                 "first step on: set few_epochs.at, the progress to decide at (e.g. 0.05)")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not in_interval(value, RANGES[key]):
            raise UsageError(f"few_epochs.options: {key} must be in {RANGES[key]}, got {value!r}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def option_value(cfg: "TrainConfig", key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def load_train_config(recipe: str | Path | None = None, sets: list[str] | None = None,
                      base: list[str] | None = None) -> TrainConfig:
    """Defaults ← `base` (e.g. finetune's) ← YAML recipe ← `section.field=value` overrides.

    The result's `given` attribute holds the dotted keys the recipe and `sets` named (not `base`):
    what a resumed run compares with the configuration it started with (training/resume.py).
    """
    cfg = TrainConfig()
    _apply_sets(cfg, base or [])
    given: set[str] = set()
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
            given.update(f"{section}.{k}" for k in values)
    _apply_sets(cfg, sets or [])
    given.update(item.partition("=")[0] for item in sets or [])
    validate(cfg)
    cfg.given = given
    return cfg


def save_train_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def train_config_from_dict(d: dict, origin: str = "checkpoint") -> TrainConfig:
    """A TrainConfig from nested sections ({"optim": {"lr": 1e-3}, ...}); `given` = its keys."""
    cfg = TrainConfig()
    if not isinstance(d, dict):
        raise UsageError(f"{origin}: a config is a mapping of sections")
    for section, values in d.items():
        _update(cfg, section, values, origin)
    cfg.given = {f"{s}.{k}" for s, v in d.items() for k in v}
    return cfg


# The command-line flags of `vitkit train` / `finetune`, and the keyword arguments of
# `vitkit.train()`: flag → (config key, help). Types come from the dataclass fields and choices
# from CHOICES, so each option is declared here once. Bool flags set their key to true
# ("no_progress" sets run.progress to false).
FLAGS: dict[str, tuple[str, str]] = {
    "model": ("model.name", "registered model name (vitkit models) or resnet18_cifar, ..."),
    "init": ("model.init", "start from these weights (any checkpoint)"),
    "head": ("model.head", "with --init: auto (default) replaces the head when the class count or names differ"),
    "img_size": ("model.img_size", "train at this size (position tables are resampled)"),
    "drop_path": ("model.drop_path_rate", "stochastic depth rate of the last block"),
    "patch_dropout": ("model.patch_dropout", "drop this fraction of patch tokens in training"),
    "data": ("data.path", "folder with train/ and val/ (or test/) in ImageFolder layout; 'sample' = bundled "
                          "CIFAR-10 sample; or WebDataset shards 'S/train-{000000..000099}.tar' (vitkit shards)"),
    "val_data": ("data.val_path", "evaluation data (folder or shards); default: beside --data"),
    "workers": ("data.workers", "processes decoding images"),
    "cache": ("data.cache", "decode the data once into memory and augment batches as tensors (auto: when it fits)"),
    "epochs": ("optim.epochs", "epochs (an upper bound with --budget-minutes)"),
    "batch_size": ("optim.batch_size", "global batch (all processes and accumulation steps)"),
    "lr": ("optim.lr", "peak learning rate"),
    "warmup_epochs": ("optim.warmup_epochs", "linear warmup length"),
    "weight_decay": ("optim.weight_decay", "AdamW weight decay"),
    "accum_steps": ("optim.accum_steps", "gradient accumulation steps"),
    "layer_decay": ("optim.layer_decay", "layer-wise lr decay, e.g. 0.65"),
    "freeze": ("optim.freeze", "backbone: train the head only (linear probe)"),
    "ema": ("optim.ema_decay", "keep an EMA of the weights, e.g. 0.9998: evaluated and saved as best.pt"),
    "budget_minutes": ("optim.budget_minutes", "train for M minutes of wall time: schedule and progressive "
                                               "sizes follow the clock"),
    "distill": ("distill.kind", "DeiT distillation from --teacher"),
    "teacher": ("distill.teacher", "teacher checkpoint (a vitkit run of a ResNet, ...)"),
    "out": ("run.out", "run directory (checkpoints, metrics.jsonl, config.yaml)"),
    "seed": ("run.seed", "random seed"),
    "device": ("run.device", "where to train"),
    "precision": ("run.precision", "auto (default): bf16 on CUDA and on CPUs with native bf16, else fp32"),
    "max_steps": ("run.max_steps", "stop after this many optimizer steps"),
    "log_every": ("run.log_every", "log every N steps"),
    "checkpoint_every": ("run.checkpoint_every", "also write last.pt mid-epoch: every N steps (500) or by time "
                                                 "(10m, 90s, 1h)"),
    "log_to": ("run.log_to", "experiment trackers, comma-separated: tensorboard,mlflow,wandb (vitkit[tracking])"),
    "strategy": ("run.strategy", "under torchrun: ddp (default) or fsdp (FSDP2: shards weights, gradients, optimizer)"),
    "deterministic": ("run.deterministic", "deterministic algorithms (same run, same weights)"),
    "compile": ("run.compile", "torch.compile the model"),
    "no_progress": ("run.progress", "no progress bar"),
}


def field_type(key: str) -> str:
    """The annotation of a dotted option ("optim.lr" → "float")."""
    section, name = key.split(".")
    return str(next(f.type for f in dataclasses.fields(getattr(TrainConfig(), section)) if f.name == name))


def flag_sets(flags: dict[str, Any]) -> list[str]:
    """`section.field=value` items for flag values (None: not given)."""
    sets = []
    for flag, value in flags.items():
        if flag not in FLAGS:
            raise UsageError(f"unknown option {flag!r}; options: {', '.join(sorted(FLAGS))}")
        if value is None:
            continue
        key = FLAGS[flag][0]
        if field_type(key).startswith("bool"):
            if not value:
                continue
            value = flag != "no_progress"
        sets.append(f"{key}={json.dumps(value)}")  # JSON is YAML: "123" stays a string
    return sets
