"""`vitkit.train()`: the Python entry point of training, the one `vitkit train` calls.

    import vitkit
    result = vitkit.train("recipes/quickstart.yaml", data="sample", out="runs/a", epochs=3)
    result.top1, result.out, result.metrics[-1]          # final test top-1 (%), the run folder, metrics.jsonl rows
    vitkit.train({"model": {"name": "vit_tiny_patch4_32"}}, data="DIR", out="runs/b",
                 set={"data.mixup": 0.8}, batch_size=64, deterministic=True)

Re-entrant: the RNGs, deterministic mode and a process group it had to create are given back
when it returns (training/rng.py), so two calls with the same deterministic config give the
same weights. Under torchrun, call it in every process, as the CLI does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrainConfig, train_config_from_dict, flag_sets, load_train_config
from .rng import kept_global_state

FINETUNE_DEFAULTS = ["optim.lr=1e-4", "optim.warmup_epochs=1", "optim.weight_decay=0.05", "model.drop_path_rate=0.1"]


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves: `top1` is the final evaluation's test top-1 (%),
    None when the run evaluated nothing (e.g. a spent time budget)."""
    out: Path
    top1: float | None
    best_top1: float | None
    metrics: list[dict] = field(default_factory=list)  # the rows of RUN/metrics.jsonl
    config: TrainConfig | None = None


def build_config(config: str | Path | dict | None = None, *, set: dict | None = None, finetune: bool = False,
                 resume: str | bool | None = None, **flags: Any) -> TrainConfig:
    """The TrainConfig for a recipe path or dict, `set` ({"data.mixup": 0.8}) and CLI-named flags;
    checked (one UsageError naming the option)."""
    sets = [f"{k}={json.dumps(v)}" for k, v in (set or {}).items()] + flag_sets(flags)
    base = FINETUNE_DEFAULTS if finetune else None
    if isinstance(config, dict):
        # a dict recipe: through YAML text, the same path a recipe file takes
        cfg = load_train_config(None, _dict_sets(config) + sets, base=base)
    else:
        cfg = load_train_config(config, sets, base=base)
    apply_resume(cfg, resume)
    return cfg


def apply_resume(cfg: TrainConfig, resume: str | bool | None) -> None:
    """`resume`: True continues RUN/last.pt; "auto" continues it when it exists, else starts fresh."""
    if resume == "auto":
        cfg.run.resume = (Path(cfg.run.out) / "last.pt").exists()
    elif resume:
        cfg.run.resume = True


def _dict_sets(config: dict) -> list[str]:
    train_config_from_dict(config, "config")  # unknown sections/options: the same one-line errors as a recipe
    return [f"{s}.{k}={json.dumps(v) if not isinstance(v, tuple) else json.dumps(list(v))}"
            for s, values in config.items() for k, v in values.items()]


def train(config: str | Path | dict | None = None, *, data: str | Path | None = None, out: str | Path | None = None,
          set: dict | None = None, **flags: Any) -> TrainResult:
    """Train as `vitkit train` does and return the result.

    Args:
        config: a recipe (YAML path) or the same as a dict of sections, or None for the defaults.
        data: the training data (`--data`): a folder, "sample", or WebDataset shards.
        out: the run folder (`--out`).
        set: dotted options, as `--set` (e.g. {"data.mixup": 0.8}).
        **flags: the CLI's long options by their Python names: epochs=3, batch_size=64, lr=1e-3,
            deterministic=True, resume=True or "auto", finetune=True (fine-tuning defaults), ...
    """
    finetune, resume = bool(flags.pop("finetune", False)), flags.pop("resume", None)
    if data is not None:
        flags["data"] = str(data)
    if out is not None:
        flags["out"] = str(out)
    cfg = build_config(config, set=set, finetune=finetune, resume=resume, **flags)
    from .loop import train as run_training  # after the config is checked: a bad one fails before the data stack loads

    with kept_global_state():
        last = run_training(cfg)
    return read_result(Path(cfg.run.out), last, cfg)


def read_result(out: Path, last: dict, cfg: TrainConfig | None = None) -> TrainResult:
    path = out / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    evaluated = [r for r in rows if r.get("kind") == "epoch" and r.get("top1") is not None]
    return TrainResult(out=out, top1=last.get("top1") if last else (evaluated[-1]["top1"] if evaluated else None),
                       best_top1=max((r["top1"] for r in evaluated), default=None), metrics=rows, config=cfg)

