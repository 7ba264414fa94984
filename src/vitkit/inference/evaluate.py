"""Evaluation: loss, top-1, top-5 and per-class accuracy, summed across processes."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..hardware import autocast
from ..parallel import distributed as dist_utils
from ..data.folders import collate_skip_bad
from ..data.workers import ignore_stop_signals


def make_eval_loader(ds, batch_size: int, d: dist_utils.Dist, workers: int, pin: bool) -> DataLoader:
    """Each process takes every world-th image, no padding, so every image counts exactly once."""
    indices = list(range(d.rank, len(ds), d.world))
    return DataLoader(torch.utils.data.Subset(ds, indices), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=pin, collate_fn=collate_skip_bad,
                      worker_init_fn=ignore_stop_signals)


@torch.no_grad()
def evaluate(model, loader, d: dist_utils.Dist, num_classes: int, precision: str | None = None,
             tta: str = "none") -> dict:
    """`precision`: "fp32" | "bf16" | None (bf16 on CUDA only, the old rule). `tta="flip"`
    averages the logits of each image and its mirror (one more forward pass)."""
    if precision is None:
        precision = "bf16" if d.device.type == "cuda" else "fp32"
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)
    correct = torch.zeros(2, dtype=torch.float64, device=d.device)  # top-1, top-5
    per_class = torch.zeros(2, num_classes, dtype=torch.float64, device=d.device)  # correct, count
    skipped = 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=d.device)  # (true, predicted)
    for x, y, bad in loader:
        skipped += bad
        if x is None:
            continue
        x, y = x.to(d.device), y.to(d.device)
        with autocast(d.device, precision):
            logits = model(x).float()
            if tta == "flip":
                logits = (logits + model(x.flip(-1)).float()) / 2
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        top = logits.topk(min(5, num_classes), dim=1).indices
        hit1 = top[:, 0] == y
        correct[0] += hit1.sum()
        correct[1] += (top == y[:, None]).any(dim=1).sum()
        per_class[0].index_add_(0, y, hit1.double())
        per_class[1].index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        confusion.index_put_((y, top[:, 0]), torch.ones_like(y), accumulate=True)
    for t in (loss_sum, correct, per_class, confusion):
        dist_utils.all_reduce_sum(t, d)
    skipped_t = dist_utils.all_reduce_sum(torch.tensor([skipped], device=d.device), d)
    n = per_class[1].sum().item()
    model.train(was_training)
    return {"loss": loss_sum.item() / max(n, 1), "top1": 100.0 * correct[0].item() / max(n, 1),
            "top5": 100.0 * correct[1].item() / max(n, 1), "count": int(n), "skipped": int(skipped_t.item()),
            "per_class": [100.0 * c / max(k, 1) for c, k in zip(per_class[0].tolist(), per_class[1].tolist())],
            "confusion": confusion.tolist()}
