"""Where names meet weights: `create_model(name, pretrained=...)` for every registered name.

    import vitkit
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10)              # random weights
    model = vitkit.create_model("vit_base_patch16_224", pretrained=True)           # timm's default tag
    teacher = vitkit.create_model("resnet18_cifar", num_classes=10)                # a CNN teacher

It sits above `checkpoint/` (pretrained weights load through `load_model`) and `registry.py`
(names → configs), so neither of those needs the other's way up.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .checkpoint import load_model
from .checkpoint.hub import pretrained_spec
from .models import build_model
from .registry import model_config


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build a registered model, with random weights or timm's published ones.

    Args:
        name: a registered name, e.g. "vit_base_patch16_224" (see `list_models`), or a CNN
            teacher ("resnet18_cifar", ...).
        pretrained: load the weights timm publishes by default for this name from the Hugging
            Face Hub (its cache, HF_HOME, HF_HUB_OFFLINE), e.g. vit_base_patch16_224 →
            hf-hub:timm/vit_base_patch16_224.augreg2_in21k_ft_in1k.
        **overrides: any `ViTConfig` field, e.g. num_classes=10, img_size=384, pool="mean",
            pos_embed="sincos", drop_path_rate=0.1. With `pretrained`, a new num_classes gives a
            new zero-initialised head and img_size resamples the position table.
    """
    if pretrained:
        model_config(name)  # unknown names: the registry's own error
        return load_model(pretrained_spec(name), **overrides)
    return build_model(model_config(name, **overrides))
