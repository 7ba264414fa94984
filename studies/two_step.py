"""Claim (ViT paper): pre-train on a large set, then fine-tune on the target set — often at a higher
resolution, with interpolated position embeddings and a new head; more pre-training data is better.

    python studies/two_step.py --data /tmp/c10 --out studies/results/two_step --seeds 3 --shard 0/2 --workers 0   # and 1/2, one per core
    python studies/two_step.py --data DIR --out /tmp/smoke --seeds 1 --smoke                  # CI: no claim

Source and target are disjoint CIFAR-10 class sets (the two-step recipes' split): the source is
airplane/automobile/bird/cat/deer (25,000 training images), the target dog/frog/horse/ship/truck
with 500 training images per class (2,500: a small target set, the case pre-training is for),
tested on the target's 5,000 test images. Why disjoint classes of one dataset: the same image
statistics, so the only thing carried over is what the features learned, and no target image or
class is ever seen in pre-training.

Arms, per seed (6-block ViT-Ti/4 with a [class] token and learned absolute positions):
- phase `pretrain`: the source at 20%, 50% and 100% (per class, drawn by the seed), the same
  number of optimizer steps at every fraction (196 of 256: 2 epochs at 100%), so the comparison
  is about data, not compute; top-1 on the source's test images.
- phase `target_32px`: `scratch` (the reference) and `ft_src20/50/100`: fine-tuned from each
  pre-training with a new head, 6 epochs at the source's 32 px.
- phase `target_48px`: the same at 48 px; the fine-tunes' 8×8 position table is interpolated to
  12×12 (bicubic, the checkpoint surgery's rule).
- phase `interpolation`: the bundled `cifar10_vit_tiny` (trained at 32 px on all ten classes)
  evaluated at 24 to 64 px with its position table resampled and no fine-tuning — what
  interpolation alone gives — on all 10,000 test images. Deterministic, so evaluated once.
  The committed rows are of the bundled model's first version (no stem, 75.8%); it was replaced
  on 2026-12-02, so these rows, run again, would give the new weights' figures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import Arm, Study, bar_figure, parse, run_dir, run_study, test_tensors  # noqa: E402

SOURCE = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET = ["dog", "frog", "horse", "ship", "truck"]
TARGET_PER_CLASS = 500
FRACTIONS = (0.2, 0.5, 1.0)
PRETRAIN_EPOCHS_AT_FULL = 2  # fraction f trains 2/f epochs: the same steps at every fraction
TARGET_EPOCHS = 6
SIZES = (24, 32, 40, 48, 56, 64)
MODEL = {"name": "vit_tiny_patch4_32", "drop_path_rate": 0.0, "overrides": {"depth": 6}}
PRETRAIN = {"model": MODEL, "data": {"classes": SOURCE, "label_smoothing": 0.1, "cache": "memory"},
            "optim": {"batch_size": 256, "lr": 2e-3, "warmup_epochs": 0.2, "schedule": "linear"}}
TARGET_RUN = {"data": {"classes": TARGET, "per_class": TARGET_PER_CLASS, "label_smoothing": 0.1, "cache": "memory"},
              "optim": {"batch_size": 128, "lr": 1e-3, "warmup_epochs": 1, "schedule": "linear", "weight_decay": 0.05}}


def interpolation(size: int):
    """The bundled model at `size` px, position table resampled, no training: test top-1 (%)."""
    def after(_result, args) -> dict:
        import vitkit

        native = vitkit.load_model("cifar10_vit_tiny")
        model = vitkit.load_model("cifar10_vit_tiny", img_size=size).eval()
        x, y = test_tensors(args.data, native, every=10 if args.smoke else 1)  # (N, 3, 32, 32) as trained
        with torch.no_grad():
            pred = torch.cat([model(torch.nn.functional.interpolate(b, size=(size, size), mode="bicubic",
                                                                     align_corners=False, antialias=size < 32)).argmax(1)
                              for b in x.split(250)])
        return {"top1": 100 * (pred == y).float().mean().item(), "img_size": size}
    return after


def arms(args) -> list[Arm]:
    model = {**MODEL, "overrides": {"depth": 1 if args.smoke else 6}}
    batch = {"batch_size": 16} if args.smoke else {}
    pretrain = {**PRETRAIN, "model": model, "optim": {**PRETRAIN["optim"], **batch}}
    target = {**TARGET_RUN, "optim": {**TARGET_RUN["optim"], **batch}}
    out, pretrains = [], {}
    for f in FRACTIONS:
        pretrains[f] = Arm("pretrain", pretrain, data_fraction=f, phase="pretrain",
                           epochs=1 if args.smoke else max(1, round(PRETRAIN_EPOCHS_AT_FULL / f)))
        out.append(pretrains[f])
    for size in (32, 48):
        phase, epochs = f"target_{size}px", 1 if args.smoke else TARGET_EPOCHS
        out.append(Arm("scratch", {**target, "model": {**model, "img_size": size}}, phase=phase, epochs=epochs))
        for f, pre in pretrains.items():
            def config(seed, pre=pre, size=size):  # the pre-training of the same seed, a new head
                return {**target, "model": {"init": str(run_dir(args.out, pre, seed)), "img_size": size, "head": "new",
                                            "drop_path_rate": 0.0}}
            out.append(Arm(f"ft_src{round(100 * f)}", config, phase=phase, epochs=epochs, needs=(pre,)))
    out += [Arm(f"bundled_{s}px", None, phase="interpolation", after=interpolation(s), seeds=1) for s in SIZES]
    return out


STUDY = Study("two_step", "Pre-training on a larger source set, then fine-tuning on the target (also at a higher "
              "resolution, positions interpolated, a new head) beats training on the target alone, and more "
              "pre-training data is better (ViT paper).", reference="scratch", arms=arms, figure=bar_figure,
              contrasts=[("ft_src100", "ft_src20")])  # more pre-training data at equal steps

if __name__ == "__main__":
    run_study(STUDY, parse(STUDY))
