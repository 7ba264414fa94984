"""The per-rank sampler of in-memory or folder data and the DataLoader around it.

`RankSampler` splits each epoch's shuffled order over processes (torchrun ranks); WebDataset
shards have their own split (data/shards.py). Every train loader kind follows `TrainLoader`.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import torch
from torch.utils.data import DataLoader, Sampler

from .folders import collate_skip_bad
from .workers import ignore_stop_signals


class TrainLoader(Protocol):
    """What the training engine needs of a loader of training batches (folder DataLoader over a
    `RankSampler`, `cache.TensorLoader`, `shards.ShardLoader`): iterate (x, y, unreadable count)
    and know how many batches one epoch has left."""

    def __iter__(self) -> Iterator: ...

    def __len__(self) -> int: ...


class EpochPosition(Protocol):
    """Where an epoch starts: what the engine calls before iterating a `TrainLoader`."""

    def set_epoch(self, epoch: int, skip_batches: int = 0, per_proc_batch: int = 0) -> None: ...


class RankSampler(Sampler):
    """Shuffled (index, epoch) keys of one epoch, split across processes like DistributedSampler.

    The order depends only on (seed, epoch), never on how many processes run, so a 2-process
    run sees the same global batches as a 1-process run, and a resumed run the same as an
    uninterrupted one. The last incomplete global batch is dropped (`drop_last`) so every
    process does the same number of steps.
    """

    def __init__(self, n: int, rank: int, world: int, global_batch: int, seed: int, shuffle: bool = True):
        self.n, self.rank, self.world, self.shuffle, self.seed = n, rank, world, shuffle, seed
        self.global_batch = global_batch
        self.epoch = 0
        self.skip = 0  # leading samples of this epoch already trained (a run resumed mid-epoch)

    def set_epoch(self, epoch: int, skip_batches: int = 0, per_proc_batch: int = 0) -> None:
        """`skip_batches` batches of `per_proc_batch` samples were trained before a checkpoint."""
        self.epoch = epoch
        self.skip = skip_batches * per_proc_batch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self):
        order = self._order()
        usable = (len(order) // self.global_batch) * self.global_batch
        # Global batch b = order[b*G:(b+1)*G]; this process takes every world-th sample of it.
        return iter([(i, self.epoch) for i in order[self.rank:usable:self.world][self.skip:]])

    def __len__(self) -> int:
        return max(0, (self.n // self.global_batch) * self.global_batch // self.world - self.skip)


def make_loader(ds, batch_size: int, sampler, workers: int, pin: bool, seed: int = 0) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      persistent_workers=workers > 0, collate_fn=collate_skip_bad, drop_last=False,
                      generator=torch.Generator().manual_seed(seed), worker_init_fn=ignore_stop_signals)
