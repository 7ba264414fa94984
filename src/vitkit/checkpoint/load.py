"""Format detection, `load_model` and `convert`: the entry points of the checkpoint package.

    model = vitkit.load_model("runs/cifar")                    # a run directory (best.pt / last.pt)
    model = vitkit.load_model("vit_b16.pth", img_size=384)     # timm, resampled to 24×24 patches
    model = vitkit.load_model("hf_dir/", num_classes=5)        # Hugging Face, new zero-init head
    model = vitkit.load_model("cifar10_vit_tiny")              # a model bundled in the package
    vitkit.convert("ViT-B_16.npz", "out/", to="hf")            # any of vitkit | timm | hf | jax
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import build_model
from ..pretrained import bundled_path
from ..registry import MODELS
from . import hf_format, hub, jax_format, native, timm_format
from ..errors import CheckpointError
from .io import read_tensor_file, weights_in
from .loaded import LoadedCheckpoint
from .surgery import HEAD_KEYS, adapt_state_dict, load_weights, strip_prefixes, unwrap_state_dict

# Overrides that change tensor shapes apply to the new model only; all others (num_heads, act,
# norm_eps, ...) also describe the checkpoint itself, where its tensors cannot tell them.
SHAPE_FIELDS = ("img_size", "num_classes")
FORMATS = ("vitkit", "timm", "hf", "jax")


def _known(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if k not in SHAPE_FIELDS}


def _describe_keys(sd: dict) -> str:
    keys = [k for k in sd if isinstance(k, str)][:3]
    return ", ".join(keys) if keys else "no tensors"


def read_checkpoint(path: str | Path, **overrides: Any) -> LoadedCheckpoint:
    """Read any supported checkpoint into vitkit naming, detecting its format from its content."""
    if hub.is_hub(path):
        path = hub.download(str(path))  # the snapshot folder in huggingface_hub's cache
    # A bundled model's name wins over a same-named relative path only when no such path exists.
    elif not Path(path).exists() and (bundled := bundled_path(str(path))) is not None:
        path = bundled
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    known = _known(overrides)
    if path.is_dir():
        cfg_file = path / "config.json"
        if cfg_file.exists():
            try:
                header = json.loads(cfg_file.read_text())
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from None
            if header.get("format") == native.FORMAT:
                return native.read_model_dir(path)
            if "architecture" in header:  # timm's Hub layout: config.json + model.safetensors
                return _read_timm_dir(path, header, known)
            if "model_type" in header:
                hf, raw = hf_format.read_hf_dir(path)
                sd = hf_format.hf_to_vitkit(strip_prefixes(unwrap_state_dict(raw)), str(path))
                cfg = hf_format.config_from_hf(hf, sd, str(path), **known)
                return LoadedCheckpoint(path, "hf", cfg, sd, ("bicubic", False),
                                        hf_format.class_names_from_hf(hf, cfg.num_classes),
                                        {"hf_config": hf, "preprocess": hub.hf_preprocess(path)})
        for name in ("best.pt", "last.pt"):
            if (path / name).exists():
                return native.read_train_checkpoint(path / name)
        raise CheckpointError(f"{path}: directory holds no vitkit model (config.json + model.safetensors), "
                              f"run checkpoint (best.pt/last.pt) or Hugging Face model")
    if path.suffix == ".safetensors" and (header := native.safetensors_header(path)) is not None:
        return native.read_model_file(path, header)
    raw = read_tensor_file(path)
    if raw.get("format") == native.TRAIN_FORMAT:
        return native.read_train_checkpoint(path, raw)
    if jax_format.looks_like_jax(raw):
        cfg, sd = jax_format.jax_to_vitkit(raw, str(path), **known)
        return LoadedCheckpoint(path, "jax", cfg, sd, jax_format.RESAMPLE)
    sd = strip_prefixes(unwrap_state_dict(raw))
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if timm_format.looks_like_timm(sd):
        sd, relpos = timm_format.from_timm(sd, str(path))
        return LoadedCheckpoint(path, "timm", timm_format.infer_config(sd, str(path), **{**relpos, **known}), sd)
    if hf_format.looks_like_hf(sd):  # HF weights without their config.json: shapes decide
        sd = hf_format.hf_to_vitkit(sd, str(path))
        known = {"norm_eps": 1e-12, "pos_embed_interp": "bicubic", "pos_embed_antialias": False, **known}
        return LoadedCheckpoint(path, "hf", timm_format.infer_config(sd, str(path), **known), sd, ("bicubic", False))
    raise CheckpointError(f"{path}: not a ViT checkpoint this version reads (found {_describe_keys(sd)}; "
                          f"expected timm, Hugging Face, JAX npz or vitkit ViT weights)")


def _read_timm_dir(path: Path, header: dict, known: dict) -> LoadedCheckpoint:
    """A timm Hub snapshot: weights named as timm's, and a pretrained_cfg with the preprocessing."""
    weights = weights_in(path)
    if weights is None:
        raise CheckpointError(f"{path}: timm config.json found but no model.safetensors or pytorch_model.bin")
    sd = strip_prefixes(unwrap_state_dict(read_tensor_file(weights)))
    sd, relpos = timm_format.from_timm(sd, str(weights))
    pre, names, arch = hub.timm_hub_extras(header)
    if arch in MODELS:  # what shapes cannot tell (heads) comes from the architecture's name
        known = {"num_heads": MODELS[arch]["num_heads"], **known}
    cfg = timm_format.infer_config(sd, str(weights), **{**relpos, **known})
    return LoadedCheckpoint(path, "timm", cfg, sd, class_names=names if names and len(names) == cfg.num_classes else None,
                            extra={"preprocess": pre, "timm_config": header})


def model_from_checkpoint(ck: LoadedCheckpoint, new_head: bool | None = None, **overrides: Any) -> nn.Module:
    """Build the model a read checkpoint describes, with overrides (new size, new head, ...).

    `new_head`: None replaces the head only when `num_classes` changes; True always replaces it
    (same count, other classes); False with a changed count is an error.
    """
    try:
        dst = ck.cfg.replace(**overrides)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{ck.path}: {e}") from None
    count_differs = ck.cfg.num_classes != dst.num_classes
    if new_head is False and count_differs:
        raise CheckpointError(f"{ck.path}: cannot keep a {ck.cfg.num_classes}-class head for "
                              f"{dst.num_classes} classes")
    new_head = count_differs if new_head is None else new_head
    sd = adapt_state_dict(ck.state_dict, ck.cfg, dst, ck.resample, new_head)
    model = build_model(dst)
    load_weights(model, sd, ck.path, allow_missing=HEAD_KEYS if new_head else ())
    if new_head:  # a new task's head starts at zero, as the ViT paper fine-tunes
        with torch.no_grad():
            for head in model.heads():
                head.weight.zero_()
                head.bias.zero_()
    model.class_names = None if new_head else ck.class_names
    model.preprocess = ck.extra.get("preprocess")  # eval transform a vitkit run recorded, or None
    return model.eval()


def load_model(path: str | Path, **overrides: Any) -> nn.Module:
    """Load any supported checkpoint as a vitkit model in eval mode.

    Args:
        path: a bundled model's name (`cifar10_vit_tiny`), `hf-hub:ORG/REPO[@REV]` (timm or
            transformers layout, through the Hugging Face cache), a vitkit model directory or .safetensors file, a run directory or its best.pt /
            last.pt, a timm state dict (.pth/.bin/.safetensors, any usual wrapper or prefix), a
            Hugging Face ViT/DeiT directory, or an original JAX .npz.
        **overrides: config fields. `img_size` resamples the position table with the source
            library's rule; a different `num_classes` gives a new zero-initialised head; fields
            that shapes cannot tell (e.g. `num_heads`) describe the checkpoint itself.

    The model's `class_names` attribute holds the stored label names, or None.
    """
    return model_from_checkpoint(read_checkpoint(path, **overrides), **overrides)


def convert(src: str | Path, dst: str | Path, to: str = "vitkit", **overrides: Any) -> Path:
    """Read any supported checkpoint and write it as `to` (vitkit | timm | hf | jax).

    timm: one file (.safetensors, else a torch state dict); hf: a `from_pretrained` directory;
    jax: an .npz in the original layout; vitkit: a model directory.
    """
    if to not in FORMATS:
        raise CheckpointError(f"unknown output format {to!r}; choose one of {', '.join(FORMATS)}")
    model = load_model(src, **overrides)
    sd, cfg, dst = native.model_state_dict(model), model.cfg, Path(dst)
    if to == "vitkit":
        native.save_model(model, dst, class_names=model.class_names, preprocess=model.preprocess)
    elif to == "timm":
        sd = timm_format.to_timm(sd, cfg)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix == ".safetensors":
            from safetensors.torch import save_file
            save_file(sd, str(dst))
        else:
            torch.save(sd, dst)
    elif to == "hf":
        hf_format.write_hf_dir(dst, sd, cfg, model.class_names)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "wb") as f:  # np.savez would append ".npz" to a name without it
            np.savez(f, **jax_format.vitkit_to_jax(sd, cfg))
    return dst
