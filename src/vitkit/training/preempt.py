"""Preemption: SIGTERM, SIGINT and SIGUSR1 end a run cleanly instead of killing it.

    #SBATCH --signal=USR1@90        # SLURM: USR1 90 s before the time limit
    vitkit train --config R.yaml --data DIR --out runs/x --resume auto

A signal only sets a flag. The step in flight finishes; the flag rides in the all-reduce the
step already makes (engine.py), so under torchrun every rank stops after the same step, even
when only one rank got the signal; rank 0 writes RUN/last.pt with the position in the epoch;
every process then exits with EXIT_PREEMPTED and prints how to resume.

The trap: a handler that raised (KeyboardInterrupt) could fire inside the checkpoint write or
between backward() and step(); a flag checked at a step boundary cannot. A second Ctrl-C falls
back to Python's default (KeyboardInterrupt), for a user who does not want to wait.
"""
from __future__ import annotations

import signal


from ..data.workers import SIGNALS


class StopRequest:
    """Signal handlers that record the first signal; `install()` in the main thread only."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user insists
        self.signum = self.signum or signum

    def install(self) -> "StopRequest":
        for s in SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. train() called from a worker thread)
                break
        return self

    def uninstall(self) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


