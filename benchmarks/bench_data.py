"""Is the data pipeline the bottleneck? Decode + augment images/s against training-step images/s.

    python benchmarks/bench_data.py --data /tmp/c10 --config recipes/cifar10_vit_tiny_cpu.yaml

Measures (1) the DataLoader alone (JPEG decode, augmentation, collate) with the recipe's workers,
(2) the training step alone on a fixed batch, both in images/s over `--batches` batches after
warm-up. The pipeline is not the bottleneck when (1) exceeds (2).
"""
from __future__ import annotations

import argparse
import time

import torch

from vitkit.factory import create_model
from vitkit.training.config import load_train_config
from vitkit.data.sources import build_datasets
from vitkit.data.samplers import RankSampler, make_loader
from vitkit.training.losses import classification_loss
from vitkit.training.optim import build_optimizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", default="recipes/cifar10_vit_tiny_cpu.yaml")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    cfg = load_train_config(a.config, [f"data.path={a.data}"] + ([f"data.workers={a.workers}"] if a.workers is not None else []))
    size = cfg.model.img_size or 32
    data = build_datasets(cfg.data, size)
    B = cfg.optim.batch_size
    loader = make_loader(data.train, B, RankSampler(len(data.train), 0, 1, B, 0), cfg.data.workers, False)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(a.batches):
        next(it)
    data_rate = a.batches * B / (time.perf_counter() - t)
    model = create_model(cfg.model.name, num_classes=len(data.classes), img_size=size, **cfg.model.overrides).train()
    opt = build_optimizer(model, cfg.optim)
    x, y = torch.randn(B, 3, size, size), torch.randint(0, len(data.classes), (B,))

    def step():
        classification_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()

    step()
    t = time.perf_counter()
    for _ in range(a.batches):
        step()
    step_rate = a.batches * B / (time.perf_counter() - t)
    print(f"data pipeline ({cfg.data.workers} workers): {data_rate:8.1f} img/s")
    print(f"training step ({cfg.model.name}, {torch.get_num_threads()} threads): {step_rate:8.1f} img/s")
    print(f"pipeline / step = {data_rate / step_rate:.2f} ({'not ' if data_rate > step_rate else ''}the bottleneck)")


if __name__ == "__main__":
    main()
