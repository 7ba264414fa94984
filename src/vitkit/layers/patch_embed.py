"""Patch embedding: a conv with kernel = stride = P turns (B, C, H, W) into (B, N, D) tokens."""
from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        # Parameter name `proj` as timm, so timm state dicts load without renaming.
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid for an image size; a one-line error when the size does not divide."""
        p = self.patch_size
        for side in (height, width):
            if side % p:
                raise ValueError(f"image size {side} is not a multiple of patch size {p}")
        return height // p, width // p

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4 or x.shape[1] != self.proj.in_channels:
            raise ValueError(f"expected images (B, {self.proj.in_channels}, H, W), got shape {tuple(x.shape)}")
        grid = self.grid_for(x.shape[-2], x.shape[-1])
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2), grid  # (B, N, D), row-major patches
