"""Classify images with any checkpoint `vitkit.load_model` reads, or an exported .onnx file.

    vitkit predict --checkpoint runs/cifar photos/ more.txt cat.jpg --output results.csv
    vitkit predict --checkpoint model.onnx photos/ --output results.jsonl --topk 3

Inputs are image files, folders (searched recursively) and list files (.txt / .lst: one path per
line). Images are decoded in DataLoader workers and classified in batches; a file that cannot be
read gets a row with its error and the others go on. Results keep the order of the inputs.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint.io import atomic_write
from ..errors import UsageError
from ..hardware import autocast
from ..data.transforms import transform_for
from ..data.images import IMAGE_SUFFIXES, UNREADABLE, images_under, open_rgb

LIST_SUFFIXES = (".txt", ".lst", ".list")


def class_label(model, index: int) -> str:
    names = getattr(model, "class_names", None)
    return names[index] if names and index < len(names) else str(index)


def expand_inputs(items: list[str]) -> list[str]:
    """Files as given, folders → their images (recursive), list files → their lines. A missing
    path stays in the list (its row will say so); an empty folder is an error."""
    paths: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = images_under(p)
            if not found:
                raise UsageError(f"{p}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
            paths += [str(f) for f in found]
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            try:
                lines = p.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"{p}: cannot read this list file ({e})") from None
            paths += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        else:
            paths.append(item)
    return paths


class _Images(Dataset):
    def __init__(self, paths: list[str], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        if not Path(path).is_file():
            return i, None, "no such file"
        try:
            img = open_rgb(path)
        except UNREADABLE as e:  # truncated, empty, not an image: reported on its row
            return i, None, f"cannot read image ({type(e).__name__}: {str(e)[:120]})"
        return i, self.transform(img), ""


def _collate(items):
    good = [(i, t) for i, t, _ in items if t is not None]
    bad = [(i, err) for i, t, err in items if t is None]
    x = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], x, bad


@torch.no_grad()
def predict_files(model, paths: list[str], topk: int = 5, batch_size: int = 32, precision: str = "fp32",
                  workers: int = 0, progress: bool = False) -> list[dict]:
    """One dict per path, in order: {"path", "topk": [{"label", "index", "prob"}], "error": ""}, or
    {"path", "topk": [], "error": "..."} for a file that could not be read.

    Args:
        model: a vitkit model (any device), or any callable classifier with `preprocess`,
            `class_names`, `cfg` and `device` (deploy.OnnxClassifier), which runs as it was exported.
        precision: "auto" (bf16 on CUDA and on CPUs with native bf16, else fp32), "fp32" or "bf16";
            an OnnxClassifier always runs as exported.
        workers: DataLoader processes decoding images (0: in this process).
        progress: a progress bar on stderr.
    """
    from tqdm import tqdm

    from ..hardware import resolve_precision

    torch_model = isinstance(model, torch.nn.Module)
    device = next(model.parameters()).device if torch_model else model.device
    precision = resolve_precision(precision, device) if torch_model else "fp32"
    model.eval()
    results: list[dict | None] = [None] * len(paths)
    loader = DataLoader(_Images(paths, transform_for(model)), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate)
    bar = tqdm(total=len(paths), unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for idx, x, bad in loader:
        for i, err in bad:
            results[i] = {"path": paths[i], "topk": [], "error": err}
        if x is not None:
            with autocast(device, precision):
                probs = model(x.to(device)).float().softmax(dim=-1)
            p, c = probs.topk(min(topk, probs.shape[1]), dim=1)
            for i, pi, ci in zip(idx, p.tolist(), c.tolist()):
                results[i] = {"path": paths[i], "error": "",
                              "topk": [{"label": class_label(model, k), "index": k, "prob": round(q, 6)}
                                       for q, k in zip(pi, ci)]}
        bar.update(len(idx) + len(bad))
    bar.close()
    return results  # type: ignore[return-value]


def output_format(path: str | Path) -> str:
    """"csv" or "jsonl" from the file name; a one-line error otherwise."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in ("csv", "jsonl"):
        raise UsageError(f"--output {path}: choose a .csv or .jsonl file")
    return fmt


def write_results(results: list[dict], path: str | Path, topk: int) -> Path:
    """`.csv` (path, label_1, prob_1, …, label_k, prob_k, error) or `.jsonl` (one object per
    image), written atomically: an interrupted run leaves no half file."""
    path = Path(path)
    if output_format(path) == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path"] + [f"{c}_{j}" for j in range(1, topk + 1) for c in ("label", "prob")] + ["error"])
        for r in results:
            cells = [v for t in r["topk"] for v in (t["label"], f"{t['prob']:.6f}")]
            w.writerow([r["path"]] + cells + [""] * (2 * topk - len(cells)) + [r["error"]])
        text = buf.getvalue()
    else:
        text = "".join(json.dumps(r) + "\n" for r in results)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path
