"""Claim (ViT paper): without the inductive biases of CNNs a ViT needs much data; with little
data a CNN wins, and the gap closes as data grows.

    python studies/data_hunger.py --data /tmp/c10 --out studies/results/data_hunger --seeds 3 --shard 0/2 --workers 0   # and 1/2, one per core
    python studies/data_hunger.py --data DIR --out /tmp/smoke --seeds 1 --smoke        # CI: no claim

Arms: the speed-run ViT (6 blocks, width 192, patch 4, mean pooling, sin-cos positions, 1.8M
parameters) and the CIFAR ResNet-18 at half width (`resnet18_cifar_w32`, 2.8M parameters, a
quarter of ResNet-18's multiply-adds: the full width trained at 26 img/s against the ViT's 109 on 2
AVX2 cores, 2026-12-01, so that neither arm's cost dominates), from scratch on 10/25/50/100% of the training set (per class,
the subset drawn by the seed, the same for both arms). Both arms take the same number of
optimizer steps at every fraction (epochs × fraction = 1: ~195 steps of 256), so the comparison
is about data, not compute; wall time is recorded beside. fp32; two processes, one per core
(on an AVX2 core 21–24 min a run at 10% while every epoch was evaluated; evaluated once at the end since 2026-12-01, ~14 min).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import Arm, Study, parse, run_study  # noqa: E402

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
STEPS_EPOCHS = 1  # epochs at 100%; fraction f trains 1/f epochs: the same steps at every fraction
VIT = {"model": {"name": "vit_tiny_patch4_32", "drop_path_rate": 0.0,
                 "overrides": {"depth": 6, "mlp_ratio": 2.0, "pool": "mean", "class_token": False, "pos_embed": "sincos"}},
       "data": {"label_smoothing": 0.1, "cache": "memory"},
       "optim": {"batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.2, "schedule": "linear"}}
CNN = {"model": {"name": "resnet18_cifar_w32", "drop_path_rate": 0.0}, "data": {"label_smoothing": 0.1, "cache": "memory"},
       "optim": {"batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.2, "schedule": "linear"}}
SMOKE = {"model": {"overrides": {"depth": 1}}, "optim": {"batch_size": 16}}


def arms(args) -> list[Arm]:
    out = []
    for f in FRACTIONS:
        epochs = max(1, round(STEPS_EPOCHS / f))
        for name, cfg in (("vit", VIT), ("cnn", CNN)):
            if args.smoke:
                cfg = {**cfg, "optim": {**cfg["optim"], **SMOKE["optim"]},
                       "model": {**cfg["model"], **({"overrides": {**cfg["model"]["overrides"], "depth": 1}}
                                                    if name == "vit" else {})}}
            out.append(Arm(name, cfg, data_fraction=f, epochs=1 if args.smoke else epochs))
    return out


def figure(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in ("vit", "cnn"):
        rows = [e for e in table if e["arm"] == arm]
        xs = [100 * e["data_fraction"] for e in rows]
        ys = [e["top1"]["mean"] for e in rows]
        err = [0 if e["top1"]["std"] is None else e["top1"]["hi"] - e["top1"]["mean"] for e in rows]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("% of the CIFAR-10 training set")
    ax.set_ylabel("test top-1 (%), mean and 95% interval")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


STUDY = Study("data_hunger", "Without much data a CNN beats a ViT; the gap closes as data grows (ViT paper).",
              reference="cnn", arms=arms, figure=figure)

if __name__ == "__main__":
    run_study(STUDY, parse(STUDY))
