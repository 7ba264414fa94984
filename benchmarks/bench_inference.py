"""Inference throughput, vitkit vs timm, same weights, same process, interleaved rounds.

    python benchmarks/bench_inference.py                       # ViT-S/16 and ViT-B/16, fp32, batch 16
    python benchmarks/bench_inference.py --models vit_tiny_patch16_224 --rounds 5

Claim checked: vitkit is not slower than timm (ratio = vitkit img/s ÷ timm img/s ≥ 1.0).
Statistic: for each round, each library runs `--iters` timed forward passes after warm-up; the
figure is the median over rounds of images/s; rounds alternate which library goes first so
thermal or cache drift hits both alike. Prints one line per model, then a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import vitkit


def images_per_s(model, x, iters: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        return iters * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit_small_patch16_224", "vit_base_patch16_224"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import timm

    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in args.models:
        ours = vitkit.create_model(name).eval()
        ref = timm.create_model(name, pretrained=False).eval()
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(args.batch, 3, *ours.cfg.img_size)
        with torch.inference_mode():
            assert (ours(x[:2]) - ref(x[:2])).abs().max() < 1e-4, "models disagree; benchmark void"
        for m in (ours, ref):  # warm-up: allocator, oneDNN primitive caches
            images_per_s(m, x, 2)
        a, b = [], []
        for r in range(args.rounds):
            order = [(ours, a), (ref, b)] if r % 2 == 0 else [(ref, b), (ours, a)]
            for model, out in order:
                out.append(images_per_s(model, x, args.iters))
        va, vb = statistics.median(a), statistics.median(b)
        results.append({"model": name, "batch": args.batch, "vitkit_img_s": round(va, 2),
                        "timm_img_s": round(vb, 2), "ratio": round(va / vb, 3), "rounds": args.rounds})
        print(f"{name:<26} vitkit {va:8.2f} img/s   timm {vb:8.2f} img/s   ratio {va / vb:.3f}", flush=True)
    print(json.dumps({"torch": torch.__version__, "timm": timm.__version__, "threads": torch.get_num_threads(),
                      "cpu": platform.processor() or platform.machine(), "results": results}))


if __name__ == "__main__":
    main()
