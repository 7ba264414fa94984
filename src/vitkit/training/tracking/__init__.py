"""Experiment trackers: TensorBoard, MLflow and Weights & Biases behind one small interface.

    vitkit train ... --log-to tensorboard,mlflow,wandb       # any subset; recipes: run.log_to
    tensorboard --logdir RUN/tensorboard                     # MLFLOW_TRACKING_URI, WANDB_MODE, WANDB_DIR respected

Each tool is an optional dependency (`pip install 'vitkit[tracking]'`); a missing one is a one-line
error before any work. Rank 0 only. What each receives: at the start the whole configuration as
hyperparameters and the run's facts (parameters, device, CPU flags / GPU, vitkit version, commit);
every logged step loss, lr, img/s and image size; every evaluation top-1, top-5, loss, best top-1
and attention-rollout pictures of a few fixed validation images; at the end the final metrics and
where the checkpoint is. A resumed run continues the same tracked runs: their ids ride in last.pt.
"""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...errors import UsageError

TRACKERS = ("tensorboard", "mlflow", "wandb")
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


class Tracker(Protocol):
    """One tool. `state()` is what a resumed run needs to continue the same tracked run."""

    def start(self, hparams: dict[str, Any], info: dict[str, Any]) -> None: ...

    def log(self, kind: str, step: int, values: dict[str, float]) -> None: ...  # kind: "train" | "eval"

    def images(self, step: int, images: dict[str, np.ndarray]) -> None: ...  # name → (H, W, 3) uint8

    def finish(self, final: dict[str, Any], checkpoint: Path | None, status: str) -> None: ...

    def state(self) -> dict[str, Any]: ...


def check_available(names: list[str] | None) -> None:
    """Every named tracker's package is importable, else one line naming the extra (UsageError)."""
    for name in names or []:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise UsageError(f"--log-to {name}: the {_PACKAGES[name]} package is not installed; "
                             f"pip install 'vitkit[tracking]' (or pip install {_PACKAGES[name]})")


def git_commit() -> str | None:
    """The commit of the vitkit checkout, when it is one (a wheel has none)."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def package_version() -> str:
    """vitkit's installed version (importlib.metadata: no import of the package root from inside it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vitkit")
    except PackageNotFoundError:
        return "unknown"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1e-3}} → {"optim.lr": 1e-3}; lists and None as text (what the tools take)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class Trackers:
    """All the trackers of a run, called as one (an empty list does nothing)."""

    def __init__(self, trackers: dict[str, Tracker]):
        self.trackers = trackers

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def start(self, hparams, info) -> None:
        for t in self.trackers.values():
            t.start(hparams, info)

    def log(self, kind, step, values) -> None:
        for t in self.trackers.values():
            t.log(kind, step, values)

    def images(self, step, images) -> None:
        for t in self.trackers.values():
            t.images(step, images)

    def finish(self, final, checkpoint, status) -> None:
        for t in self.trackers.values():
            t.finish(final, checkpoint, status)

    def state(self) -> dict[str, Any]:
        return {name: t.state() for name, t in self.trackers.items()}


def open_trackers(names: list[str] | None, out: Path, run_name: str, resumed_step: int | None,
                  saved: dict[str, Any] | None, log_checkpoint: bool = False) -> Trackers:
    """The trackers `names` asks for; `saved` (from last.pt) continues the same tracked runs."""
    saved = saved or {}
    made: dict[str, Tracker] = {}
    for name in names or []:
        if name == "tensorboard":
            from .tensorboard_tracker import TensorBoardTracker
            made[name] = TensorBoardTracker(out / "tensorboard", resumed_step)
        elif name == "mlflow":
            from .mlflow_tracker import MlflowTracker
            made[name] = MlflowTracker(run_name, saved.get(name, {}).get("run_id"), log_checkpoint)
        else:
            from .wandb_tracker import WandbTracker
            made[name] = WandbTracker(out, run_name, saved.get(name, {}).get("run_id"))
    return Trackers(made)
