"""Hugging Face datasets: `--data hfds:PATH` (a DatasetDict saved with `save_to_disk`, or a folder
of Parquet files) or `--data hfds:ORG/NAME` (the Hub, through its cache; HF_DATASETS_OFFLINE).

The image column and the `ClassLabel` column are found by their feature types (or named with
`data.image_column` / `data.label_column`); class names come from the ClassLabel. Splits: train,
and validation / val / test for evaluation. Needs the `datasets` package (vitkit[hf]).
"""
from __future__ import annotations

import io
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import UsageError
from .folders import KeyedImages
from .images import UNREADABLE, to_rgb

PREFIX = "hfds:"
EVAL_SPLITS = ("validation", "val", "test")


def is_hf_spec(spec: str | None) -> bool:
    return bool(spec) and str(spec).startswith(PREFIX)


def load_splits(spec: str):
    """The DatasetDict a spec names."""
    try:
        import datasets
    except ImportError:
        raise UsageError(f"--data {spec}: the datasets package is not installed; pip install 'vitkit[hf]'") from None
    target = str(spec)[len(PREFIX):]
    path = Path(target)
    try:
        if path.is_dir() and (path / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(path))
        if path.is_dir():
            files = sorted(path.rglob("*.parquet"))
            if not files:
                raise UsageError(f"--data {spec}: neither a save_to_disk DatasetDict nor a folder of Parquet files")
            by_split: dict[str, list[str]] = {}
            for f in files:  # train-00000-of-00001.parquet, test.parquet, data/validation-*.parquet
                split = f.stem.split("-")[0]
                by_split.setdefault(split, []).append(str(f))
            return datasets.load_dataset("parquet", data_files=by_split)
        return datasets.load_dataset(target)  # the Hub, through HF_DATASETS_CACHE
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as e:
        raise UsageError(f"--data {spec}: cannot load ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
                         f"; offline, a Hub dataset must be in the cache") from None


def _columns(ds, spec: str, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    import datasets

    feats = ds.features
    image = image_column or next((k for k, v in feats.items() if isinstance(v, datasets.Image)), None)
    label = label_column or next((k for k, v in feats.items() if isinstance(v, datasets.ClassLabel)), None)
    for role, col in (("image", image), ("label", label)):
        if col is None:
            raise UsageError(f"--data {spec}: no {role} column found by type ({', '.join(feats)}); "
                             f"name it with --set data.{role}_column=NAME")
        if col not in feats:
            raise UsageError(f"--data {spec}: no column {col!r} (columns: {', '.join(feats)})")
    if not isinstance(feats[label], datasets.ClassLabel):
        raise UsageError(f"--data {spec}: column {label!r} is not a ClassLabel; class names come from one")
    return image, label


def _decode(value):
    """A datasets Image value (PIL image, or {"bytes", "path"}) → RGB PIL image, or None."""
    from PIL import Image

    try:
        if isinstance(value, Image.Image):
            value.load()
            return to_rgb(value)
        if isinstance(value, dict) and value.get("bytes") is not None:
            with Image.open(io.BytesIO(value["bytes"])) as img:
                img.load()
                return to_rgb(img)
        if isinstance(value, dict) and value.get("path"):
            with Image.open(value["path"]) as img:
                img.load()
                return to_rgb(img)
    except UNREADABLE:
        return None
    return None


class HFImages(KeyedImages, Dataset):
    """One split of a Hugging Face dataset as (image, class index); unreadable images → None."""

    def __init__(self, spec: str, split: str, transform=None, classes: list[str] | None = None, aug_seed: int = 0,
                 image_column: str | None = None, label_column: str | None = None, splits=None):
        splits = splits if splits is not None else load_splits(spec)
        if split not in splits:
            raise UsageError(f"--data {spec}: no {split!r} split (splits: {', '.join(splits)})")
        import datasets

        ds = splits[split]
        self.image_column, label = _columns(ds, spec, image_column, label_column)
        names = list(ds.features[label].names)
        self.classes = names if classes is None else list(classes)
        if self.classes != names:
            raise UsageError(f"--data {spec}: split {split!r} has classes {names[:5]}..., the training split "
                             f"{self.classes[:5]}...; both must share one ClassLabel")
        self.hf = ds.cast_column(self.image_column, datasets.Image(decode=False))  # decode in our loader
        self.samples = [(i, int(t)) for i, t in enumerate(ds[label])]
        self.targets = [t for _, t in self.samples]
        self.transform, self.aug_seed = transform, aug_seed
        self.fingerprint = f"{getattr(ds, '_fingerprint', '')}-{split}"  # the decoded cache's key

    def loader(self, index: int):
        return _decode(self.hf[index][self.image_column])


def eval_split(splits, spec: str) -> str:
    name = next((s for s in EVAL_SPLITS if s in splits), None)
    if name is None:
        raise UsageError(f"--data {spec}: no validation, val or test split for evaluation (splits: {', '.join(splits)})")
    return name
