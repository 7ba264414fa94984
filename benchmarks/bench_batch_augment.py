"""What the tensor path's augmentations cost per batch, next to the training step they feed.

    python benchmarks/bench_batch_augment.py --recipe recipes/cifar10_vit_cpu_60min.yaml
    # prints, per augmentation setting, ms per batch of the recipe's size (crop and flip included)
    # and that time as a share of one forward+backward+clip+AdamW step of the recipe's model at 32 px.

Issue 23 lists RandAugment/TrivialAugment, random erasing and MixUp/CutMix as levers against the
60-minute recipe's plateau; a lever's gain at equal time is paid for in steps, so this prints what
each costs before any accuracy run. The images are uint8 noise: the ops' cost does not depend on
content (equalize and autocontrast read every pixel either way). Run with nothing beside it.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from vitkit.data.batch_augment import BatchAugment  # noqa: E402
from vitkit.data.cache import TensorLoader, TensorSet  # noqa: E402
from vitkit.data.options import DataOptions  # noqa: E402
from vitkit.data.samplers import RankSampler  # noqa: E402
from vitkit.data.transforms import batch_mixer  # noqa: E402
from vitkit.errors import UsageError  # noqa: E402
from vitkit.hardware import describe_cpu, resolve_attention, resolve_precision  # noqa: E402
from vitkit.training.config import load_train_config  # noqa: E402

from bench_train_step import step_alone  # noqa: E402  (this folder is on sys.path when run as a script)

# (label, BatchAugment arguments, mixup alpha, cutmix alpha)
SETTINGS = [
    ("crop+flip only", dict(kind="none"), 0.0, 0.0),
    ("+ random erasing 0.25", dict(kind="none", erasing=0.25), 0.0, 0.0),
    ("+ trivialaugment", dict(kind="trivialaugment"), 0.0, 0.0),
    ("+ randaugment 2 ops, m9", dict(kind="randaugment", num_ops=2, magnitude=9), 0.0, 0.0),
    ("+ trivialaugment + erasing 0.25", dict(kind="trivialaugment", erasing=0.25), 0.0, 0.0),
    ("+ mixup 0.8 / cutmix 1.0", dict(kind="none"), 0.8, 1.0),
]


def augment_ms(images: TensorSet, batch: int, settings: dict, mixup: float, cutmix: float,
               pad: int, reps: int) -> float:
    """Mean ms per batch over `reps` passes of the set (the first pass, a warm-up, not counted)."""
    sampler = RankSampler(len(images), 0, 1, batch, 0)
    loader = TensorLoader(images, batch, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, sampler=sampler,
                          pad=pad, hflip=0.5, seed=0, augment=BatchAugment(**settings))
    mixer = batch_mixer(DataOptions(mixup=mixup, cutmix=cutmix), 10)  # None when both are 0
    times = []
    for epoch in range(reps + 1):
        sampler.set_epoch(epoch)
        t = time.perf_counter()
        n = 0
        for x, y, _ in loader:
            if mixer is not None:
                x, y = mixer(x, y)
            n += 1
        if epoch:
            times.append((time.perf_counter() - t) / n)
    return 1000 * sum(times) / len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/cifar10_vit_cpu_60min.yaml")
    ap.add_argument("--images", type=int, default=2560, help="synthetic uint8 images in the set")
    ap.add_argument("--reps", type=int, default=3, help="timed passes over the set per setting")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    a = ap.parse_args()
    for flag in ("images", "reps", "steps"):
        if getattr(a, flag) < 1:
            ap.error(f"--{flag} {getattr(a, flag)}: give 1 or more")
    try:
        cfg = load_train_config(a.recipe, [])
    except UsageError as e:
        ap.error(str(e))
    batch = cfg.optim.batch_size
    precision = resolve_precision(cfg.run.precision, torch.device("cpu"))
    print(f"cpu: {describe_cpu()}")
    print(f"recipe: {a.recipe} | batch {batch} | 32 px | step precision {precision}")
    g = torch.Generator().manual_seed(0)
    images = TensorSet(torch.randint(0, 256, (a.images, 3, 32, 32), dtype=torch.uint8, generator=g),
                       torch.randint(0, 10, (a.images,), generator=g), 0)
    # The attention path `vitkit train` picks (explicit on the CPU): SDPA's CPU backward in bf16
    # would make the step slower than training's and every augmentation look cheaper than it is.
    fused = resolve_attention(cfg.run.attention, torch.device("cpu"))
    step = 1000 * batch / step_alone(cfg, precision, fused, a.steps)  # ms per batch
    print(f"training step (fwd+bwd+clip+AdamW, no PatchDropout): {step:.1f} ms per batch")
    for i, (label, settings, mixup, cutmix) in enumerate(SETTINGS):
        ms = augment_ms(images, batch, settings, mixup, cutmix, cfg.data.pad, a.reps)
        base = ms if i == 0 else base  # SETTINGS[0], crop+flip alone, is what the others add to
        print(f"{label:34s} {ms:7.2f} ms/batch  (+{ms - base:6.2f} over crop+flip)  "
              f"{100 * ms / step:5.1f}% of a step")


if __name__ == "__main__":
    main()
