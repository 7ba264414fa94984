"""Claim (Shaw et al. 2018; MViTv2): relative position terms make attention depend on offsets,
not places — more translation-invariant, and slightly better.

    python studies/relative_position.py --data /tmp/c10 --out studies/results/relative_position --seeds 3 --shard 0/2 --workers 0   # and --shard 1/2 beside it, one per core
    python studies/relative_position.py --data DIR --out /tmp/smoke --seeds 1 --smoke     # CI: no claim

Arms (6-block ViT-Ti/4, the same recipe): absolute learned (the reference), absolute sin-cos, no
positions, and three relative forms that keep no absolute embedding (so the relative term alone
carries position): Shaw (key offsets), decomposed (MViTv2, height and width tables), bias table
(Swin/BEiT). Measured: test top-1, and translation sensitivity — the share of test predictions
that change when the image is shifted by 2 or 4 pixels (reflect-padded, 8 shifts: ±2 and ±4 px in x and in y), and the
accuracy under those shifts, on every 5th test image (2,000, all classes).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import Arm, Study, parse, run_study, test_tensors  # noqa: E402

BASE = {"model": {"drop_path_rate": 0.0, "overrides": {"depth": 6}},
        "data": {"label_smoothing": 0.1, "cache": "memory"},
        "optim": {"batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.5, "schedule": "linear"}}
ARMS = {  # name → (registry model, overrides, absolute embedding kept)
    "abs_learned": ("vit_tiny_patch4_32", {}, "learned"),
    "abs_sincos": ("vit_tiny_patch4_32", {"pos_embed": "sincos"}, "sincos"),
    "none": ("vit_tiny_patch4_32", {"pos_embed": "none"}, "none"),
    "shaw": ("vit_tiny_shaw_patch4_32", {"pos_embed": "none"}, "none"),
    "decomposed": ("vit_tiny_relpos_patch4_32", {"pos_embed": "none"}, "none"),
    "bias": ("vit_tiny_rpb_patch4_32", {"pos_embed": "none"}, "none"),
}
EPOCHS = 1  # ~195 steps of 256: 18 runs fit ~2.3 h on 2 AVX2 cores (two processes, one per core)
SHIFT_EVERY = 5  # translation sensitivity on every 5th test image (2,000 of 10,000); top-1 on all
SHIFTS = [(dx, 0) for dx in (-4, -2, 2, 4)] + [(0, dy) for dy in (-4, -2, 2, 4)]  # 2 and 4 px, both directions, both axes


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(B, C, H, W) moved by (dx, dy) pixels, the uncovered border reflected."""
    p = max(abs(dx), abs(dy))
    padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
    H, W = x.shape[-2:]
    return padded[..., p - dy:p - dy + H, p - dx:p - dx + W]


def translation(result, args) -> dict:
    """Translation sensitivity of the run's best weights on the test images."""
    import vitkit

    model = vitkit.load_model(result.out).eval()
    x, y = test_tensors(args.data, model, SHIFT_EVERY)
    changed, correct = [], []
    with torch.no_grad():
        base = torch.cat([model(b).argmax(1) for b in x.split(500)])
        for dx, dy in SHIFTS:
            pred = torch.cat([model(shift(b, dx, dy)).argmax(1) for b in x.split(500)])
            changed.append((pred != base).float().mean().item())
            correct.append((pred == y).float().mean().item())
    return {"shift_changed_pct": 100 * sum(changed) / len(changed), "shift_top1": 100 * sum(correct) / len(correct)}


def arms(args) -> list[Arm]:
    out = []
    for name, (model, overrides, kept) in ARMS.items():
        cfg = {**BASE, "model": {**BASE["model"], "name": model,
                                 "overrides": {**BASE["model"]["overrides"], **overrides, **({"depth": 1} if args.smoke else {})}}}
        if args.smoke:
            cfg = {**cfg, "optim": {**cfg["optim"], "batch_size": 16}}
        out.append(Arm(name, cfg, epochs=1 if args.smoke else EPOCHS, after=translation))
    return out


def figure(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [e["arm"] for e in table]
    for ax, col, label in ((axes[0], "top1", "test top-1 (%)"), (axes[1], "shift_changed_pct", "predictions changed by a 2 or 4 px shift (%)")):
        means = [e[col]["mean"] for e in table]
        err = [0 if e[col]["std"] is None else e[col]["hi"] - e[col]["mean"] for e in table]
        ax.bar(names, means, yerr=err, capsize=3, color="#4c72b0")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


STUDY = Study("relative_position", "Relative positions make attention depend on offsets: more translation-invariant, "
              "slightly better (Shaw et al. 2018; MViTv2).", reference="abs_learned", arms=arms, figure=figure,
              extra_columns=["shift_changed_pct", "shift_top1"])

if __name__ == "__main__":
    run_study(STUDY, parse(STUDY))
