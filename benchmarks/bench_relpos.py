"""Speed cost of each relative-position form against absolute-only, same process, interleaved.

    python benchmarks/bench_relpos.py                                  # ViT-S/16 at 224, batch 8, fwd+bwd
    python benchmarks/bench_relpos.py --model vit_tiny_patch4_32 --batch 64

Statistic: median over `--rounds` of images/s for a training step (forward + backward), each
round running every form in turn (rotated order); cost = 1 - form img/s ÷ absolute img/s.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import vitkit

FORMS = [("absolute", {}), ("shaw", {"rel_pos": "shaw"}), ("decomposed", {"rel_pos": "decomposed"}),
         ("bias", {"rel_pos": "bias"}), ("absolute+decomposed", {"rel_pos": "decomposed"})]


def step_rate(model, x, iters):
    start = time.perf_counter()
    for _ in range(iters):
        model(x).sum().backward()
    return iters * x.shape[0] / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit_small_patch16_224")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    models = {}
    for name, kw in FORMS:
        pe = {"pos_embed": "none"} if name in ("shaw", "decomposed", "bias") else {}
        models[name] = vitkit.create_model(a.model, num_classes=10, **kw, **pe).train()
    cfg = models["absolute"].cfg
    x = torch.randn(a.batch, 3, *cfg.img_size)
    for m in models.values():
        step_rate(m, x, 1)
    rates = {n: [] for n in models}
    names = list(models)
    for r in range(a.rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            rates[n].append(step_rate(models[n], x, a.iters))
    base = statistics.median(rates["absolute"])
    print(f"{a.model}, batch {a.batch}, train step (fwd+bwd), median of {a.rounds} rounds, "
          f"{torch.get_num_threads()} threads")
    for n in names:
        v = statistics.median(rates[n])
        print(f"  {n:<22} {v:8.2f} img/s   cost vs absolute {100 * (1 - v / base):+6.1f}%")


if __name__ == "__main__":
    main()
