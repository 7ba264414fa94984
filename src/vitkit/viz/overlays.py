"""Attention-rollout overlays as image arrays, for experiment trackers (no files, no figures).

    pics = rollout_overlays(model, x, mean, std)     # {"attention/0": (H, W, 3) uint8, ...}
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
    heat = F.interpolate(roll[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo, hi = heat.amin(dim=(1, 2), keepdim=True), heat.amax(dim=(1, 2), keepdim=True)
    heat = ((heat - lo) / (hi - lo).clamp_min(1e-12)).cpu().numpy()  # (B, H, W) in [0, 1]
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    images = (x.cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    colours = colormaps["inferno"](heat)[..., :3]
    blended = (1 - alpha) * images + alpha * colours
    return {f"attention/{i}": (b * 255 + 0.5).astype(np.uint8) for i, b in enumerate(blended)}
