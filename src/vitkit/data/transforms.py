"""Image transforms: training augmentation per image, the evaluation transform, MixUp/CutMix, and
the preprocessing a model records (`preprocess_of`), which evaluation, prediction and ONNX export share.

    tf = transform_for(vitkit.load_model("cifar10_vit_tiny"))    # resize, centre-crop, normalise
"""
from __future__ import annotations

import torch

from ..errors import UsageError
from .options import IMAGENET_MEAN, IMAGENET_STD, DataOptions


def v2_transforms():
    """torchvision's v2 transforms, imported on first use. The trap: `import torchvision` runs
    torchvision.ops, which imports torch._dynamo — 3 s of a `vitkit` command's start-up on a
    2 GHz core (`python -X importtime -m vitkit --help`), paid by every command that never
    builds a transform (--help, export, a bad argument)."""
    from torchvision.transforms import v2

    return v2


def interpolation_mode(name: str):
    """torchvision's InterpolationMode for a config name ("bicubic", "bilinear", "nearest")."""
    from torchvision.transforms import InterpolationMode

    return {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
            "nearest": InterpolationMode.NEAREST}[name]


def train_transform(o: DataOptions, size: int):
    T, interp = v2_transforms(), interpolation_mode(o.interpolation)
    if o.train_crop == "pad_crop":  # CIFAR recipe: 4-px reflect padding, random 32×32 crop
        crop = [T.Resize(size, interpolation=interp, antialias=True), T.RandomCrop(size, padding=o.pad, padding_mode="reflect")]
    elif o.train_crop == "resize":
        crop = [T.Resize((size, size), interpolation=interp, antialias=True)]
    else:
        crop = [T.RandomResizedCrop(size, scale=tuple(o.rrc_scale), interpolation=interp, antialias=True)]
    aug = []
    if o.hflip > 0:
        aug.append(T.RandomHorizontalFlip(o.hflip))
    if o.auto_augment == "randaugment":
        aug.append(T.RandAugment(num_ops=o.ra_num_ops, magnitude=o.ra_magnitude, interpolation=interp))
    elif o.auto_augment == "trivialaugment":
        aug.append(T.TrivialAugmentWide(interpolation=interp))
    elif o.auto_augment != "none":
        raise UsageError(f"data.auto_augment={o.auto_augment!r}: choose none, randaugment or trivialaugment")
    tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(o.mean, o.std)]
    if o.random_erasing > 0:
        tail.append(T.RandomErasing(p=o.random_erasing, value=0))
    return T.Compose(crop + aug + tail)


def eval_transform(size: int, mean, std, crop_pct: float = 0.875, interpolation: str = "bicubic"):
    """Resize the short side to size/crop_pct, centre-crop size × size, normalise."""
    T, interp = v2_transforms(), interpolation_mode(interpolation)
    return T.Compose([T.Resize(int(round(size / crop_pct)), interpolation=interp, antialias=True),
                      T.CenterCrop(size), T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)])


def batch_mixer(o: DataOptions, num_classes: int):
    """MixUp / CutMix on a batch (torchvision v2); None when both are off. Labels become soft."""
    T = v2_transforms()
    ops = []
    if o.mixup > 0:
        ops.append(T.MixUp(alpha=o.mixup, num_classes=num_classes))
    if o.cutmix > 0:
        ops.append(T.CutMix(alpha=o.cutmix, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else T.RandomChoice(ops)


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
