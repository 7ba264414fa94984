"""vitkit's own formats.

- A model directory: `model.safetensors` + `config.json` (`save_model`). The safetensors header
  carries the same config, so the weights file alone also rebuilds its model.
- A training checkpoint: one `torch.save` file of plain containers and tensors (`RUN/last.pt`,
  `RUN/best.pt`), read with weights_only=True; written by `vitkit.checkpoint.train_state`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import config_from_dict
from ..errors import ConfigError
from ..errors import CheckpointError
from .io import atomic_write, read_safetensors, read_torch_file
from .loaded import LoadedCheckpoint

FORMAT = "vitkit"
TRAIN_FORMAT = "vitkit-train"


def unwrap(model: nn.Module) -> nn.Module:
    """The vitkit model inside torch.compile (`_orig_mod`) and DDP (`module`) wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Persistent tensors, contiguous and detached on the CPU (safetensors refuses shared views)."""
    model = unwrap(model)
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def model_header(model: nn.Module, class_names: list[str] | None = None,
                 preprocess: dict | None = None) -> dict[str, Any]:
    model = unwrap(model)
    if not hasattr(model, "cfg"):
        raise CheckpointError("save_model needs a vitkit model (one with a .cfg ViTConfig)")
    header: dict[str, Any] = {"format": FORMAT, "model": model.cfg.to_dict()}
    if class_names is not None:
        header["class_names"] = list(class_names)
    if preprocess is not None:
        header["preprocess"] = dict(preprocess)
    return header


def save_model_file(model: nn.Module, path: str | Path, class_names: list[str] | None = None,
                    preprocess: dict | None = None, dtype: torch.dtype | None = None,
                    extra: dict | None = None) -> Path:
    """One self-describing .safetensors file (config, classes, preprocessing in its metadata);
    `dtype=torch.float16` halves it (how bundled models ship)."""
    from safetensors.torch import save_file

    header = {**model_header(model, class_names, preprocess), **(extra or {})}
    sd = model_state_dict(model)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={"vitkit": json.dumps(header)}))
    return path


def save_model(model: nn.Module, path: str | Path, class_names: list[str] | None = None,
               preprocess: dict | None = None) -> Path:
    """Write `path/model.safetensors` and `path/config.json`; returns the directory.

    Args:
        model: a vitkit model (plain, compiled or DDP-wrapped).
        path: a directory (created if needed).
        class_names: optional label names, stored so predictions can print them.
        preprocess: optional eval preprocessing (img_size, mean, std, crop_pct, interpolation).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path}: exists and is not a directory")
    save_model_file(model, path / "model.safetensors", class_names, preprocess)
    text = json.dumps(model_header(model, class_names, preprocess), indent=2)
    atomic_write(path / "config.json", lambda tmp: Path(tmp).write_text(text + "\n"))
    return path


def _config_from(header: dict, where: Path):
    try:
        return config_from_dict(dict(header["model"]))
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{where}: invalid vitkit model config: {e}") from None


def read_model_dir(path: Path) -> LoadedCheckpoint:
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(f"{path}: no model.safetensors in this vitkit directory")
    try:
        header = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: unreadable config ({e})") from None
    return LoadedCheckpoint(path, FORMAT, _config_from(header, cfg_file), read_safetensors(weights),
                            class_names=header.get("class_names"), extra=header)


def safetensors_header(path: Path) -> dict | None:
    """The vitkit config stored in a safetensors file's metadata, if any."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError):  # unreadable files are reported by the reader that follows
        return None
    return json.loads(meta["vitkit"]) if "vitkit" in meta else None


def read_model_file(path: Path, header: dict) -> LoadedCheckpoint:
    # Bundled models are stored in fp16 to stay small; models compute in fp32 (or autocast).
    sd = {k: v.float() if v.is_floating_point() else v for k, v in read_safetensors(path).items()}
    return LoadedCheckpoint(path, FORMAT, _config_from(header, path), sd,
                            class_names=header.get("class_names"), extra=header)


def read_train_checkpoint(path: Path, obj: dict | None = None) -> LoadedCheckpoint:
    obj = read_torch_file(path) if obj is None else obj
    if not isinstance(obj, dict) or obj.get("format") != TRAIN_FORMAT:
        raise CheckpointError(f"{path}: not a vitkit training checkpoint")
    state = obj["model_state"]
    if obj.get("sharded"):  # FSDP2 run: the weights are in a DCP folder beside the file
        from .dcp import consolidated_model_state

        state = consolidated_model_state(Path(path).parent / obj["sharded"])
    return LoadedCheckpoint(path, TRAIN_FORMAT, _config_from(obj, path), state,
                            class_names=obj.get("class_names"), extra=obj)
