"""The peer: a plain training loop around timm's VisionTransformer, as a timm user writes it.

    python benchmarks/timm_loop.py --data /tmp/c10 --epochs 5 --out runs/timm_loop

ViT dim 192, 6 blocks, 3 heads, patch 4, mlp ratio 2 (issue #12's loop); images decoded once
into memory; random pad-crop (4 px, reflect) + flip on tensors; AdamW lr 1e-3, wd 0.05, label
smoothing 0.1, 1 warmup epoch (linear) + cosine; batch 128; fp32, timm's default (SDPA)
attention; full test set evaluated after every epoch. Writes RUN/metrics.jsonl in vitkit's format
(a "start" record, then one "epoch" record each) so `vitkit viz curves --x minutes` overlays it.
It deliberately uses nothing from vitkit: it is what vitkit is compared against.
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image


def load_split(root: Path):
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())]
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])  # (N, 32, 32, 3) uint8
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor([i for _, i in files])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "metrics.jsonl", "w")
    log.write(json.dumps({"kind": "start", "time": t0, "peer": "timm " + timm.__version__}) + "\n")
    torch.manual_seed(a.seed)
    xtr, ytr = load_split(Path(a.data) / "train")
    xte, yte = load_split(Path(a.data) / "test")
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1) * 255
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=4, num_classes=10, embed_dim=192, depth=6, num_heads=3, mlp_ratio=2.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    bs, steps_per_epoch = 128, len(xtr) // 128
    total, warmup = a.epochs * steps_per_epoch, steps_per_epoch
    step = 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            x = F.pad(xtr[idx].float(), (4, 4, 4, 4), mode="reflect")
            d = np.random.randint(0, 9, (len(idx), 2))  # a translation per image
            x = torch.stack([x[j, :, r:r + 32, c:c + 32] for j, (r, c) in enumerate(d)])
            flip = torch.rand(len(idx)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            lr = 1e-3 * (step + 1) / warmup if step < warmup else \
                1e-3 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model((x - mean) / std), ytr[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for s in range(0, len(xte), 500):
                correct += (model((xte[s:s + 500].float() - mean) / std).argmax(1) == yte[s:s + 500]).sum().item()
        top1 = 100.0 * correct / len(xte)
        rec = {"kind": "epoch", "epoch": epoch + 1, "step": step, "top1": top1, "loss": None,
               "train_loss": loss.item(), "time": time.time()}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(f"epoch {epoch + 1}: top-1 {top1:.2f}%  ({(time.time() - t0) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
