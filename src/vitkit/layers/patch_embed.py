"""Patch embedding: (B, C, H, W) images → (B, N, D) tokens, one token per P×P patch.

The plain form is a conv with kernel = stride = P (the ViT paper). With `stem_channels` it is
the paper's hybrid input in the form of Xiao et al. 2021: 3×3 stride-2 convs with BatchNorm and
ReLU, then a 1×1 conv to D — the same grid and token count, with a CNN's locality in the
projection, which a small-data or short run learns faster from than from the linear patch map.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_stem(in_chans: int, widths: tuple[int, ...]) -> nn.Sequential:
    """3×3 stride-2 conv → BatchNorm → ReLU per width: (B, C, H, W) → (B, widths[-1], H/2^k, W/2^k)."""
    layers: list[nn.Module] = []
    c = in_chans
    for w in widths:
        # No conv bias: BatchNorm's shift takes its place.
        layers += [nn.Conv2d(c, w, kernel_size=3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w),
                   nn.ReLU(inplace=True)]
        c = w
    return nn.Sequential(*layers)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, stem_channels: tuple[int, ...] = ()):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        if stem_channels:
            self.stem = conv_stem(in_chans, tuple(stem_channels))
            self.proj = nn.Conv2d(stem_channels[-1], embed_dim, kernel_size=1)
        else:
            self.stem = None
            # Parameter name `proj` as timm, so timm state dicts load without renaming.
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def first_conv(self) -> nn.Conv2d:
        """The conv that sees pixels (what a filter figure shows)."""
        return self.stem[0] if self.stem is not None else self.proj

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid for an image size; a one-line error when the size does not divide."""
        p = self.patch_size
        for side in (height, width):
            if side % p:
                raise ValueError(f"image size {side} is not a multiple of patch size {p}")
        return height // p, width // p

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}")
        grid = self.grid_for(x.shape[-2], x.shape[-1])
        if self.stem is not None:
            x = self.stem(x)  # (B, C_stem, H/P, W/P)
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2), grid  # (B, N, D), row-major patches
