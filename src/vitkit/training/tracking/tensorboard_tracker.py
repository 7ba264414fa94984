"""TensorBoard: scalars, hyperparameters and images in RUN/tensorboard (`tensorboard --logdir RUN`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class TensorBoardTracker:
    def __init__(self, folder: Path, resumed_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events after the resumed checkpoint's step were trained again; TensorBoard
        # drops the old ones (step >= purge_step), as metrics.jsonl keeps each step once.
        self.writer = SummaryWriter(str(folder), purge_step=None if resumed_step is None else resumed_step + 1)

    def start(self, hparams: dict[str, Any], info: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        for s in hparams_summary({**hparams, **{f"info.{k}": v for k, v in info.items() if v is not None}}, {}):
            self.writer.file_writer.add_summary(s)

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            if v is not None:
                self.writer.add_scalar(f"{kind}/{k}", v, step)
        self.writer.flush()

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        for k, img in images.items():
            self.writer.add_image(k, img, step, dataformats="HWC")
        self.writer.flush()

    def finish(self, final: dict[str, Any], checkpoint: Path | None, status: str) -> None:
        if checkpoint is not None:
            self.writer.add_text("checkpoint", f"{checkpoint} ({status})")
        self.writer.close()

    def state(self) -> dict[str, Any]:
        return {"logdir": self.writer.log_dir}
