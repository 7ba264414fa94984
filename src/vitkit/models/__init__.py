"""Model classes; `build_model` picks the class a config needs."""
from ..config import ViTConfig
from .deit import DistilledVisionTransformer
from .vit import VisionTransformer


def build_model(cfg: ViTConfig) -> VisionTransformer:
    """A randomly initialised model for a config."""
    return DistilledVisionTransformer(cfg) if cfg.distilled else VisionTransformer(cfg)


__all__ = ["VisionTransformer", "DistilledVisionTransformer", "build_model"]
