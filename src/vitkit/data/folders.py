"""ImageFolder datasets: the folders of a run, unreadable images skipped, subsets.

A folder `DIR` holds `train/` and `val/` (or `test/`) in ImageFolder layout. Unreadable images
are skipped and counted, never fatal: the dataset returns None for them and the collate
function drops them and reports how many it dropped.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

from ..errors import UsageError
from .options import DataOptions
from .images import UNREADABLE, open_rgb

def safe_open(path: str):
    try:
        return open_rgb(path)
    except UNREADABLE:  # truncated, empty, not an image: the collate function counts it
        return None


class KeyedImages:
    """`ds[i]` or `ds[(i, epoch)]` → (image, target), or None for an unreadable image. With an
    epoch the random augmentation is seeded by (aug_seed, epoch, index), so it is the same
    whatever the number of workers or processes and whether the run was resumed. Every image
    dataset of vitkit (folders, lists, Hugging Face datasets) has `samples` [(key, target)],
    `targets`, `classes`, `transform`, `aug_seed` and `loader(key)`."""

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, None)
        path, target = self.samples[index]
        img = self.loader(path)
        if img is None:
            return None
        if self.transform is None:
            return img, target
        if epoch is None:
            return self.transform(img), target
        # fork_rng: with num_workers=0 this runs in the training process, whose RNG drives dropout.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.aug_seed * 1_000_003 + epoch * 10_000_019 + index) % (2**63))
            return self.transform(img), target

    def __len__(self) -> int:
        return len(self.samples)


class ImageFolderSafe(KeyedImages, datasets.ImageFolder):
    """ImageFolder whose unreadable images come back as None instead of raising.

    Indexed by an int, or by (index, epoch) from `RankSampler` (see KeyedImages).
    """

    def __init__(self, root, transform=None, classes: list[str] | None = None, aug_seed: int = 0):
        self._only = classes
        self.aug_seed = aug_seed
        super().__init__(root, transform=transform, loader=safe_open,
                         is_valid_file=lambda p: not Path(p).name.startswith("."))

    def find_classes(self, directory):
        classes, _ = super().find_classes(directory)
        if self._only is not None:
            missing = [c for c in self._only if c not in classes]
            if missing:
                raise UsageError(f"{directory}: no class folder(s) {', '.join(missing)}")
            classes = [c for c in classes if c in self._only]
        return classes, {c: i for i, c in enumerate(classes)}


def collate_skip_bad(batch):
    """Stack good samples; returns (images, labels, number of unreadable samples dropped)."""
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, None, skipped
    imgs, labels = zip(*good)
    return torch.stack(imgs), torch.tensor(labels), skipped


SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "cifar10_sample"


def resolve_data_root(path: str | Path) -> Path:
    """`sample` names the CIFAR-10 sample bundled with the package; anything else is a path."""
    return SAMPLE_DIR if str(path) == "sample" else Path(path)


def split_dir(root: Path, split: str | None, role: str) -> Path:
    root = resolve_data_root(root)
    if not root.is_dir():
        raise UsageError(f"--data {root}: no such directory")
    names = [split] if split else (["val", "test"] if role == "val" else ["train"])
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise UsageError(f"--data {root}: no {' or '.join(n + '/' for n in names)} folder inside "
                     f"(expected ImageFolder layout: {names[0]}/<class>/<image>)")


def eval_folder(root: str | Path, split: str | None = None) -> Path:
    """The folder to evaluate: `root/split`, else `root/val` or `root/test`, else `root` itself
    when it holds class folders directly."""
    root = resolve_data_root(root)
    if split is None and root.is_dir() and not any((root / s).is_dir() for s in ("val", "test", "train")):
        return root
    return split_dir(root, split, "val")


def subset_samples(ds, o: DataOptions) -> None:
    """Keep a per-class fraction / count of training images, chosen by `subset_seed`."""
    if o.subset is None and o.per_class is None:
        return
    rng = random.Random(o.subset_seed)
    by_class: dict[int, list] = {}
    for s in ds.samples:
        by_class.setdefault(s[1], []).append(s)
    kept = []
    for _, items in sorted(by_class.items()):
        rng.shuffle(items)
        n = len(items) if o.subset is None else max(1, int(round(len(items) * o.subset)))
        if o.per_class is not None:
            n = min(n, o.per_class)
        kept += items[:n]
    kept.sort()
    ds.samples = ds.imgs = kept
    ds.targets = [s[1] for s in kept]


@dataclass
class Data:
    train: KeyedImages  # ImageFolderSafe, lists.ListImages or hfds.HFImages (None for shards)
    val: KeyedImages
    classes: list[str]
