"""int8 ONNX models through ONNX Runtime's quantization: dynamic, or static with calibration images.

    vitkit export runs/cifar model-int8.onnx --int8                   # dynamic: weights int8,
                                                                      # activations per batch
    vitkit export runs/cifar model-int8.onnx --int8 --calib DIR       # static: activation ranges
                                                                      # from DIR's images

Only the linear layers are quantized (MatMul / Gemm with a constant weight, and the patch
Conv): they hold ~all of a ViT's FLOPs, and on a CPU with VNNI ORT runs them as int8 dot
products. LayerNorm, softmax, GELU and the position resampling stay fp32: quantizing them
costs accuracy and buys little time. Which mode is faster and which agrees better with fp32
is measured, per machine, by benchmarks/bench_inference.py (docs/results.md).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..train.predict import images_under
from .onnx_export import METADATA_KEY

def calibration_batches(folder: str | Path, transform, count: int, batch: int = 16) -> list[np.ndarray]:
    """Up to `count` images of `folder` preprocessed like evaluation, in batches (N, 3, H, W)."""
    from ..train.images import open_rgb

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--calib {folder}: no such directory")
    files = images_under(folder)
    if not files:
        raise UsageError(f"--calib {folder}: no images found (static int8 needs calibration images)")
    step = max(1, len(files) // count)  # spread over classes rather than the first folder only
    tensors = []
    for f in files[::step][:count]:
        try:
            tensors.append(transform(open_rgb(f)))
        except Exception:  # an unreadable file is skipped, as in training
            continue
    if not tensors:
        raise UsageError(f"--calib {folder}: none of the images could be read")
    x = torch.stack(tensors).numpy()
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def quantize_onnx(src: Path, dst: Path, calib: list[np.ndarray] | None = None) -> Path:
    """int8 `dst` from fp32 `src`: static (QDQ, per-channel weights) with `calib`, else dynamic."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # folds shapes, fuses LayerNorm
        if calib is None:
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        else:
            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter(calib)

                def get_next(self):
                    x = next(self.it, None)
                    return None if x is None else {"images": x}

            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                            extra_options={"MatMulConstBOnly": True})
        proto = onnx.load(str(out))
        info = json.loads(meta.get(METADATA_KEY, "{}"))
        info["int8"] = "static" if calib is not None else "dynamic"
        onnx.helper.set_model_props(proto, {**meta, METADATA_KEY: json.dumps(info)})
        onnx.save(proto, str(out))
        out.replace(dst)  # same folder: an atomic rename
    return dst
