"""`--resume`: continue RUN/last.pt with the configuration the run started with.

    vitkit train --out runs/x --resume                          # the stored configuration
    vitkit train --out runs/x --resume --data /new/place/DIR    # the dataset moved: applied
    vitkit train --out runs/x --resume --lr 0.1                 # refused: one line, exit 2

What a resumed command may change is where and how the run goes on, never what it computes:
`RESUME_MAY_CHANGE`. An option that would change the model or the optimisation (model, lr,
batch size, augmentation, seed, ...) and differs from the stored value is refused, each one
named; an option given with the stored value is fine (the same command runs again after a
preemption). Nothing is dropped in silence.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint.io import atomic_write
from ..checkpoint.train_state import load_train_state
from ..errors import UsageError
from .config import TrainConfig, option_value, train_config_from_dict

RESUME_MAY_CHANGE = frozenset({
    # where the data and the run are, and how fast they are read
    "data.path", "data.val_path", "data.workers", "data.cache_dir", "data.cache_max_gb", "run.out",
    # where and how the same computation runs
    "run.device", "run.precision", "run.attention", "run.compile", "run.deterministic",
    # what is shown and how often it is written
    "run.progress", "run.log_every", "run.eval_every", "run.checkpoint_every", "run.resume",
    "run.log_to", "run.log_checkpoint",
    # how far it goes: more epochs stretch the schedule
    "optim.epochs", "run.max_steps", "optim.budget_minutes",
})


def resume_config(cfg: TrainConfig, out: Path) -> tuple[TrainConfig, dict]:
    """(the stored configuration with the allowed changes of `cfg` applied, the training state).
    `cfg.given` names the options the command gave (training/config.load_train_config)."""
    last = out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist (nothing to resume)")
    state = load_train_state(last)
    stored = train_config_from_dict(state["train_config"])
    refused, applied = [], []
    for key in sorted(getattr(cfg, "given", set())):
        new, old = option_value(cfg, key), option_value(stored, key)
        if new == old:
            continue
        if key not in RESUME_MAY_CHANGE:
            refused.append(f"{key} ({old!r} → {new!r})")
            continue
        section, name = key.split(".")
        setattr(getattr(stored, section), name, new)
        applied.append(f"{key}={new!r}")
    if refused:
        raise UsageError(f"--resume continues {out} as it started; these options would change the model or "
                         f"the optimisation: {', '.join(refused)}. Drop them, or start a new run with another --out")
    stored.run.resume = True
    stored.run.out = str(out)  # the run may have been moved since it started
    stored.given = set()
    if applied:
        print(f"vitkit train: resuming {out} with {', '.join(applied)}", flush=True)
    return stored, state


def drop_metrics_after(path: Path, step: int) -> None:
    """Keep metrics.jsonl records up to the resumed checkpoint's step: the steps after it are
    trained again, and each must appear once (also after several restarts)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in kept)))
