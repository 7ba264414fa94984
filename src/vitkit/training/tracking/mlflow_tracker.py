"""MLflow, through its client (no global active run: two runs in one process stay apart).
The tracking URI is MLflow's own choice: MLFLOW_TRACKING_URI, else its default store."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EXPERIMENT = "vitkit"
_MAX_PARAM = 6000  # MLflow's limit on a parameter value's length


class MlflowTracker:
    def __init__(self, run_name: str, run_id: str | None, log_checkpoint: bool):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.log_checkpoint = log_checkpoint
        if run_id is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(EXPERIMENT)
            run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
            self.resumed = False
        else:  # the same MLflow run continues (resume)
            self.client.update_run(run_id, status="RUNNING")
            self.resumed = True
        self.run_id = run_id

    def start(self, hparams: dict[str, Any], info: dict[str, Any]) -> None:
        if self.resumed:  # parameters are immutable in MLflow; the first start logged them
            return
        from mlflow.entities import Param

        items = {**hparams, **{f"info.{k}": v for k, v in info.items() if v is not None}}
        params = [Param(k, str(v)[:_MAX_PARAM]) for k, v in items.items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{kind}/{k}", float(v), now, step) for k, v in values.items() if v is not None]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        from PIL import Image

        with tempfile.TemporaryDirectory() as tmp:
            for k, img in images.items():
                path = Path(tmp) / f"{k.replace('/', '_')}_step{step:07d}.png"
                Image.fromarray(img).save(path)
                self.client.log_artifact(self.run_id, str(path), "attention")

    def finish(self, final: dict[str, Any], checkpoint: Path | None, status: str) -> None:
        if checkpoint is not None:
            self.client.set_tag(self.run_id, "vitkit.checkpoint", str(checkpoint))
            best = checkpoint / "best.pt"
            if self.log_checkpoint and best.exists():
                self.client.log_artifact(self.run_id, str(best), "checkpoint")
                if (checkpoint / "config.yaml").exists():
                    self.client.log_artifact(self.run_id, str(checkpoint / "config.yaml"), "checkpoint")
        self.client.set_terminated(self.run_id, status=status)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id}
