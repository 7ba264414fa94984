"""CSV / JSONL lists of images: `--data list:train.csv --val-data list:test.csv`.

    path,label                      # CSV: a header with these two columns (any order, more allowed)
    cats/001.jpg,cat                # paths relative to the list file, or absolute
    {"path": "dogs/7.png", "label": "dog"}     # JSONL: one object a line

Class names are the sorted labels of the training list; an evaluation list may only use those.
A missing file or column, or an unknown label, is a one-line error before any work.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import UsageError
from .folders import KeyedImages, safe_open

PREFIX = "list:"


def is_list_spec(spec: str | None) -> bool:
    return bool(spec) and str(spec).startswith(PREFIX)


def list_path(spec: str) -> Path:
    return Path(str(spec)[len(PREFIX):])


def _rows(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise UsageError(f"list:{path}: no such file")
    where = f"list:{path}"
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise UsageError(f"{where}:{n}: not a JSON object") from None
            if not isinstance(obj, dict) or "path" not in obj or "label" not in obj:
                raise UsageError(f"{where}:{n}: each line needs \"path\" and \"label\"")
            rows.append((str(obj["path"]), str(obj["label"])))
        return rows
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("path", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{where}: no {' or '.join(missing)} column (found: {', '.join(reader.fieldnames or [])}); "
                             f"a list has a header with path,label")
        return [(r["path"], r["label"]) for r in reader]


class ListImages(KeyedImages, Dataset):
    """The images a list names, as (image, class index); unreadable images come back as None."""

    def __init__(self, path: Path, transform=None, classes: list[str] | None = None, aug_seed: int = 0):
        rows = _rows(path)
        if not rows:
            raise UsageError(f"list:{path}: no rows")
        self.classes = list(classes) if classes is not None else sorted({label for _, label in rows})
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({label for _, label in rows if label not in index})
        if unknown:
            raise UsageError(f"list:{path}: unknown label(s) {', '.join(unknown[:5])}; the training classes are "
                             f"{', '.join(self.classes[:10])}{' ...' if len(self.classes) > 10 else ''}")
        files = [(p if Path(p).is_absolute() else str(path.parent / p)) for p, _ in rows]
        absent = [f for f in files if not Path(f).is_file()]
        if absent:
            raise UsageError(f"list:{path}: {len(absent)} listed file(s) do not exist (first: {absent[0]})")
        self.samples = [(f, index[label]) for f, (_, label) in zip(files, rows)]
        self.targets = [t for _, t in self.samples]
        self.transform, self.aug_seed, self.loader = transform, aug_seed, safe_open
