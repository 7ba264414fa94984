"""Classify image files with any checkpoint `vitkit.load_model` reads."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import IMAGENET_MEAN, IMAGENET_STD
from .data import eval_transform
from .images import open_rgb


def preprocess_of(model) -> dict:
    """The eval transform a vitkit run recorded; ImageNet defaults at the model's size otherwise."""
    pre = dict(getattr(model, "preprocess", None) or {})
    pre.setdefault("img_size", model.cfg.img_size[0])
    pre.setdefault("mean", IMAGENET_MEAN)
    pre.setdefault("std", IMAGENET_STD)
    pre.setdefault("crop_pct", 0.875 if pre["img_size"] >= 64 else 1.0)
    pre.setdefault("interpolation", "bicubic")
    return pre


def transform_for(model):
    p = preprocess_of(model)
    return eval_transform(p["img_size"], p["mean"], p["std"], p["crop_pct"], p["interpolation"])


def class_label(model, index: int) -> str:
    names = getattr(model, "class_names", None)
    return names[index] if names and index < len(names) else str(index)


@torch.no_grad()
def predict_files(model, paths: list[str], topk: int = 5, batch_size: int = 32) -> list[dict]:
    """One dict per path, in order: {"path", "topk": [{"label", "index", "prob"}]} or {"path", "error"}."""
    transform = transform_for(model)
    device = next(model.parameters()).device
    results: list[dict | None] = [None] * len(paths)
    batch: list[tuple[int, torch.Tensor]] = []

    def flush():
        if not batch:
            return
        probs = model(torch.stack([t for _, t in batch]).to(device)).float().softmax(dim=-1)
        k = min(topk, probs.shape[1])
        p, idx = probs.topk(k, dim=1)
        for (i, _), pi, ii in zip(batch, p.tolist(), idx.tolist()):
            results[i] = {"path": paths[i], "topk": [{"label": class_label(model, c), "index": c, "prob": round(q, 6)}
                                                      for q, c in zip(pi, ii)]}
        batch.clear()

    for i, path in enumerate(paths):
        if not Path(path).is_file():
            results[i] = {"path": path, "error": "no such file"}
            continue
        try:
            img = open_rgb(path)
        except Exception as e:
            results[i] = {"path": path, "error": f"cannot read image ({type(e).__name__}: {str(e)[:120]})"}
            continue
        batch.append((i, transform(img)))
        if len(batch) == batch_size:
            flush()
    flush()
    return results  # type: ignore[return-value]
