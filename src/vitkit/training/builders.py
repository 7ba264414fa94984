"""The pieces of a run, each built by one small function: model, criterion, datasets and loaders.

setup.py calls them in order; every check that can fail on user input happens in them or in
`config.validate`, before any file is written.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_model, model_from_checkpoint, read_checkpoint
from ..config import CNNConfig
from ..data.batch_augment import BatchAugment
from ..data.cache import TensorLoader, build_tensor_set, use_tensor_path
from ..data.folders import Data, ImageFolderSafe, eval_folder
from ..data.samplers import RankSampler, make_loader
from ..data.sources import build_datasets, data_root
from ..data.shards import (ShardLoader, ShardStream, eval_shards, expand_shards, is_shard_spec, read_manifest,
                           shard_eval_loader)
from ..data.transforms import eval_transform, train_transform
from ..errors import UsageError
from ..factory import create_model
from ..inference.evaluate import make_eval_loader
from ..parallel.distributed import Dist
from ..registry import model_config
from .config import TrainConfig
from .losses import DistillationLoss
from .progressive import check_progressive


def source(cfg: TrainConfig):
    """(architecture config, --init checkpoint or None): the model before data decides its classes."""
    if cfg.model.init:
        ck = read_checkpoint(cfg.model.init)
        return ck.cfg, ck
    return model_config(cfg.model.name), None


def training_size(cfg: TrainConfig, src) -> int:
    """The size the model trains at (the config's, else its architecture's), with the progressive
    sizes checked against it: one-line errors before any data is decoded."""
    size, patch = cfg.model.img_size or src.img_size[0], getattr(src, "patch_size", None)
    check_progressive(cfg.data.progressive, cfg.data.progressive_end, size, patch)
    switched = cfg.few_epochs.options
    if "data.progressive" in switched:  # the sizes a short run switches to (few_epochs.py)
        check_progressive(switched["data.progressive"], switched.get("data.progressive_end", cfg.data.progressive_end),
                          size, patch, name="few_epochs.options: data.progressive")
    return size


def wants_new_head(mode: str, ck_classes: list[str] | None, n_ck: int, classes: list[str]) -> bool:
    """Whether fine-tuning from a checkpoint gets a new head (see ModelOptions.head)."""
    if mode != "auto":
        if mode == "keep" and n_ck != len(classes):
            raise UsageError(f"model.head=keep: the checkpoint has {n_ck} classes, the data {len(classes)}")
        return mode == "new"
    # Same count but other names is a new task. Without stored names (timm, JAX) only the count tells.
    return n_ck != len(classes) or (ck_classes is not None and list(ck_classes) != list(classes))


def build_model(cfg: TrainConfig, init_ck, classes: list[str], size: int) -> tuple[nn.Module, bool]:
    """(model, whether its head is new): from --init's weights, else randomly initialised."""
    overrides = dict(cfg.model.overrides)
    overrides["num_classes"] = len(classes)
    overrides["img_size"] = size
    # A training choice of this run, not of the weights: a fine-tune from a PatchDropout-trained
    # checkpoint does not inherit it.
    overrides.setdefault("patch_dropout", cfg.model.patch_dropout)
    if init_ck is not None:  # positions resampled to `size`
        overrides.setdefault("drop_path_rate", cfg.model.drop_path_rate)
        new = wants_new_head(cfg.model.head, init_ck.class_names, init_ck.cfg.num_classes, classes)
        return model_from_checkpoint(init_ck, new_head=new, **overrides), new
    return create_model(cfg.model.name, drop_path_rate=cfg.model.drop_path_rate, **overrides), True


def conv_layout(model: nn.Module) -> nn.Module:
    """A CNN (a ResNet teacher) in channels-last memory, in place; a ViT as it is.

    oneDNN's convolutions run NHWC: a width-16 CIFAR ResNet-18 trained 1.26–1.52× the images per
    second channels-last on 2 AVX2 cores, while the ViT's only convolutions (patch embedding, conv
    stem) gained nothing (0.96–1.01×; docs/results.md, "Channels-last buys nothing either"). The
    weights alone are enough: a convolution runs channels-last when its input *or* its weight is,
    and its output keeps that layout, so batches need no conversion. Checkpoints stay contiguous
    (checkpoint/native.py copies every tensor with .contiguous()).
    """
    if isinstance(getattr(model, "cfg", None), CNNConfig):
        model.to(memory_format=torch.channels_last)
    return model


def build_criterion(cfg: TrainConfig, device) -> DistillationLoss:
    dc = cfg.distill
    teacher = None
    if dc.kind != "none":
        if not dc.teacher:
            raise UsageError(f"--distill {dc.kind} needs --teacher CKPT")
        teacher = conv_layout(load_model(dc.teacher).to(device))
    return DistillationLoss(dc.kind, teacher, dc.alpha, dc.tau, cfg.data.label_smoothing)


def build_datasets_for(cfg: TrainConfig, size: int) -> tuple[Data, dict | None]:
    """(datasets, shard manifest or None). For WebDataset shards only the class table and counts
    are read here (from the manifest); their samples stream during training."""
    o = cfg.data
    if not is_shard_spec(o.path):
        return build_datasets(o, size, cfg.run.seed), None
    if o.classes or o.subset is not None or o.per_class is not None:
        raise UsageError("data.classes / subset / per_class select files of a folder; with shards, "
                         "write shards of the selection instead (vitkit shards)")
    manifest = read_manifest(o.path)
    return Data(train=None, val=None, classes=list(manifest["classes"])), manifest


@dataclass
class Loaders:
    train: Any  # data.samplers.TrainLoader
    val: Any
    position: Any  # data.samplers.EpochPosition: the sampler, or the ShardLoader itself
    n_train: int
    n_val: int
    cache_skipped: int = 0  # unreadable images left out when the tensor cache was built


def build_loaders(cfg: TrainConfig, d: Dist, data: Data, manifest: dict | None, size: int) -> Loaders:
    """Shards, the in-memory tensor path when data.cache allows it, else torchvision DataLoaders."""
    o = cfg.optim
    per_proc = o.batch_size // (d.world * o.accum_steps)
    if manifest is not None:
        return _shard_loaders(cfg, d, data.classes, manifest, size, per_proc)
    if use_tensor_path(cfg.data, len(data.train) + len(data.val), size, d.is_main):
        return _tensor_loaders(cfg, d, data, size, per_proc)
    pin = d.device.type == "cuda"
    sampler = RankSampler(len(data.train), d.rank, d.world, o.batch_size, cfg.run.seed)
    train = make_loader(data.train, per_proc, sampler, cfg.data.workers, pin, cfg.run.seed)
    val = make_eval_loader(data.val, per_proc, d, cfg.data.workers, pin)
    return Loaders(train, val, sampler, len(data.train), len(data.val))


def _tensor_loaders(cfg: TrainConfig, d: Dist, data: Data, size: int, per_proc: int) -> Loaders:
    """Decode once into memory (data/cache.py), then augment whole batches as tensors."""
    o, root, t0 = cfg.data, data_root(cfg.data.path), time.time()
    train_ts = build_tensor_set(data.train, "train", o, size, root, o.workers, d.is_main)
    val_ts = build_tensor_set(data.val, "val", o, size, root, o.workers, d.is_main)
    if d.is_main:
        gib = (train_ts.images.numel() + val_ts.images.numel()) / 2**30
        print(f"vitkit train: {len(train_ts)} train / {len(val_ts)} val images decoded into memory "
              f"({gib:.2f} GiB, {time.time() - t0:.0f}s); augmenting batches on {d.device.type}", flush=True)
    # The sampler counts the decoded set: unreadable images are already left out of it.
    sampler = RankSampler(len(train_ts), d.rank, d.world, cfg.optim.batch_size, cfg.run.seed)
    pad = o.pad if o.train_crop == "pad_crop" else 0
    augment = BatchAugment(o.auto_augment, o.ra_num_ops, o.ra_magnitude, o.random_erasing, o.interpolation)
    train = TensorLoader(train_ts, per_proc, d.device, o.mean, o.std, sampler=sampler, pad=pad,
                         hflip=o.hflip, seed=cfg.run.seed, augment=augment)
    val = TensorLoader(val_ts, per_proc, d.device, o.mean, o.std, indices=list(range(d.rank, len(val_ts), d.world)))
    return Loaders(train, val, sampler, len(train_ts), len(val_ts), train_ts.skipped + val_ts.skipped)


def _shard_loaders(cfg: TrainConfig, d: Dist, classes: list[str], manifest: dict, size: int,
                   per_proc: int) -> Loaders:
    """A ShardLoader over the training shards; --val-data may be shards, a shard folder, or an ImageFolder."""
    o = cfg.data
    n_train = int(manifest["splits"]["train"]["samples"])
    batches = (n_train // cfg.optim.batch_size) * cfg.optim.accum_steps
    stream = ShardStream(expand_shards(o.path), train_transform(o, size), cfg.run.seed, o.shuffle_buffer)
    train = ShardLoader(stream, per_proc, batches, o.workers)
    val_tf = eval_transform(size, o.mean, o.std, o.crop_pct, o.interpolation)
    shards = eval_shards(o.val_path, o.path, manifest, classes)
    if shards is not None:
        spec, n_val = shards
        return Loaders(train, shard_eval_loader(spec, val_tf, per_proc, o.workers), train, n_train, n_val)
    val_ds = ImageFolderSafe(eval_folder(o.val_path), val_tf, classes=classes)
    val = make_eval_loader(val_ds, per_proc, d, o.workers, d.device.type == "cuda")
    return Loaders(train, val, train, n_train, len(val_ds))
