"""Weights & Biases. Offline unless told otherwise: WANDB_MODE is respected, and without it a run
is online only when WANDB_API_KEY is set (nothing here may reach the network uninvited).
Files go to WANDB_DIR, else the run folder (RUN/wandb/)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class WandbTracker:
    def __init__(self, out: Path, run_name: str, run_id: str | None):
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.wandb = wandb
        # resume="allow" with the stored id continues the same W&B run after --resume
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "vitkit"), name=run_name,
                              id=run_id, resume="allow", mode=mode,
                              dir=os.environ.get("WANDB_DIR") or str(out), reinit="create_new")

    def start(self, hparams: dict[str, Any], info: dict[str, Any]) -> None:
        self.run.config.update({**hparams, **{f"info.{k}": v for k, v in info.items() if v is not None}},
                               allow_val_change=True)

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        self.run.log({f"{kind}/{k}": v for k, v in values.items() if v is not None}, step=step)

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        self.run.log({k: self.wandb.Image(img) for k, img in images.items()}, step=step)

    def finish(self, final: dict[str, Any], checkpoint: Path | None, status: str) -> None:
        self.run.summary.update({k: v for k, v in final.items() if isinstance(v, (int, float))})
        if checkpoint is not None:
            self.run.summary["checkpoint"] = str(checkpoint)
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run.id}
