"""User-facing errors. The CLI prints their message as one line and exits non-zero."""
from .checkpoint.errors import CheckpointError
from .config import ConfigError
from .registry import UnknownModelError


class UsageError(ValueError):
    """Arguments that cannot be used: a missing folder, a bad flag value, ..."""


USER_ERRORS = (UsageError, CheckpointError, ConfigError, UnknownModelError)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before the bad step touched any weights."""
