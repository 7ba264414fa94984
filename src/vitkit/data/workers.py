"""DataLoader workers leave the stop signals to the training process (training/preempt.py)."""
from __future__ import annotations

import signal

SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGUSR1")) if s is not None)


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader worker_init_fn: workers leave the signals to the main process, which shuts
    them down itself (a worker killed by SIGTERM would end the epoch with an error instead)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
