"""Attention-rollout overlays as image arrays, for experiment trackers (no files, no figures).

    pics = rollout_overlays(model, x, mean, std)     # {"attention/0": (H, W, 3) uint8, ...}
    pic = blend(image, heat)                         # one (H, W, 3) uint8 from image + (h, w) map
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

from .analysis import attention_rollout


@torch.no_grad()
def rollout_overlays(model, x: torch.Tensor, mean, std, alpha: float = 0.5) -> dict[str, np.ndarray]:
    """Each image of `x` (B, C, H, W, normalised) with its attention rollout blended on top, as
    (H, W, 3) uint8 arrays keyed "attention/<i>". Models without attention maps give {}."""
    if not hasattr(model, "get_attention_maps"):
        return {}
    was_training = model.training
    model.eval()
    x = x.float()
    p = model.cfg.patch_size
    grid = (x.shape[-2] // p, x.shape[-1] // p)
    roll = attention_rollout(model.get_attention_maps(x), model.num_prefix_tokens, grid)  # (B, H/p, W/p)
    model.train(was_training)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    images = (x.cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    return {f"attention/{i}": blend(img, r, alpha) for i, (img, r) in enumerate(zip(images, roll))}


def blend(image: np.ndarray, heat: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """`image` (H, W, 3) in [0, 1] with the map `heat` (h, w) upsampled bilinearly, scaled to
    [0, 1] (a constant map shows as black) and coloured with inferno on top: (H, W, 3) uint8."""
    h = F.interpolate(heat[None, None].float().cpu(), size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    h = ((h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)).numpy()  # (H, W) in [0, 1]
    colours = colormaps["inferno"](h)[..., :3]
    return (((1 - alpha) * image + alpha * colours) * 255 + 0.5).astype(np.uint8)


def as_display(x: torch.Tensor, mean, std, enlarge_below: int) -> np.ndarray:
    """One normalised image (C, H, W) as (H', W', 3) floats in [0, 1]; an image narrower than
    `enlarge_below` px is enlarged nearest-neighbour by 224 // width, so a 32-px map stays visible."""
    img = (x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)).clamp(0, 1)
    if img.shape[-1] < enlarge_below:
        img = F.interpolate(img[None], scale_factor=224 // img.shape[-1], mode="nearest")[0]
    return img.permute(1, 2, 0).numpy()
