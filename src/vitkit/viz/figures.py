"""matplotlib figures; each function writes one PNG of a fixed pixel size and returns its path."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ..errors import UsageError  # noqa: E402
from .metrics_file import read_metrics  # noqa: E402

DPI = 100


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)  # no bbox_inches="tight": the pixel size stays figsize × DPI
    plt.close(fig)
    return out


def _upsample(m: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay_grid(image: np.ndarray, maps: list[torch.Tensor], titles: list[str], out: Path, suptitle: str) -> Path:
    """The image, then each (H, W) map upsampled and laid over it."""
    n = len(maps) + 1
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("input", fontsize=8)
    size = image.shape[:2]
    for ax, m, t in zip(list(axes.flat)[1:], maps, titles):
        ax.imshow(image)
        ax.imshow(_upsample(m, size), cmap="inferno", alpha=0.6)
        ax.set_title(t, fontsize=8)
    fig.suptitle(suptitle, fontsize=9)
    return _save(fig, out)


def posemb_figure(sim: torch.Tensor, out: Path) -> Path:
    gh, gw = sim.shape[:2]
    fig, axes = plt.subplots(gh, gw, figsize=(max(4.0, 0.5 * gw), max(4.0, 0.5 * gh)), squeeze=False)
    for r in range(gh):
        for c in range(gw):
            ax = axes[r, c]
            ax.imshow(sim[r, c].numpy(), cmap="viridis", vmin=-1, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("position embedding similarity (cosine)", fontsize=9)
    return _save(fig, out)


def filters_figure(comps: torch.Tensor, out: Path) -> Path:
    k = comps.shape[0]
    cols = min(7, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, comps):
        img = c.permute(1, 2, 0).numpy()
        ax.imshow(img if img.shape[-1] == 3 else img[..., 0], cmap=None if img.shape[-1] == 3 else "gray",
                  interpolation="nearest")
    fig.suptitle("principal components of patch-embedding filters", fontsize=9)
    return _save(fig, out)


def distance_figure(dist: torch.Tensor, out: Path, patch_size: int) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4))
    blocks, heads = dist.shape
    for h in range(heads):
        ax.scatter(np.arange(1, blocks + 1), dist[:, h].numpy(), s=12, alpha=0.8)
    ax.set_xlabel("network depth (block)")
    ax.set_ylabel("mean attention distance (pixels)")
    ax.set_title(f"attention distance per head (patch {patch_size})", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def curves_figure(runs: list[Path], out: Path, x: str = "epoch") -> Path:
    """Loss, validation top-1 and lr of several runs. `x="minutes"` puts top-1 against wall-clock
    minutes since each run's "start" record (decoding and evaluation included), so runs of
    different speed (vitkit and a peer's loop) compare at equal time."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for run in runs:
        rows = read_metrics(run)
        steps = [r for r in rows if r.get("kind") == "step"]
        epochs = [r for r in rows if r.get("kind") == "epoch" and r.get("top1") is not None]
        label = Path(run).name
        if steps:
            axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps], label=f"{label} train")
            axes[2].plot([r["step"] for r in steps], [r["lr"] for r in steps], label=label)
        if any(r.get("loss") is not None for r in epochs):
            axes[0].plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o--", label=f"{label} val")
        if x == "minutes":
            starts = [r["time"] for r in rows if r.get("kind") == "start"] or [rows[0]["time"]]
            xs = [(r["time"] - starts[0]) / 60 for r in epochs]
        else:
            xs = [r["epoch"] for r in epochs]
        axes[1].plot(xs, [r["top1"] for r in epochs], "o-", label=f"{label} top-1")
    xlabel = "wall-clock minutes" if x == "minutes" else "epoch"
    for ax, (xl, yl) in zip(axes, [("step", "loss"), (xlabel, "val top-1 (%)"), ("step", "learning rate")]):
        ax.set_xlabel(xl), ax.set_ylabel(yl), ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def confusion_figure(confusion: list[list[int]], classes: list[str], out: Path) -> Path:
    m = np.asarray(confusion, dtype=float)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * n + 2), max(4.5, 0.5 * n + 1.5)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    fig.tight_layout()
    return _save(fig, out)
