"""DeiT's distilled ViT (Touvron et al. 2021): a distillation token with its own head.

    model = vitkit.create_model("deit_tiny_distilled_patch4_32", num_classes=10)
    model.train(); cls_logits, dist_logits = model(x)   # two heads while training
    model.eval();  logits = model(x)                    # their mean at inference

The token, its position entry, the second head and their init live in `VisionTransformer` (driven by
`cfg.distilled`), so embedding, resampling and attention code is shared; this file adds what the heads return.
"""
from __future__ import annotations

import torch

from ..config import ViTConfig
from .vit import VisionTransformer


class DistilledVisionTransformer(VisionTransformer):
    def __init__(self, cfg: ViTConfig):
        if not cfg.distilled:
            raise ValueError("DistilledVisionTransformer needs cfg.distilled=True")
        super().__init__(cfg)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        """(B, 2 + N, D) → training: (cls_logits, dist_logits); eval: their mean (B, classes)."""
        x_cls, x_dist = self.head_drop(x[:, 0]), self.head_drop(x[:, 1])
        if pre_logits:
            return (x_cls + x_dist) / 2
        x_cls, x_dist = self.head(x_cls), self.head_dist(x_dist)
        if self.training:
            return x_cls, x_dist
        return (x_cls + x_dist) / 2
