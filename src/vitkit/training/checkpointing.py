"""When a run writes RUN/last.pt, what it records, and what a failed write does.

    vitkit train ... --checkpoint-every 500    # also every 500 optimizer steps
    vitkit train ... --checkpoint-every 10m    # also every 10 minutes of wall time (s, m, h)

A checkpoint is written at each epoch end and, with `run.checkpoint_every`, in the middle of
an epoch. It records `position` = (epoch, batch): the next batch to train. A resumed run skips
the batches before it (ShardSampler.skip), and since the step's randomness is seeded from
(seed, step, rank) (engine.py), a --deterministic run killed mid-epoch ends with the same
weights as one never stopped.

Writes are atomic (checkpoint/io.py: temporary file, fsync, rename). When one fails (disk full,
permission lost) the previous last.pt / best.pt are untouched, the temporary file is removed,
and the run stops with CheckpointWriteFailed (exit 1) rather than training on unprotected.
"""
from __future__ import annotations

import errno
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointWriteFailed, UsageError
from ..checkpoint.train_state import save_train_state

_UNITS = {"": None, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Every:
    steps: int | None = None
    seconds: float | None = None

    def steps_due(self, step: int) -> bool:
        return self.steps is not None and step % self.steps == 0

    def time_due(self, since_last_s: float) -> bool:
        return self.seconds is not None and since_last_s >= self.seconds


def parse_every(text: str | None) -> Every | None:
    """`500` → every 500 steps; `10m` / `90s` / `1h` → by wall time; None / "" / "epoch" → epoch ends only."""
    if text is None or str(text).strip() in ("", "epoch", "none"):
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|)\s*", str(text))
    if not m or float(m.group(1)) <= 0 or (m.group(2) == "" and "." in m.group(1)):
        raise UsageError(f"run.checkpoint_every={text!r}: give optimizer steps (500) or a time "
                         f"(90s, 10m, 1h), greater than 0")
    unit = _UNITS[m.group(2)]
    return Every(steps=int(m.group(1))) if unit is None else Every(seconds=float(m.group(1)) * unit)


def write_checkpoint(run, name: str, model, epochs_done: int, position: tuple[int, int]) -> Path:
    """RUN/<name> from the run's state. `epochs_done`: complete epochs; `position`: (epoch, batch)
    of the next batch to train. Rank 0 only, or every rank for an FSDP2 run."""
    path = run.out / name
    state = dict(optimizer=run.optimizer, ema=run.ema, epoch=epochs_done - 1, step=run.step,
                 best_top1=run.best, class_names=run.classes, preprocess=run.preprocess,
                 train_config=run.cfg.to_dict(), spent_s=run.clock.spent_to_save(), position=list(position),
                 tracking=run.log.trackers.state(), few_epochs=run.few.state())
    try:
        if run.fsdp:  # every rank writes its shards, then rank 0 the file that names them
            from ..parallel import distributed as dist_utils
            from ..parallel.fsdp import remove_older, save_dcp

            folder = f"{path.stem}-step{run.step:09d}.dcp"
            save_dcp(run.out / folder, model, run.optimizer)
            dist_utils.barrier(run.d)
            if run.d.is_main:
                save_train_state(path, model=model, sharded=folder, **state)
                remove_older(run.out, path.stem, folder)
            dist_utils.barrier(run.d)
        else:
            save_train_state(path, model=model, **state)
    except OSError as e:
        why = errno.errorcode.get(e.errno, "") if e.errno else ""
        reason = f"{e.strerror or e}" + (f" ({why})" if why else "")
        raise CheckpointWriteFailed(
            f"could not write {path}: {reason}. The previous last.pt and best.pt in {run.out} are intact; "
            f"free space or fix permissions, then continue with: vitkit train --out {run.out} --resume auto"
        ) from None
    run.last_ckpt_t = time.time()
    return path
