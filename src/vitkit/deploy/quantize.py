"""int8 ONNX models through ONNX Runtime's quantization: dynamic, or static with calibration images.

    vitkit export runs/cifar model-int8.onnx --int8                   # dynamic: weights int8,
                                                                      # activations per batch
    vitkit export runs/cifar model-int8.onnx --int8 --calib DIR       # static: activation ranges
                                                                      # from DIR's images

Weights are unsigned 8-bit by default (`target="any"`): ORT's u8s8 kernels (signed weights) use
VPMADDUBSW on CPUs without VNNI, whose 16-bit intermediate sums saturate; on an AVX2-only EPYC the
bundled model's static int8 agreed with fp32 on 94.1% of 1,000 CIFAR-10 test images with signed
weights and 98.8% with unsigned ones (dynamic: 98.6% → 99.4%). `target="vnni"` keeps signed
weights, for files that will only run on CPUs with VNNI (no saturation there).

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
from ..data.images import UNREADABLE, images_under, open_rgb
from .onnx_export import METADATA_KEY

def held_out_images(folder: str | Path, count: int, used: int) -> list[Path]:
    """Images of `folder` that `calibration_batches(folder, …, used)` did not take, up to `count`."""
    files = images_under(Path(folder))
    step = max(1, len(files) // used)
    taken = set(files[::step][:used])
    return [f for f in files if f not in taken][:count]


def agreement(model, int8_file: Path, files: list[Path], transform) -> float:
    """Top-1 agreement of the int8 file (ONNX Runtime) with the fp32 PyTorch model on `files`."""
    from .onnx_runtime import OnnxClassifier

    xs = []
    for f in files:
        try:
            xs.append(transform(open_rgb(f)))
        except UNREADABLE:
            continue
    if not xs:
        raise UsageError("no readable images to measure int8 agreement on")
    x = torch.stack(xs)  # (N, 3, H, W)
    with torch.no_grad():
        ref = model(x).argmax(1)
    got = OnnxClassifier(int8_file)(x).argmax(1)
    return float((ref == got).float().mean())


def calibration_batches(folder: str | Path, transform, count: int, batch: int = 16) -> list[np.ndarray]:
    """Up to `count` images of `folder` preprocessed like evaluation, in batches (N, 3, H, W)."""
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
            img = open_rgb(f)
        except UNREADABLE:  # an unreadable file is skipped, as in training; a transform bug is not
            continue
        tensors.append(transform(img))
    if not tensors:
        raise UsageError(f"--calib {folder}: none of the images could be read")
    x = torch.stack(tensors).numpy()
    return [x[i:i + batch] for i in range(0, len(x), batch)]


TARGETS = ("any", "vnni")


def calibration_reader(batches: list[np.ndarray]):
    """ONNX Runtime's calibration interface over preprocessed batches (N, 3, H, W)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"images": x}

    return Reader()


def quantize_onnx(src: Path, dst: Path, calib: list[np.ndarray] | None = None, target: str = "any",
                  check=None) -> Path:
    """int8 `dst` from fp32 `src`: static (QDQ, per-channel weights) with `calib`, else dynamic.

    Args:
        target: "any" (unsigned weights: accurate on every x86 CPU) or "vnni" (signed weights,
            for CPUs with VNNI only; saturates elsewhere).
        check: called with the int8 file before it becomes `dst`; returns metadata to store in
            it (e.g. the measured agreement), or raises to leave no file.
    """
    if target not in TARGETS:
        raise UsageError(f"int8 target {target!r}: choose {' or '.join(TARGETS)}")
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    weights = QuantType.QInt8 if target == "vnni" else QuantType.QUInt8
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # folds shapes, fuses LayerNorm
        if calib is None:
            quantize_dynamic(str(pre), str(out), weight_type=weights, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        else:
            quantize_static(str(pre), str(out), calibration_reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=weights,
                            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                            extra_options={"MatMulConstBOnly": True})
        proto = onnx.load(str(out))
        info = json.loads(meta.get(METADATA_KEY, "{}"))
        info["int8"] = "static" if calib is not None else "dynamic"
        info["int8_target"] = target
        if check is not None:
            info.update(check(out))
        onnx.helper.set_model_props(proto, {**meta, METADATA_KEY: json.dumps(info)})
        onnx.save(proto, str(out))
        out.replace(dst)  # same folder: an atomic rename
    return dst
