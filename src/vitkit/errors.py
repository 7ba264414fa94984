"""User-facing errors, the lowest layer: every package raises these, and the CLI prints their
message as one line and exits non-zero."""


class ConfigError(ValueError):
    """A config value a user gave that vitkit cannot build a model from."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; a user error should read as a sentence
        return str(self.args[0])


class UsageError(ValueError):
    """Arguments that cannot be used: a missing folder, a bad flag value, ..."""


USER_ERRORS = (UsageError, CheckpointError, ConfigError, UnknownModelError)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before the bad step touched any weights."""


class ExportRefused(RuntimeError):
    """An export whose result failed its own check (int8 agreement below --min-agreement); no file
    was written. The CLI exits 1."""


class CheckpointWriteFailed(RuntimeError):
    """Writing RUN/last.pt or best.pt failed (disk full, permission lost); the previous files are
    intact and no temporary file is left. The CLI exits 1."""


class Preempted(Exception):
    """A signal (SIGTERM, SIGINT, SIGUSR1) stopped the run after a step; RUN/last.pt holds that
    step. The CLI exits with EXIT_PREEMPTED."""


# 75 = EX_TEMPFAIL (sysexits.h): "temporary failure, the user is invited to retry". Distinct from
# 1 (the run failed) and 2 (bad arguments), so a job script can requeue on it.
EXIT_PREEMPTED = 75
