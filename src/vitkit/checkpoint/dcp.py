"""Reading FSDP2 runs' DCP checkpoints (RUN/last-stepN.dcp/) back as one state dict, in one process."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .io import read_torch_file


def consolidated_model_state(folder: Path) -> dict[str, torch.Tensor]:
    """The full model state dict of a DCP folder, in one process, without a process group."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    if not folder.is_dir():
        raise CheckpointError(f"{folder}: the sharded checkpoint this run's .pt names is missing")
    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(str(folder), str(Path(tmp) / "full.pt"))
        full = read_torch_file(Path(tmp) / "full.pt")
    return {k: v for k, v in full["model"].items()}
