"""Model classes; `build_model` / `build_any` pick the class a config or name needs."""
from __future__ import annotations

from ..config import ViTConfig
from .deit import DistilledVisionTransformer
from .resnet import CNN_MODELS, CNNConfig, ResNet
from .vit import VisionTransformer


def build_model(cfg):
    """A randomly initialised model for a config (ViTConfig or CNNConfig)."""
    if isinstance(cfg, CNNConfig):
        return ResNet(cfg)
    return DistilledVisionTransformer(cfg) if cfg.distilled else VisionTransformer(cfg)


def config_from_dict(d: dict):
    """The config a checkpoint header describes: a CNN when it names an `arch`, else a ViT."""
    d = dict(d)
    if "arch" in d:
        return CNNConfig(**d)
    return ViTConfig.from_dict(d)


def build_any(name_or_cfg, **overrides):
    """Build from a config, a registered ViT name, or a CNN teacher name (resnet18_cifar, ...)."""
    if not isinstance(name_or_cfg, str):
        return build_model(name_or_cfg.replace(**overrides) if overrides else name_or_cfg)
    if name_or_cfg in CNN_MODELS:
        return ResNet(CNNConfig(**CNN_MODELS[name_or_cfg]).replace(**overrides))
    from ..registry import create_model

    return create_model(name_or_cfg, **overrides)


__all__ = ["VisionTransformer", "DistilledVisionTransformer", "ResNet", "CNNConfig", "build_model",
           "build_any", "config_from_dict"]
