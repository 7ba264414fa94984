"""Data options: one dataclass that recipes' `data:` section and the CLI fill (training/config.py
validates it with the other sections)."""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class DataOptions:
    path: str = ""  # an ImageFolder root, or WebDataset shards ('S/train-{000000..000099}.tar', a URL)
    val_path: str | None = None  # evaluation data (folder or shards); None: beside the training data
    shuffle_buffer: int = 1000  # shards: samples held for shuffling per DataLoader worker
    train_split: str = "train"
    val_split: str | None = None  # None: "val" if present, else "test"
    train_crop: str = "random_resized"  # "random_resized" | "pad_crop" (32-px data) | "resize"
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    pad: int = 4
    hflip: float = 0.5
    auto_augment: str = "none"  # "none" | "randaugment" | "trivialaugment"
    ra_num_ops: int = 2
    ra_magnitude: int = 9
    random_erasing: float = 0.0
    mixup: float = 0.0  # Beta(α, α) for MixUp; 0 disables
    cutmix: float = 0.0  # Beta(α, α) for CutMix; 0 disables
    label_smoothing: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875  # eval: resize to size/crop_pct, centre-crop size
    interpolation: str = "bicubic"
    workers: int = 2
    # "auto": decode once into memory and augment batches as tensors when the augmentations
    # allow it and the decoded set fits `cache_max_gb`; "memory": insist; "none": per-image path.
    cache: str = "auto"
    cache_max_gb: float | None = None  # None: half the memory available at start
    cache_dir: str | None = None  # keep the decoded cache on disk: a folder, or "auto" (DATA/.vitkit-cache)
    # Progressive resizing: train at these sizes in turn, in equal shares of the first
    # `progressive_end` of training; the last must be the model's size (e.g. [24, 32], 0.5).
    progressive: list[int] | None = None
    progressive_end: float = 0.5
    image_column: str | None = None  # hfds: the image column (None: found by its Image feature type)
    label_column: str | None = None  # hfds: the ClassLabel column (None: found by type)
    classes: list[str] | None = None  # train on these class folders only
    subset: float | None = None  # keep this fraction of each training class
    per_class: int | None = None  # or at most this many images per training class
    subset_seed: int = 0
