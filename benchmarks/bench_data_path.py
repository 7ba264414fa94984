"""Milliseconds per batch of the tensor data path's crop and flip (data/cache.py) against the way
it was done before (padded float copy + strided gather), on random uint8 images of CIFAR's shape,
alone and with the normalisation and progressive resize the loop adds.

    python benchmarks/bench_data_path.py                       # batch 256, 32 px → 24 px
    python benchmarks/bench_data_path.py --batch 512 --size 16

Speed depends on the CPU (flags printed first); run it with nothing beside it: a busy core turns
every small parallel op into a wait (figures 3-10x off).
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vitkit.data.cache import pad_crop_flip  # noqa: E402
from vitkit.training.engine import resize_batch  # noqa: E402
from vitkit.hardware import describe_cpu  # noqa: E402


def old_pad_crop_flip(x, offsets, flips, pad):
    """The earlier implementation: reflect-pad a float copy, then an advanced-indexing gather."""
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # (B, C, H + 2p, W + 2p)
    rows = offsets[:, 0, None] + torch.arange(H)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(W)  # (B, W)
    b = torch.arange(B)[:, None, None]
    x = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flips[:, None, None, None], x.flip(-1), x)


def ms(fn, n: int) -> float:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--image", type=int, default=32, help="cached image size")
    ap.add_argument("--size", type=int, default=24, help="progressive size to resize to")
    ap.add_argument("--pad", type=int, default=4)
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()
    print(f"{describe_cpu()} | batch {a.batch}, {a.image} px → {a.size} px, pad {a.pad}")
    g = torch.Generator().manual_seed(0)
    N, B, S = 20_000, a.batch, a.image
    images = torch.randint(0, 256, (N, 3, S, S), dtype=torch.uint8, generator=g)
    offsets = torch.randint(0, 2 * a.pad + 1, (N, 2), generator=g)
    flips = torch.rand(N, generator=g) < 0.5
    i = torch.randperm(N, generator=g)[:B]
    mean = torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1) * 255
    xf = images[i].float()
    rows = [
        ("crop+flip, before (float, padded copy)", lambda: old_pad_crop_flip(images[i].float(), offsets[i], flips[i], a.pad),
         "crop+flip, now (uint8 gather, then float)", lambda: pad_crop_flip(images[i], offsets[i], flips[i], a.pad).float()),
        ("whole batch, before", lambda: F.interpolate((old_pad_crop_flip(images[i].float(), offsets[i], flips[i], a.pad)
                                                       - mean) / std, size=(a.size, a.size), mode="bilinear",
                                                      antialias=True, align_corners=False),
         "whole batch, now", lambda: resize_batch((pad_crop_flip(images[i], offsets[i], flips[i], a.pad).float()
                                                   - mean) / std, a.size)),
    ]
    for name0, f0, name1, f1 in rows:
        t0, t1 = ms(f0, a.iters), ms(f1, a.iters)
        print(f"{name0:45s} {t0:7.2f} ms | {name1:45s} {t1:7.2f} ms | {t0 / t1:5.1f}x")
    same = torch.equal(old_pad_crop_flip(xf, offsets[i], flips[i], a.pad),
                       pad_crop_flip(images[i], offsets[i], flips[i], a.pad).float())
    print(f"crop+flip identical: {same}")


if __name__ == "__main__":
    main()
