"""Other sources of images than a folder: CSV / JSONL lists and Hugging Face datasets (saved with
save_to_disk, or Parquet files) train like the same images as a folder — same class table, same
counts — and bad inputs are one line, exit 2."""
import csv
import json
import os
from pathlib import Path

import pytest

from vitkit.data.options import DataOptions
from vitkit.data.sources import build_datasets
from vitkit.errors import UsageError

from test_train import cli, read_metrics

ARGS = ["--model", "vit_tiny_patch4_32", "--set", "model.overrides={depth: 2}", "--set", "data.train_crop=pad_crop",
        "--workers", "0", "--batch-size", "100", "--no-progress", "--epochs", "1", "--lr", "2e-3"]


def _write_list(folder: Path, split: str, out: Path) -> Path:
    files = sorted((folder / split).glob("*/*.jpg"))
    if out.suffix == ".csv":
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "path", "note"])  # any column order, extra columns allowed
            for p in files:
                w.writerow([p.parent.name, os.path.relpath(p, out.parent), ""])  # relative to the list file
    else:
        out.write_text("".join(json.dumps({"path": str(p), "label": p.parent.name}) + "\n" for p in files))
    return out


def _hf_dict(folder: Path):
    import datasets

    classes = sorted(p.name for p in (folder / "train").iterdir())
    feats = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=classes)})
    parts = {}
    for split in ("train", "test"):
        files = sorted((folder / split).glob("*/*.jpg"))
        parts[split] = datasets.Dataset.from_dict(
            {"img": [str(p) for p in files], "fine_label": [classes.index(p.parent.name) for p in files]}, features=feats)
    return datasets.DatasetDict(parts)


@pytest.fixture(scope="module")
def sources(cifar_small, tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    (d / "lists").mkdir()
    lists = {"train_csv": _write_list(cifar_small, "train", d / "lists" / "train.csv"),
             "test_jsonl": _write_list(cifar_small, "test", d / "test.jsonl")}
    hf = _hf_dict(cifar_small)
    hf.save_to_disk(str(d / "saved"))
    (d / "parquet").mkdir()
    for split, ds in hf.items():
        ds.to_parquet(str(d / "parquet" / f"{split}-00000-of-00001.parquet"))
    return {**lists, "saved": d / "saved", "parquet": d / "parquet"}


@pytest.mark.parametrize("kind", ["list", "saved", "parquet"])
def test_sources_give_the_folder_class_table_and_counts(cifar_small, sources, kind):
    ref = build_datasets(DataOptions(path=str(cifar_small)), 32)
    spec = {"list": (f"list:{sources['train_csv']}", f"list:{sources['test_jsonl']}"),
            "saved": (f"hfds:{sources['saved']}", None), "parquet": (f"hfds:{sources['parquet']}", None)}[kind]
    got = build_datasets(DataOptions(path=spec[0], val_path=spec[1]), 32)
    assert got.classes == ref.classes
    assert (len(got.train), len(got.val)) == (len(ref.train), len(ref.val)) == (300, 100)
    assert sorted(got.train.targets) == sorted(ref.train.targets) and sorted(got.val.targets) == sorted(ref.val.targets)
    x, y = got.train[(3, 0)]  # keyed like a folder: (index, epoch) → augmented tensor
    assert x.shape == (3, 32, 32) and 0 <= y < 10


@pytest.mark.parametrize("kind", ["list", "parquet"])
def test_sources_train_through_the_cli(cifar_small, sources, tmp_path, kind):
    data = {"list": ["--data", f"list:{sources['train_csv']}", "--val-data", f"list:{sources['test_jsonl']}"],
            "parquet": ["--data", f"hfds:{sources['parquet']}"]}[kind]
    r = cli("train", *data, "--out", tmp_path / "r", *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "300 train / 100 val images, 10 classes" in r.stdout
    (epoch,) = [m for m in read_metrics(tmp_path / "r") if m["kind"] == "epoch"]
    assert epoch["top1"] > 10.0 or epoch["train_loss"] < 2.3  # it trained on those images


def test_bad_sources_are_one_line_errors(cifar_small, sources, tmp_path):
    bad_col = tmp_path / "bad.csv"
    bad_col.write_text("file,label\na.jpg,cat\n")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,label\n" + str(next((cifar_small / "test" / "cat").glob("*.jpg"))) + ",tiger\n")
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nnot_there.jpg,cat\n")
    cases = [
        (["--data", f"list:{bad_col}", "--val-data", f"list:{sources['test_jsonl']}"], "no path column"),
        (["--data", f"list:{sources['train_csv']}", "--val-data", f"list:{unknown}"], "unknown label(s) tiger"),
        (["--data", f"list:{missing}", "--val-data", f"list:{sources['test_jsonl']}"], "1 listed file(s) do not exist"),
        (["--data", f"list:{sources['train_csv']}"], "give --val-data"),
        (["--data", f"hfds:{sources['saved']}", "--set", "data.label_column=nope"], "no column 'nope'"),
        (["--data", f"hfds:{tmp_path}"], "neither a save_to_disk DatasetDict nor a folder of Parquet files"),
    ]
    for data, message in cases:
        r = cli("train", *data, "--out", tmp_path / "r", *ARGS)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, (data, r.stderr)
        assert not (tmp_path / "r").exists()


def test_missing_datasets_package_names_the_extra(monkeypatch):
    import builtins

    from vitkit.data.hfds import load_splits

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "datasets" else real(name, *a, **k))
    with pytest.raises(UsageError, match=r"the datasets package is not installed; pip install 'vitkit\[hf\]'"):
        load_splits("hfds:/nowhere")


def test_hub_dataset_offline_and_not_cached_is_one_line(tmp_path):
    import subprocess
    import sys

    from test_train import ENV

    env = {**ENV, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-m", "vitkit", "train", "--data", "hfds:someorg/not-cached", "--out",
                        str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "hfds:someorg/not-cached: cannot load" in r.stderr and "must be in the cache" in r.stderr
    assert not (tmp_path / "r").exists()
