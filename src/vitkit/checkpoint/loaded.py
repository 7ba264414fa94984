"""What every format reader returns: a vitkit config and a state dict in vitkit (= timm) names."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import ViTConfig


@dataclass
class LoadedCheckpoint:
    """A checkpoint translated to vitkit's naming, before any resizing.

    Args:
        path: the file or directory read.
        source: "vitkit", "vitkit-train", "timm", "hf" or "jax".
        cfg: the architecture as read from shapes / the stored config.
        state_dict: tensors under vitkit's (timm's) parameter names.
        resample: (mode, antialias) the source library uses to resize position tables at load.
        class_names: label names when the checkpoint stores them.
        extra: anything else the source carried (training state, HF id2label, ...).
    """

    path: Path
    source: str
    cfg: ViTConfig
    state_dict: dict[str, torch.Tensor]
    resample: tuple[str, bool] = ("bicubic", True)
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
