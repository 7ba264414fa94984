"""Inference throughput on the CPU: timm fp32 against vitkit fp32 / bf16 and ONNX Runtime fp32 /
int8, same weights, same process, interleaved rounds; and, with --data, top-1 and agreement
with fp32 on a real test set.

    python benchmarks/bench_inference.py                        # ViT-S/16, ViT-B/16 at 224, batch 16
    python benchmarks/bench_inference.py --models vit_small_patch16_224 --rounds 5
    python benchmarks/bench_inference.py --checkpoint cifar10_vit_tiny --data /tmp/c10 --batch 256

Claims checked (issue 13): on a CPU with native bf16 (AVX-512 BF16 / AMX) bf16 ≥ 2.5× fp32 at
ViT-S/16 and above; on a CPU with VNNI int8 ≥ 3× fp32 with ≥ 99% top-1 agreement. Rows:
timm fp32 (the peer), vitkit fp32, vitkit bf16 (torch.autocast), ORT fp32, ORT int8 dynamic,
ORT int8 static (QDQ; random calibration for speed rows, the train split's images with --data).
Statistic: for each round, each row runs `--iters` timed forward passes after warm-up; the
figure is the median over rounds of images/s; the order of rows rotates each round so drift
hits all alike. Ratios are against vitkit fp32 in the same run. The CPU's flags are printed
with the figures: never compare absolute numbers taken on different machines.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vitkit
from vitkit.hardware import autocast, cpu_has_native_bf16, describe_cpu


def images_per_s(fn, x, iters: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(iters):
            fn(x)
        return iters * x.shape[0] / (time.perf_counter() - start)


def bf16(model):
    def run(x):
        with autocast(torch.device("cpu"), "bf16"):
            return model(x)
    return run


def onnx_rows(model, tmp: Path, calib: list[np.ndarray]) -> dict:
    """ORT fp32, int8 dynamic and int8 static sessions of `model`."""
    from vitkit.deploy import OnnxClassifier, export_onnx
    from vitkit.deploy.quantize import quantize_onnx

    fp32 = export_onnx(model, tmp / "fp32.onnx")
    quantize_onnx(fp32, tmp / "dyn.onnx")
    quantize_onnx(fp32, tmp / "static.onnx", calib)
    return {"ort fp32": OnnxClassifier(fp32), "ort int8 dynamic": OnnxClassifier(tmp / "dyn.onnx"),
            "ort int8 static": OnnxClassifier(tmp / "static.onnx")}


def throughput(rows: dict, x: torch.Tensor, rounds: int, iters: int) -> dict:
    for fn in rows.values():  # warm-up: allocator, oneDNN / ORT caches
        images_per_s(fn, x, 1)
    got: dict[str, list[float]] = {k: [] for k in rows}
    names = list(rows)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            got[k].append(images_per_s(rows[k], x, iters))
    return {k: statistics.median(v) for k, v in got.items()}


def speed(args) -> list[dict]:
    import timm

    out = []
    for name in args.models:
        ours = vitkit.create_model(name).eval()
        ref = timm.create_model(name, pretrained=False).eval()
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(args.batch, 3, *ours.cfg.img_size)
        with torch.inference_mode():
            assert (ours(x[:2]) - ref(x[:2])).abs().max() < 1e-4, "models disagree; benchmark void"
        with tempfile.TemporaryDirectory() as tmp:
            calib = [np.random.default_rng(0).standard_normal((8, 3, *ours.cfg.img_size), dtype=np.float32)]
            rows = {"timm fp32": ref, "vitkit fp32": ours, "vitkit bf16": bf16(ours), **onnx_rows(ours, Path(tmp), calib)}
            ips = throughput(rows, x, args.rounds, args.iters)
        base = ips["vitkit fp32"]
        for k, v in ips.items():
            print(f"{name:<24} {k:<18} {v:8.2f} img/s  {v / base:5.2f}x vitkit fp32", flush=True)
            out.append({"model": name, "row": k, "img_s": round(v, 2), "vs_fp32": round(v / base, 3)})
    return out


def accuracy(args) -> list[dict]:
    """Every row over the whole test split (decoded once, held in memory): img/s, top-1, and
    top-1 agreement with vitkit fp32."""
    from vitkit.deploy.quantize import calibration_batches
    from vitkit.data.folders import ImageFolderSafe, eval_folder
    from vitkit.data.transforms import transform_for

    model = vitkit.load_model(args.checkpoint).eval()
    ds = ImageFolderSafe(eval_folder(args.data), transform_for(model), classes=model.class_names)
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    ys = torch.tensor([ds[i][1] for i in range(len(ds))])
    calib = calibration_batches(Path(args.data) / "train", transform_for(model), 256)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {"vitkit fp32": model, "vitkit bf16": bf16(model), **onnx_rows(model, Path(tmp), calib)}
        preds, ips = {}, {}
        for k, fn in rows.items():
            fn(xs[:args.batch])  # warm-up
            start, outs = time.perf_counter(), []
            with torch.inference_mode():
                for i in range(0, len(xs), args.batch):
                    outs.append(fn(xs[i:i + args.batch]).float().argmax(1))
            ips[k] = len(xs) / (time.perf_counter() - start)
            preds[k] = torch.cat(outs)
    out = []
    for k in rows:
        top1 = 100.0 * (preds[k] == ys).float().mean().item()
        agree = 100.0 * (preds[k] == preds["vitkit fp32"]).float().mean().item()
        print(f"{args.checkpoint:<20} {k:<18} {ips[k]:8.1f} img/s  {ips[k] / ips['vitkit fp32']:5.2f}x  "
              f"top-1 {top1:6.2f}%  agreement {agree:6.2f}%  ({len(xs)} images)", flush=True)
        out.append({"checkpoint": args.checkpoint, "row": k, "img_s": round(ips[k], 1),
                    "vs_fp32": round(ips[k] / ips["vitkit fp32"], 3), "top1": round(top1, 2),
                    "agreement": round(agree, 2), "images": len(xs)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit_small_patch16_224", "vit_base_patch16_224"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--checkpoint", help="with --data: accuracy rows for this trained model")
    ap.add_argument("--data", help="ImageFolder root with test/ (or val/) and train/ (calibration)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {describe_cpu()} | native bf16: {cpu_has_native_bf16()}", flush=True)
    results = accuracy(args) if args.checkpoint else speed(args)
    import onnxruntime
    import timm

    print(json.dumps({"torch": torch.__version__, "timm": timm.__version__, "onnxruntime": onnxruntime.__version__,
                      "threads": torch.get_num_threads(), "cpu": describe_cpu(), "results": results}))


if __name__ == "__main__":
    main()
