"""All checkpoint surgery in one place: unwrapping, prefix stripping, resizing, head changes.

Nothing outside `vitkit.checkpoint` renames keys or resizes tables; training, fine-tuning and
conversion all come through `adapt_state_dict`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import ViTConfig
from ..layers.pos_embed import resample_pos_embed
from ..errors import CheckpointError

# Wrappers other tools put around a state dict, and prefixes they put before its keys:
# DDP ("module."), torch.compile ("_orig_mod."), Lightning and DeiT's repo ("model.").
_WRAPPERS = ("state_dict", "model", "model_ema", "module", "params")
_PREFIXES = ("module.", "_orig_mod.", "model.")
HEAD_KEYS = ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias", "fc.weight", "fc.bias")


def unwrap_state_dict(obj: dict) -> dict:
    """Find the tensor dict inside {"model": ...} / {"state_dict": ...} style wrappers."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    return obj


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove prefixes shared by every key, repeatedly ("module._orig_mod.blocks..." → "blocks...")."""
    changed = True
    while changed and sd:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def resize_offset_table(table: torch.Tensor, old_k: int, new_k: int, dim: int = 0) -> torch.Tensor:
    """Resize a (2k+1, ...) relative-offset table along `dim` as run-time clamping would use it.

    Offsets present in both keep their entries; new larger offsets copy the edge entry, which is
    exactly what clamping does at run time, so load-time and run-time resizing agree.
    """
    if old_k == new_k:
        return table
    offsets = torch.arange(-new_k, new_k + 1).clamp(-old_k, old_k) + old_k
    return table.index_select(dim, offsets.to(table.device))


def _resize_bias_table(table: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    heads = table.shape[1]
    t = table.reshape(2 * old[0] + 1, 2 * old[1] + 1, heads)
    t = resize_offset_table(resize_offset_table(t, old[0], new[0], 0), old[1], new[1], 1)
    return t.reshape(-1, heads)


def _max_dist(cfg: ViTConfig) -> tuple[int, int]:
    k, (gh, gw) = cfg.rel_pos_max_dist, cfg.grid_size
    return (gh - 1 if k is None else k, gw - 1 if k is None else k)


def adapt_state_dict(sd: dict[str, torch.Tensor], src: ViTConfig, dst: ViTConfig,
                     resample: tuple[str, bool] = ("bicubic", True),
                     new_head: bool | None = None) -> dict[str, torch.Tensor]:
    """Make a state dict of config `src` fit a model of config `dst`.

    - position table: resampled to dst's grid with the source library's rule `resample`;
    - relative-position tables: resized to dst's offset range (see `resize_offset_table`);
    - heads: dropped when `new_head` (default: when the number of classes differs; True also
      for the same count of other classes); the new model initialises them.
    """
    sd = dict(sd)
    if new_head is None:
        new_head = src.num_classes != dst.num_classes
    if new_head:
        for key in HEAD_KEYS:
            sd.pop(key, None)
    if not isinstance(dst, ViTConfig):  # a CNN: only its head can change
        return sd
    if "pos_embed" in sd and dst.pos_embed == "learned" and src.grid_size != dst.grid_size:
        mode, antialias = resample
        sd["pos_embed"] = resample_pos_embed(sd["pos_embed"], dst.grid_size, src.grid_size,
                                             src.num_prefix_tokens, mode, antialias)
    if dst.pos_embed != "learned":
        sd.pop("pos_embed", None)
    old_k, new_k = _max_dist(src), _max_dist(dst)
    if src.rel_pos == dst.rel_pos and old_k != new_k:
        for key in list(sd):
            if key.endswith((".rel_pos.rel_h", ".rel_pos.val_h")):
                sd[key] = resize_offset_table(sd[key], old_k[0], new_k[0])
            elif key.endswith((".rel_pos.rel_w", ".rel_pos.val_w")):
                sd[key] = resize_offset_table(sd[key], old_k[1], new_k[1])
            elif key.endswith(".rel_pos.table"):
                sd[key] = _resize_bias_table(sd[key], old_k, new_k)
    return sd


def load_weights(model: nn.Module, sd: dict[str, torch.Tensor], path: Path | str,
                 allow_missing: tuple[str, ...] = ()) -> list[str]:
    """Copy `sd` into `model` strictly; a one-line error names the file and the first bad key.

    Returns the keys that were allowed to be missing (e.g. a replaced head).
    """
    own = model.state_dict()
    for key, value in sd.items():
        if key not in own:
            raise CheckpointError(f"{path}: unexpected key {key!r}: the checkpoint holds a part this "
                                  f"model does not have ({len(sd)} keys read)")
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{path}: shape mismatch for {key!r}: checkpoint "
                                  f"{tuple(value.shape)}, model {tuple(own[key].shape)}")
    missing = [k for k in own if k not in sd]
    not_allowed = [k for k in missing if k not in allow_missing]
    if not_allowed:
        raise CheckpointError(f"{path}: missing key {not_allowed[0]!r}"
                              + (f" and {len(not_allowed) - 1} more" if len(not_allowed) > 1 else ""))
    model.load_state_dict(sd, strict=False)
    return missing
