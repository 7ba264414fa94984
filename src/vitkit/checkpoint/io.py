"""Reading and writing tensors safely: safetensors, torch files (weights only), npz (no pickle).

No function here can run pickled code: torch files go through `weights_only=True` and numpy
archives through `allow_pickle=False`.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, UsageError


def read_torch_file(path: Path) -> Any:
    """A `torch.save` file loaded with weights_only=True (plain containers and tensors only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported pickle content"
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors and plain "
                              f"containers, which could run code ({first[:160]})") from None
    except Exception as e:  # a damaged file fails in many ways (KeyError from the memo, EOFError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {msg[:160]}") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                              f"{str(e).splitlines()[0][:160]}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable .npz archive: {str(e).splitlines()[0][:160]}") from None


def read_tensor_file(path: Path) -> dict[str, Any]:
    """Any single tensor file by its suffix: .safetensors, .npz, else a torch file."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix == ".npz":
        return read_npz(path)
    obj = read_torch_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # Hub repos (timm and transformers), preferred first


def weights_in(folder: Path) -> Path | None:
    """The weights file of a Hub-layout folder: model.safetensors, else pytorch_model.bin."""
    return next((folder / n for n in WEIGHT_FILES if (folder / n).exists()), None)


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


def _blocker(target: Path) -> str | None:
    """Why nothing can be written at `target` (a folder or file to create), or None: the nearest
    part of it that exists must be a folder this process can write in."""
    for q in (target, *target.parents):
        if q.exists():
            if not q.is_dir():
                return f"{q} is a file, not a folder"
            if not os.access(q, os.W_OK | os.X_OK):
                return f"{q} is not writable"
            return None
    return None


def check_out_folder(folder: str | Path, flag: str) -> None:
    """Fail before any work when `folder` cannot be created or written in, with a UsageError that
    names the part of the path in the way (`--out runs/x/y: runs/x is a file, not a folder`)."""
    why = _blocker(Path(folder))
    if why:
        raise UsageError(f"{flag} {folder}: {why}")


def check_out_file(path: str | Path, flag: str) -> None:
    """As check_out_folder, for a file to write: its folder must be usable and it not a folder."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    why = _blocker(path.parent)
    if why:
        raise UsageError(f"{flag} {path}: {why}")


def atomic_write(path: Path, write) -> None:
    """Write through `write(tmp_path)` into a temporary file beside `path`, fsync, then rename.

    A process killed at any moment leaves either the old file or the new one, never a partial one.
    An OSError is raised again with `path` as its filename: the temporary name means nothing to a user.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        # mkdir through a file says "Not a directory" or "File exists": say which part is the file.
        raise OSError(e.errno, _blocker(path.parent) or e.strerror or str(e), str(path)) from e
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file 0600; the result gets the mode any new file gets (0666 less the
        # umask), so a server running as another user can read an exported model.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename == tmp:
            raise OSError(e.errno, e.strerror, str(path)) from e  # same subclass (errno), the user's name
        raise
