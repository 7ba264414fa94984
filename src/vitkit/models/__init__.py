"""Model classes; `build_model` picks the class a config needs (names → configs: registry.py;
names → models with or without weights: factory.py)."""
from __future__ import annotations

from ..config import CNNConfig, ViTConfig
from .deit import DistilledVisionTransformer
from .resnet import ResNet
from .vit import VisionTransformer


def build_model(cfg: ViTConfig | CNNConfig):
    """A randomly initialised model for a config (ViTConfig or CNNConfig)."""
    if isinstance(cfg, CNNConfig):
        return ResNet(cfg)
    return DistilledVisionTransformer(cfg) if cfg.distilled else VisionTransformer(cfg)


__all__ = ["VisionTransformer", "DistilledVisionTransformer", "ResNet", "build_model"]
