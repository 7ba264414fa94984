"""int8 schemes on this CPU: top-1 agreement with fp32 for signed vs unsigned weights (and 7-bit
reduce_range), dynamic and static, through ONNX Runtime.

    python benchmarks/bench_int8_schemes.py --data /tmp/c10 --every 10     # 1,000 CIFAR-10 test images

Claim it checks: ORT's u8s8 kernels (signed weights) saturate on CPUs without VNNI, so `vitkit
export --int8` defaults to unsigned weights (`--target any`). Statistic: agreement of top-1 labels
with the fp32 PyTorch model on every N-th test image (one run; deterministic given the files).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import vitkit
from vitkit.data.images import open_rgb
from vitkit.data.transforms import transform_for
from vitkit.deploy import OnnxClassifier, export_onnx
from vitkit.deploy.quantize import calibration_batches, calibration_reader
from vitkit.hardware import describe_cpu

SCHEMES = {"s8": (QuantType.QInt8, False), "u8": (QuantType.QUInt8, False), "s8_reduce_range": (QuantType.QInt8, True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="cifar10_vit_tiny")
    ap.add_argument("--data", required=True, help="folder with test/<class>/*.jpg")
    ap.add_argument("--every", type=int, default=10, help="take every N-th test image")
    ap.add_argument("--calib", default=str(Path(vitkit.__file__).parent / "sample_data" / "cifar10_sample" / "train"))
    args = ap.parse_args()
    print(describe_cpu())
    model = vitkit.load_model(args.checkpoint).eval()
    tf = transform_for(model)
    files = sorted(Path(args.data, "test").rglob("*.jpg"))[::args.every]
    x = torch.stack([tf(open_rgb(f)) for f in files])
    with torch.no_grad():
        ref = model(x).argmax(1)
    calib = calibration_batches(args.calib, tf, 200)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        export_onnx(model, d / "fp32.onnx")
        quant_pre_process(str(d / "fp32.onnx"), str(d / "pre.onnx"), skip_symbolic_shape=True)
        for name, (weights, rr) in SCHEMES.items():
            quantize_dynamic(str(d / "pre.onnx"), str(d / "dyn.onnx"), weight_type=weights, per_channel=True,
                             reduce_range=rr, op_types_to_quantize=["MatMul", "Gemm"])
            quantize_static(str(d / "pre.onnx"), str(d / "static.onnx"), calibration_reader(calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=weights, reduce_range=rr,
                            op_types_to_quantize=["MatMul", "Gemm", "Conv"], extra_options={"MatMulConstBOnly": True})
            for mode in ("dyn", "static"):
                got = OnnxClassifier(d / f"{mode}.onnx")(x).argmax(1)
                print(f"{mode:6s} weights {name:16s} agreement {(got == ref).float().mean().item() * 100:.2f}% "
                      f"on {len(files)} images", flush=True)


if __name__ == "__main__":
    main()
