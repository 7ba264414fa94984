"""Models that ship inside the package, usable by name wherever a checkpoint is taken.

    model = vitkit.load_model("cifar10_vit_tiny")                   # the bundled CIFAR-10 ViT
    vitkit predict --checkpoint cifar10_vit_tiny cat.jpg
    vitkit finetune --init cifar10_vit_tiny --data DIR --out runs/ft

Each is one fp16 safetensors file whose metadata holds the model config, the class names and the
eval preprocessing, so nothing is downloaded and the file alone rebuilds its model. How each was
trained and what it scores: docs/models/<name>.md. `scripts/bundle_model.py` writes one from a run.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# name → file in this folder, and its model card
BUNDLED: dict[str, dict[str, str]] = {
    "cifar10_vit_tiny": {"file": "cifar10_vit_tiny.safetensors", "card": "docs/models/cifar10_vit_tiny.md"},
}


def bundled_path(name: str) -> Path | None:
    """The file of a bundled model, or None when `name` is not one (or its file is absent)."""
    entry = BUNDLED.get(str(name))
    if entry is None:
        return None
    path = HERE / entry["file"]
    return path if path.exists() else None


def list_bundled() -> list[str]:
    return [n for n in BUNDLED if bundled_path(n) is not None]
