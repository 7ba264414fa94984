"""The fast data path for sets that fit in memory: decode once, augment whole batches as tensors.

    vitkit train --config recipes/cifar10_speedrun_cpu.yaml --data DIR    # data.cache: auto

The folder path decodes and augments every image every epoch in DataLoader workers, which on a
2-core machine steal the cores the training step needs (the step ran ~150 img/s alone, ~125
end to end). Here each image is decoded once into a uint8 tensor (N, 3, S, S) — on the GPU when
training there — and each batch is cropped, flipped and normalised by a few tensor ops on the
training device. Random choices come from a table drawn per (seed, epoch) and indexed by sample,
so, as in the folder path, augmentation does not depend on world size or resume.

Supported augmentations: pad-crop (random translation with reflect padding) or a plain resize,
horizontal flip, RandAugment / TrivialAugment and random erasing (data/batch_augment.py: one
operation per image, as torchvision's kernels compute it), and the batch-level MixUp / CutMix
(applied by the loop). Random-resized crops stay on the folder path (`data.cache: none`).
The cache can be kept on disk (`data.cache_dir`) so the next run skips decoding.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import UsageError
from .batch_augment import BatchAugment
from .options import DataOptions

CACHE_MODES = ("none", "memory", "auto")


def tensor_path_reason(o: DataOptions) -> str | None:
    """Why the tensor path cannot reproduce these augmentations (None: it can)."""
    if o.train_crop not in ("pad_crop", "resize"):
        return f"data.train_crop={o.train_crop!r} (the tensor path does pad_crop and resize)"
    return None


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_budget_bytes(o: DataOptions) -> int | None:
    """data.cache_max_gb, else half of the memory available now (None: unknown)."""
    if o.cache_max_gb is not None:
        return int(o.cache_max_gb * 2**30)
    avail = available_memory_bytes()
    return None if avail is None else avail // 2


def use_tensor_path(o: DataOptions, n_images: int, size: int, is_main: bool = True) -> bool:
    """Decide data.cache: "memory" must work (else a one-line error), "auto" falls back quietly."""
    if o.cache not in CACHE_MODES:
        raise UsageError(f"data.cache={o.cache!r}: choose {', '.join(CACHE_MODES)}")
    if o.cache == "none":
        return False
    reason = tensor_path_reason(o)
    need = n_images * 3 * size * size  # uint8, train + val counted by the caller
    budget = memory_budget_bytes(o)
    too_big = budget is not None and need > budget
    if o.cache == "memory":
        if reason:
            raise UsageError(f"data.cache=memory cannot apply {reason}; use data.cache=none for it")
        if too_big:
            raise UsageError(f"data.cache=memory: the decoded images need {need / 2**30:.2f} GiB, over the "
                             f"{budget / 2**30:.2f} GiB budget (data.cache_max_gb); use data.cache=none")
        return True
    if is_main and (reason or too_big):
        why = reason or f"{need / 2**30:.2f} GiB decoded exceeds the {budget / 2**30:.2f} GiB budget"
        print(f"vitkit train: data.cache=auto keeps the per-image path ({why})", flush=True)
    return not (reason or too_big)


# ---- building the cache ----
@dataclass
class TensorSet:
    images: torch.Tensor  # (N, 3, S, S) uint8
    targets: torch.Tensor  # (N,) int64
    skipped: int  # unreadable images left out when the cache was built

    def __len__(self) -> int:
        return self.images.shape[0]


def _decode_transform(kind: str, o: DataOptions, size: int):
    """Deterministic part of the transform, ending in uint8 (C, S, S)."""
    from .transforms import interpolation_mode, v2_transforms

    T, interp = v2_transforms(), interpolation_mode(o.interpolation)
    if kind == "val":  # as eval_transform, without the float conversion
        resize = [T.Resize(int(round(size / o.crop_pct)), interpolation=interp, antialias=True), T.CenterCrop(size)]
    elif o.train_crop == "resize":
        resize = [T.Resize((size, size), interpolation=interp, antialias=True)]
    else:  # pad_crop: the random translation happens per batch
        resize = [T.Resize(size, interpolation=interp, antialias=True), T.CenterCrop(size)]
    return T.Compose(resize + [T.PILToTensor()])


def _collate_uint8(batch):
    good = [b for b in batch if b is not None]
    if not good:
        return None, None, len(batch)
    imgs, labels = zip(*good)
    return torch.stack(imgs), torch.tensor(labels), len(batch) - len(good)


def _fingerprint(ds, kind: str, o: DataOptions, size: int) -> str:
    """Changes when any file, the class list or the decode settings change."""
    h = hashlib.sha256()
    h.update(json.dumps([kind, size, o.train_crop, o.crop_pct, o.interpolation, ds.classes, 1]).encode())
    if getattr(ds, "fingerprint", None):  # a Hugging Face split: its own content hash
        h.update(ds.fingerprint.encode())
        h.update(json.dumps(ds.samples).encode())
        return h.hexdigest()[:16]
    for path, target in ds.samples:
        st = os.stat(path)
        h.update(f"{path}\0{target}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cache_file(o: DataOptions, root: Path, kind: str, size: int, fp: str) -> Path | None:
    if not o.cache_dir:
        return None
    base = root / ".vitkit-cache" if o.cache_dir == "auto" else Path(o.cache_dir)
    return base / f"{kind}-{size}px-{fp}.safetensors"


def build_tensor_set(ds, kind: str, o: DataOptions, size: int, root: Path, workers: int,
                     is_main: bool = True) -> TensorSet:
    """Decode every image of `ds` (an ImageFolderSafe) once; read/write the disk cache if asked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from ..checkpoint.io import atomic_write

    fp = _fingerprint(ds, kind, o, size)
    path = _cache_file(o, root, kind, size, fp)
    if path is not None and path.is_file():
        try:
            t = load_file(str(path))
            return TensorSet(t["images"], t["targets"], int(t["skipped"].item()))
        except (SafetensorError, OSError, KeyError, RuntimeError):  # damaged or foreign: rebuilt, never trusted
            if is_main:
                print(f"vitkit train: cache {path} is unreadable; decoding again", flush=True)
    saved_transform = ds.transform
    ds.transform = _decode_transform(kind, o, size)
    try:
        loader = DataLoader(ds, batch_size=256, shuffle=False, num_workers=workers, collate_fn=_collate_uint8)
        imgs, targets, skipped = [], [], 0
        for x, y, bad in loader:
            skipped += bad
            if x is not None:
                imgs.append(x)
                targets.append(y)
    finally:
        ds.transform = saved_transform
    if not imgs:
        raise UsageError(f"{root}: no readable {kind} images")
    ts = TensorSet(torch.cat(imgs), torch.cat(targets).long(), skipped)
    if path is not None and is_main:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: save_file({"images": ts.images.contiguous(), "targets": ts.targets,
                                                      "skipped": torch.tensor([skipped])}, tmp))
        except OSError as e:  # a read-only data folder: the run goes on without the disk copy
            print(f"vitkit train: could not keep the decoded cache at {path} ({e.strerror or e}); "
                  f"continuing without it", flush=True)
    return ts


# ---- batches ----
def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices into [0, n) of positions -pad..n-1+pad under reflect padding (edge not repeated)."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def pad_crop_flip(x: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None,
                  pad: int) -> torch.Tensor:
    """Per-sample random translation (reflect padding, then a crop at `offsets`) and flip.

    x: (B, C, H, W), any dtype (uint8 from the cache: 4x fewer bytes to move than float);
    offsets: (B, 2) int in [0, 2·pad] (row, col); flips: (B,) bool. Equal, image by image, to
    torchvision's RandomCrop(padding=pad, padding_mode="reflect") at that offset followed by a
    horizontal flip where `flips` is set. One gather: the padding, the crop and the flip are only
    a source index per output pixel, so nothing padded is materialised (the padded float copy and
    a strided advanced-indexing gather took 4.3 ms of a 256-image batch on 2 cores, this 1.0 ms).
    """
    B, C, H, W = x.shape
    rows = torch.arange(H, device=x.device).expand(B, H)  # (B, H) source row of each output row
    cols = torch.arange(W, device=x.device).expand(B, W)  # (B, W)
    if offsets is not None and pad > 0:
        if pad >= H or pad >= W:
            raise UsageError(f"data.pad={pad} needs images larger than the padding, got {H}x{W}")
        rows = _reflect(rows + (offsets[:, :1].to(x.device) - pad), H)
        cols = _reflect(cols + (offsets[:, 1:].to(x.device) - pad), W)
    if flips is not None:
        cols = torch.where(flips[:, None].to(x.device), cols.flip(-1), cols)  # flipped after the crop
    idx = (rows[:, :, None] * W + cols[:, None, :]).view(B, 1, H * W).expand(B, C, H * W)
    return x.reshape(B, C, H * W).gather(2, idx).view(B, C, H, W)


class TensorLoader:
    """Yields (images (B, 3, S, S) float normalised, labels (B,), 0) like the folder loader.

    Train mode takes the sample order from `sampler` (a ShardSampler: same global batches for
    any number of processes) and draws crop offsets, flips and the `augment` choices from a
    per-(seed, epoch) table. Order as the folder path: crop, flip, RandAugment/TrivialAugment,
    normalise, erase.
    """

    def __init__(self, ts: TensorSet, batch_size: int, device: torch.device, mean, std,
                 sampler=None, indices: list[int] | None = None, pad: int = 0, hflip: float = 0.0,
                 seed: int = 0, augment: BatchAugment | None = None):
        self.images = ts.images.to(device)
        self.targets = ts.targets.to(device)
        self.batch_size, self.device, self.sampler = batch_size, device, sampler
        self.indices = indices
        self.pad, self.hflip, self.seed = pad, hflip, seed
        self.augment = augment if augment is not None and augment.active else None
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.indices)
        return -(-n // self.batch_size)

    def _table(self, epoch: int):
        """Per-sample random choices for one epoch: (N, 2) offsets, (N,) flips, the augment's table."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 10_000_019 + 7) % (2**63))
        n, _, H, W = self.images.shape
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g) if self.pad > 0 else None
        flips = torch.rand(n, generator=g) < self.hflip if self.hflip > 0 else None
        # Drawn after crops and flips from the same stream, so those stay what they were without it.
        aug = self.augment.draw(n, H, W, g) if self.augment is not None else {}
        return offsets, flips, aug

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def __iter__(self):
        if self.sampler is None:  # evaluation: fixed order, no augmentation
            idx = torch.tensor(self.indices, dtype=torch.long)
            for s in range(0, len(idx), self.batch_size):
                i = idx[s:s + self.batch_size].to(self.device)
                yield self._normalise(self.images[i].float()), self.targets[i], 0
            return
        idx = torch.tensor([k[0] for k in self.sampler], dtype=torch.long)
        offsets, flips, aug = self._table(self.sampler.epoch)
        for s in range(0, len(idx), self.batch_size):
            i = idx[s:s + self.batch_size]
            x = self.images[i.to(self.device)]  # (B, 3, S, S) uint8
            off = offsets[i].to(self.device) if offsets is not None else None
            fl = flips[i].to(self.device) if flips is not None else None
            x = pad_crop_flip(x, off, fl, self.pad).float()  # whole numbers in [0, 255]; crop and flip in uint8
            if self.augment is not None:
                x = self.augment.after_normalise(self._normalise(self.augment.before_normalise(x, aug, i)), aug, i)
            else:
                x = self._normalise(x)
            yield x, self.targets[i.to(self.device)], 0
