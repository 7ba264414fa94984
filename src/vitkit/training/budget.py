"""How far a run is, in [0, 1]: by steps, or by the wall clock when `optim.budget_minutes` is set.

    vitkit train --config recipes/cifar10_speedrun_cpu.yaml --data DIR --budget-minutes 30

A recipe sized in epochs is sized for one machine: the same 18 epochs took 28 minutes on one
2-core VM of this project and 15 on another. With a time budget the linear decay reaches zero,
and progressive resizing reaches the final size, when the minutes run out, whatever the speed
(Li et al. 2020, "Budgeted training": fit the schedule to the budget). `optim.epochs` then only
bounds the run.

The clock starts when the process started (imports and decoding count, as for a user timing
the command), carries over a resume (the checkpoint
stores the seconds spent), and the last evaluation's duration is reserved so the final
evaluation ends inside the budget. Under torchrun the ranks average their projected end each
step (in the all-reduce the loss already makes), so every rank sees the same progress, the same
lr and stops at the same step. The trap: the step count now depends on speed, so a budgeted run
is not repeatable step for step (hence no --deterministic with it).
"""
from __future__ import annotations

import os
import time


def process_start_time() -> float:
    """When this process started (Unix seconds), from /proc on Linux; now elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start, in clock ticks since boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


class Clock:
    def __init__(self, budget_minutes: float | None, t_start: float, spent_before_s: float = 0.0):
        self.budget_s = budget_minutes * 60.0 if budget_minutes else None
        self.t_start = t_start
        self.before = spent_before_s  # seconds spent by earlier processes of a resumed run
        self.reserve_s = 0.0  # the last evaluation's duration: kept free for the final one
        # The projected end (seconds), averaged over ranks at the last step: the only value that
        # decides lr, size and stopping, so ranks never disagree.
        self.synced_s = spent_before_s

    def spent_s(self) -> float:
        """Seconds of this run so far, over all its processes (this rank's clock)."""
        return self.before + time.time() - self.t_start

    def projected_s(self) -> float:
        """Seconds spent plus the time the final evaluation will take: what must fit the budget."""
        return self.spent_s() + self.reserve_s

    def fraction(self) -> float:
        """Budget used, from the last synced value; 0 without a budget."""
        if self.budget_s is None:
            return 0.0
        return min(1.0, self.synced_s / self.budget_s)

    def progress(self, step: int, total_steps: int) -> float:
        """Fraction of the run done: the larger of steps done and budget used."""
        return max(step / max(total_steps, 1), self.fraction())

    def exhausted(self) -> bool:
        return self.budget_s is not None and self.synced_s >= self.budget_s

    def spent_to_save(self) -> float:
        """The seconds a checkpoint records. The trap: a run stops when spent + the reserved final
        evaluation reach the budget, and that evaluation may then run faster than reserved, so the
        clock can read a fraction of a second under the budget; a resume would then see time left
        and train another epoch. A run that stopped by its clock records the whole budget."""
        spent = self.spent_s()
        return max(spent, self.budget_s) if self.exhausted() else spent
