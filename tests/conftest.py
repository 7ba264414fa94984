"""Shared fixtures: seeds, and a few hundred real CIFAR-10 images read from the shared archive."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CIFAR_TAR = Path(os.environ.get("VITKIT_CIFAR_TAR", ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"))
SAMPLE = ROOT / "src" / "vitkit" / "sample_data" / "cifar10_sample"


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores for torch's in-process threads:
    two workers each running two intra-op threads on two cores would fight (oversubscription is
    slower than either alone). Subprocesses the tests start set their own OMP_NUM_THREADS."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def extract_cifar(dest: Path, per_class_train: int, per_class_test: int) -> Path:
    """Copy the first N images per class of each split from the archive into dest (ImageFolder)."""
    if not CIFAR_TAR.exists():  # no shared/ beside this clone: the bundled real sample instead
        return copy_from_sample(dest, per_class_train, per_class_test)
    limits = {"train": per_class_train, "test": per_class_test}
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_TAR, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in limits:
                continue
            split, cls = parts[-3], parts[-2]
            if counts.get((split, cls), 0) >= limits[split]:
                continue
            counts[(split, cls)] = counts.get((split, cls), 0) + 1
            out = dest / split / cls / parts[-1]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
            if len(counts) == 20 and all(counts[k] >= limits[k[0]] for k in counts):
                break
    return dest


def copy_from_sample(dest: Path, per_class_train: int, per_class_test: int) -> Path:
    import shutil

    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for cls in sorted(p for p in (SAMPLE / split).iterdir() if p.is_dir()):
            for img in sorted(cls.glob("*.jpg"))[:n]:
                (dest / split / cls.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(img, dest / split / cls.name / img.name)
    return dest


@pytest.fixture(scope="session")
def cifar_small(tmp_path_factory) -> Path:
    """30 train + 10 test images per class of real CIFAR-10 (400 images)."""
    return extract_cifar(tmp_path_factory.mktemp("cifar"), 30, 10)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is a hidden failure: the run fails when any test skipped (CI and locally)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"FAILED: {skipped} test(s) skipped; vitkit's suite runs with none skipped", red=True)
        session.exitstatus = 1


@torch.no_grad()
def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its initial value, in place. Fresh weights hide mapping errors:
    zero biases, unit LayerNorms and a near-zero class token look alike, so swapping two
    same-shaped tensors (a block's two LayerNorms, the q/k/v bias order) would still compare
    equal. After this every tensor is distinct. Matrices move by 0.02, vectors by 0.2 (σ)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        scale = 0.2 if p.ndim == 1 else 0.02
        p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model
