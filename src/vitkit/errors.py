"""User-facing errors. The CLI prints their message as one line and exits non-zero."""
from .checkpoint.errors import CheckpointError
from .config import ConfigError
from .registry import UnknownModelError


class UsageError(ValueError):
    """Arguments that cannot be used: a missing folder, a bad flag value, ..."""


USER_ERRORS = (UsageError, CheckpointError, ConfigError, UnknownModelError)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before the bad step touched any weights."""


class CheckpointWriteFailed(RuntimeError):
    """Writing RUN/last.pt or best.pt failed (disk full, permission lost); the previous files are
    intact and no temporary file is left. The CLI exits 1."""


class Preempted(Exception):
    """A signal (SIGTERM, SIGINT, SIGUSR1) stopped the run after a step; RUN/last.pt holds that
    step. The CLI exits with EXIT_PREEMPTED."""


# 75 = EX_TEMPFAIL (sysexits.h): "temporary failure, the user is invited to retry". Distinct from
# 1 (the run failed) and 2 (bad arguments), so a job script can requeue on it.
EXIT_PREEMPTED = 75
