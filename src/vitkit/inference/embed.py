"""One vector per image from any block, and the k-NN classifier that judges a backbone by them.

    vitkit embed --checkpoint cifar10_vit_tiny --data DIR/test --out feats.safetensors --layer -1 --pool mean
    vitkit eval --checkpoint cifar10_vit_tiny --data DIR --knn 20
    # k-NN: features of DIR/train are the memory, DIR/val (or test) is classified by its K nearest

Features: with no --layer, the head's input (the model's own pooling and final norm: what the
classifier sees); with --layer K (0-based, negative from the end), block K's tokens after the
final norm (timm's `forward_intermediates(norm=True)`), pooled by `cls` (the first prefix token)
or `mean` (the patch tokens). k-NN: cosine similarity, the K nearest vote with weights
exp(sim / 0.07), as DINO (Caron et al. 2021) evaluates.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..errors import UsageError
from ..hardware import autocast


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = self.ds[i]
        return (None, None, i) if item is None else (*item, i)


def _collate(batch):
    good = [b for b in batch if b[0] is not None]
    bad = [b[2] for b in batch if b[0] is None]
    if not good:
        return None, None, [], bad
    x, y, idx = zip(*good)
    return torch.stack(x), torch.tensor(y), list(idx), bad


def pooled_features(model, x: torch.Tensor, layer: int | None, pool: str) -> torch.Tensor:
    """(B, C, H, W) → (B, D)."""
    if layer is None and pool == "auto":
        return model.forward_head(model.forward_features(x), pre_logits=True)
    if layer is None:
        layer = -1
    if pool == "auto":
        pool = model.cfg.pool
    out = model.forward_intermediates(x, indices=[layer], norm=True, output_fmt="NLC", return_prefix_tokens=True,
                                      intermediates_only=True, stop_early=True)[0]
    patches, prefix = out if isinstance(out, tuple) else (out, None)  # (B, N, D), (B, prefix, D)
    if pool == "cls":
        return prefix[:, 0]  # (B, D)
    return patches.mean(dim=1)  # (B, N, D) → (B, D)


@torch.no_grad()
def embed_dataset(model, ds, layer: int | None = None, pool: str = "auto", batch_size: int = 128,
                  workers: int = 2, precision: str = "fp32", device: torch.device | None = None) -> dict:
    """{'features': (N, D) float32, 'labels': (N,), 'paths': [N], 'skipped': [paths]} for an ImageFolder."""
    if pool not in ("auto", "cls", "mean"):
        raise UsageError(f"--pool {pool!r}: choose auto, cls or mean")
    if pool == "cls" and not model.num_prefix_tokens:
        raise UsageError("--pool cls: this model has no [class] token; use --pool mean")
    depth = len(model.blocks)
    if layer is not None and not -depth <= layer < depth:
        raise UsageError(f"--layer {layer} is out of range for {depth} blocks (0..{depth - 1}, or negative)")
    device = device or next(model.parameters()).device
    model.eval()
    feats, labels, paths, skipped = [], [], [], []
    loader = DataLoader(_Indexed(ds), batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_collate)
    for x, y, idx, bad in loader:
        skipped += [ds.samples[i][0] for i in bad]
        if x is None:
            continue
        with autocast(device, precision):
            f = pooled_features(model, x.to(device), layer, pool)
        feats.append(f.float().cpu())
        labels.append(y)
        paths += [ds.samples[i][0] for i in idx]
    if not feats:
        raise UsageError("no readable images to embed")
    return {"features": torch.cat(feats), "labels": torch.cat(labels), "paths": paths, "skipped": skipped}


def save_embeddings(out: Path, emb: dict, classes: list[str], meta: dict) -> Path:
    """`.safetensors` (features, labels; paths and classes in its metadata) or `.npy` + `.json` beside it."""
    from ..checkpoint.io import atomic_write

    out = Path(out)
    info = {"paths": emb["paths"], "classes": classes, "skipped": emb["skipped"], **meta}
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {"features": emb["features"].contiguous(), "labels": emb["labels"].contiguous()}
        atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata={"vitkit_embed": json.dumps(info)}))
    elif out.suffix == ".npy":
        import numpy as np

        def write(tmp):
            with open(tmp, "wb") as f:  # np.save would append .npy to a temporary name
                np.save(f, emb["features"].numpy())
        atomic_write(out, write)
        info["labels"] = emb["labels"].tolist()
        atomic_write(out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(info) + "\n"))
    else:
        raise UsageError(f"--out {out}: choose a .npy or .safetensors file")
    return out


def knn_classify(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, k: int,
                 num_classes: int, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Weighted k-NN on cosine similarity: (M, D) queries → (M, num_classes) vote scores."""
    if not 1 <= k <= len(train_f):
        raise UsageError(f"--knn {k}: choose 1..{len(train_f)} (the number of training images)")
    train_f = F.normalize(train_f, dim=1)
    scores = []
    for q in F.normalize(test_f, dim=1).split(chunk):
        sim, idx = (q @ train_f.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(len(q), num_classes)
        votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
        scores.append(votes)
    return torch.cat(scores)
