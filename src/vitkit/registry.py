"""Model names → configs, as data only (no model is built here: factory.py does that). Sizes are a
table; names follow timm so habits carry over.

    import vitkit
    vitkit.list_models("vit_small*")          # ['vit_small_patch14_224', ...]
    vitkit.model_config("vit_tiny_patch4_32", num_classes=10)   # ViTConfig(...)
"""
from __future__ import annotations

import fnmatch
from typing import Any

from .config import CNN_ARCHS, CNNConfig, ViTConfig
from .errors import UnknownModelError

# Sizes. B/L/H: Dosovitskiy et al. 2021 (ViT), Table 1. Ti/S: Touvron et al. 2021 (DeiT), Table 1.
# name: (width D, depth L, heads, MLP ratio)
SIZES: dict[str, tuple[int, int, int, float]] = {
    "tiny": (192, 12, 3, 4.0),
    "small": (384, 12, 6, 4.0),
    "base": (768, 12, 12, 4.0),
    "large": (1024, 24, 16, 4.0),
    "huge": (1280, 32, 16, 4.0),
}

# (patch, image sizes) pairs that are registered. Patch 14 only at 224: 384 is not a multiple of 14.
_PATCH_SIZES: dict[int, tuple[int, ...]] = {14: (224,), 16: (224, 384), 32: (224, 384)}
# Small-image variants for 32×32 data (CIFAR): patch 4 gives an 8×8 grid, as in most CIFAR ViTs.
_SMALL_IMAGE_SIZES = ("tiny", "small", "base")

# Extra config per model family. Relative-position families are added by `layers.relpos`.
_FAMILIES: dict[str, dict[str, Any]] = {
    "vit": {},
    "deit": {},  # timm's non-distilled DeiT names: the same network as ViT, another recipe
    "deit_distilled": {"distilled": True},
    "vit_relpos": {"rel_pos": "decomposed"},
    "vit_shaw": {"rel_pos": "shaw"},
    "vit_rpb": {"rel_pos": "bias"},
}


def _build_table() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}

    def add(family: str, size: str, patch: int, res: int) -> None:
        prefix, _, suffix = family.partition("_")
        name = f"{prefix}_{size}_{suffix + '_' if suffix else ''}patch{patch}_{res}"
        width, depth, heads, mlp = SIZES[size]
        table[name] = dict(embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=mlp,
                           patch_size=patch, img_size=(res, res), **_FAMILIES[family])

    for size in SIZES:
        for patch, resolutions in _PATCH_SIZES.items():
            for res in resolutions:
                add("vit", size, patch, res)
    for size in _SMALL_IMAGE_SIZES:
        add("vit", size, 4, 32)
        add("deit_distilled", size, 4, 32)
        for fam in ("vit_relpos", "vit_shaw", "vit_rpb"):
            add(fam, size, 4, 32)
    for size in ("tiny", "small", "base"):
        add("deit", size, 16, 224)
        add("deit_distilled", size, 16, 224)
        add("vit_relpos", size, 16, 224)
    return table


MODELS: dict[str, dict[str, Any]] = _build_table()


# CNN teachers for DeiT distillation (models/resnet.py): torchvision's names, plus `_cifar`
# variants whose 3×3 stride-1 stem keeps a 32-px image at full resolution into the first stage.
CNN_MODELS: dict[str, dict[str, Any]] = {
    **{a: {"arch": a} for a in CNN_ARCHS},
    **{f"{a}_cifar": {"arch": a, "cifar_stem": True, "img_size": 32} for a in CNN_ARCHS},
    # Half width (32-64-128-256 channels): a quarter of ResNet-18's multiply-adds, closer to the
    # 6-block ViT-Ti/4's cost per image, for comparisons at equal steps (studies/data_hunger.py).
    "resnet18_cifar_w32": {"arch": "resnet18", "cifar_stem": True, "img_size": 32, "width": 32}}


def list_models(pattern: str = "*") -> list[str]:
    """Registered ViT names matching a shell-style pattern, sorted (CNN teachers: `CNN_MODELS`)."""
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern))


def model_config(name: str, **overrides: Any) -> ViTConfig | CNNConfig:
    """The config a registered name (ViT or CNN teacher) stands for, with overrides applied."""
    if name in CNN_MODELS:
        return CNNConfig(**CNN_MODELS[name]).replace(**overrides)
    if name not in MODELS:
        close = [n for n in MODELS if name.split("_")[0] in n][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint}; `vitkit models` lists them")
    return ViTConfig.from_dict(dict(MODELS[name])).replace(**overrides)
