"""Where training and evaluation images come from: one function for every kind of --data.

    DIR                      ImageFolder: DIR/train/<class>/..., DIR/val or DIR/test  (folders.py)
    sample                   the CIFAR-10 sample bundled in the package
    list:train.csv           a CSV / JSONL of path,label; --val-data list:test.csv   (lists.py)
    hfds:PATH | hfds:ORG/NAME  a Hugging Face dataset (save_to_disk, Parquet, Hub)   (hfds.py)

(WebDataset shards stream instead; training/builders.py reads their manifest.)
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .folders import Data, ImageFolderSafe, eval_folder, subset_samples, resolve_data_root, split_dir
from .hfds import HFImages, eval_split, is_hf_spec, load_splits
from .lists import ListImages, is_list_spec, list_path
from .options import DataOptions
from .transforms import eval_transform, train_transform


def data_root(spec: str) -> Path:
    """The folder a source lives in (where `data.cache_dir: auto` keeps its decoded cache)."""
    if is_list_spec(spec):
        return list_path(spec).resolve().parent
    if is_hf_spec(spec):
        p = Path(str(spec)[len("hfds:"):])
        return p if p.is_dir() else Path.cwd()
    return resolve_data_root(spec)


def build_datasets(o: DataOptions, size: int, seed: int = 0) -> Data:
    """Training and evaluation datasets for any source; the evaluation set uses the training classes."""
    train_tf = train_transform(o, size)
    eval_tf = eval_transform(size, o.mean, o.std, o.crop_pct, o.interpolation)
    cols = dict(image_column=o.image_column, label_column=o.label_column)
    splits = load_splits(o.path) if is_hf_spec(o.path) else None
    if is_list_spec(o.path):
        train = ListImages(list_path(o.path), train_tf, o.classes, seed)
    elif splits is not None:
        train = HFImages(o.path, o.train_split, train_tf, None, seed, splits=splits, **cols)
        if o.classes:
            raise UsageError("data.classes selects class folders; for a Hugging Face dataset, filter it first")
    else:
        root = resolve_data_root(o.path)
        train = ImageFolderSafe(split_dir(root, o.train_split, "train"), train_tf, o.classes, seed)
    if not train.classes or len(train) == 0:
        where = o.path if is_list_spec(o.path) or splits is not None else resolve_data_root(o.path) / o.train_split
        raise UsageError(f"--data {o.path}: no images found in {where}")
    val_spec = o.val_path or o.path
    if is_list_spec(o.path) and not o.val_path:
        raise UsageError(f"--data {o.path}: a list names training images only; give --val-data list:test.csv (or a folder)")
    if is_list_spec(val_spec):
        val = ListImages(list_path(val_spec), eval_tf, train.classes)
    elif is_hf_spec(val_spec):
        vsplits = splits if val_spec == o.path and splits is not None else load_splits(val_spec)
        val = HFImages(val_spec, o.val_split or eval_split(vsplits, val_spec), eval_tf, train.classes,
                       splits=vsplits, **cols)
    elif o.val_path:
        val = ImageFolderSafe(eval_folder(o.val_path), eval_tf, train.classes)
    else:
        val = ImageFolderSafe(split_dir(resolve_data_root(o.path), o.val_split, "val"), eval_tf, train.classes)
    subset_samples(train, o)
    return Data(train, val, train.classes)
