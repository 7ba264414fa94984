"""`export_onnx`: a vitkit model → one self-describing .onnx file.

    vitkit export runs/cifar model.onnx [--static-size] [--opset 18]

The graph takes `images` (B, 3, H, W) with B, and by default H and W, dynamic (H and W
multiples of the patch size) and returns `logits` (B, classes). The position table is resampled
inside the graph with the same interpolation as PyTorch (bicubic with antialias, Keys a=-0.5):
ONNX Resize (opset ≥ 18) has `antialias` and `cubic_coeff_a`, and ONNX Runtime's result matches
PyTorch's to ~1e-6 at every size tested, so export costs no accuracy at other sizes (the trap
users of other exporters report: an interpolation that does not export, or Python branches on
the size that freeze the graph to the example's size; see models/vit.py `pos_table`).

The preprocessing (size, mean, std, crop_pct, interpolation), the class names and the model
config go into the ONNX metadata (`vitkit` key, JSON), so the file alone classifies correctly
(`OnnxClassifier`, `vitkit predict --checkpoint model.onnx`).

Attention is exported in its explicit form (softmax(QKᵀ/√d + bias)V): the fused SDPA with a
relative-position mask does not survive the exporter's decomposition in torch 2.15, and the
explicit form exports for every model of the registry (plain, distilled, relative positions).
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..checkpoint.io import atomic_write
from ..checkpoint.native import unwrap
from ..errors import UsageError
from ..data.transforms import preprocess_of

METADATA_KEY = "vitkit"
DEFAULT_OPSET = 18  # Resize with antialias needs 18


def onnx_metadata(model: nn.Module, dynamic_size: bool) -> dict:
    pre = preprocess_of(model)
    return {"format": "vitkit-onnx", "model": model.cfg.to_dict(), "class_names": getattr(model, "class_names", None),
            "preprocess": {k: (list(v) if isinstance(v, tuple) else v) for k, v in pre.items()},
            "dynamic_size": dynamic_size, "input": "images", "output": "logits"}


def export_onnx(model: nn.Module, path: str | Path, *, dynamic_size: bool = True, opset: int = DEFAULT_OPSET,
                max_batch: int = 4096) -> Path:
    """Write `model` as ONNX with dynamic batch (and height/width unless `dynamic_size=False`).

    Args:
        model: a vitkit model (class names and preprocessing are taken from it when present).
        path: the .onnx file to write (atomically).
        dynamic_size: H and W dynamic (multiples of the patch size); False fixes them to the
            model's native size.
        opset: ONNX opset; at least 18 (antialiased Resize).
    """
    from .extras import require

    onnx = require("onnx")
    require("onnxscript")  # torch.onnx's exporter needs it
    model = unwrap(model)
    if not hasattr(model, "cfg") or not hasattr(model, "patch_embed"):
        raise UsageError("export needs a vitkit ViT (a model with .cfg and .patch_embed)")
    if opset < DEFAULT_OPSET:
        raise UsageError(f"--opset {opset}: at least {DEFAULT_OPSET} is needed (Resize with antialias)")
    m = copy.deepcopy(model).float().eval().cpu()  # the copy keeps class_names / preprocess
    if hasattr(m, "set_attention_impl"):
        m.set_attention_impl(False)
    p = m.cfg.patch_size
    h, w = m.cfg.img_size
    example = torch.zeros(2, 3, h, w)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dims = {0: batch}
    if dynamic_size:  # derived dims: H = p·gh, so "H is a multiple of p" is part of the shape
        dims.update({2: p * torch.export.Dim("grid_h", min=1, max=1024), 3: p * torch.export.Dim("grid_w", min=1, max=1024)})
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (example,), dynamo=True, opset_version=opset, dynamic_shapes={"x": dims},
                                    input_names=["images"], output_names=["logits"], verbose=False)
    proto = program.model_proto
    meta = json.dumps(onnx_metadata(m, dynamic_size))
    onnx.helper.set_model_props(proto, {METADATA_KEY: meta})
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return path
