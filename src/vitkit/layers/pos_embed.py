"""Absolute position embeddings: resampling a learned table to a new grid, and fixed 2-D sin-cos."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int],
    num_prefix_tokens: int,
    mode: str = "bicubic",
    antialias: bool = True,
    always: bool = False,
) -> torch.Tensor:
    """Resample the patch part of a (1, prefix + H*W, D) table to another grid.

    The prefix entries ([class], distillation) are kept as they are. The interpolation runs in
    float32 whatever the table's dtype: bicubic in bf16 drifts visibly from timm's result.
    timm resamples with antialias=True; Hugging Face with antialias=False. Upsampling gives the
    same numbers either way; downsampling does not — keep both, or parity breaks at smaller sizes.

    Args:
        pos_embed: (1, prefix + old_h * old_w, D).
        new_grid / old_grid: (rows, cols) of patches.
        num_prefix_tokens: leading entries that are not patches.
        mode: any `F.interpolate` mode for 4-D input ("bicubic", "bilinear", "nearest").
        antialias: passed to `F.interpolate` (bilinear/bicubic only).
        always: resample even when the grids look equal (export: `new_grid` is symbolic, and
            comparing it would freeze the graph to the example's size).
    """
    new_grid, old_grid = tuple(new_grid), tuple(old_grid)
    if not always and new_grid == old_grid:
        return pos_embed
    expected = num_prefix_tokens + old_grid[0] * old_grid[1]
    if pos_embed.shape[1] != expected:
        raise ValueError(f"position table has {pos_embed.shape[1]} entries, expected "
                         f"{num_prefix_tokens} prefix + {old_grid[0]}x{old_grid[1]} grid = {expected}")
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim, dtype = grid.shape[-1], grid.dtype
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    kwargs = {"antialias": antialias, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
    grid = F.interpolate(grid, size=new_grid, mode=mode, **kwargs)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(dtype)
    return torch.cat([prefix, grid], dim=1)


def sincos_2d_pos_embed(
    grid: tuple[int, int], dim: int, num_prefix_tokens: int = 0, temperature: float = 10000.0,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Fixed 2-D sin-cos table, (1, prefix + H*W, D); prefix entries are zeros (as MAE).

    Layout per position: [sin(row·ω), cos(row·ω), sin(col·ω), cos(col·ω)], D/4 frequencies each.
    Computed directly for any grid, so it never needs resampling.
    """
    if dim % 4:
        raise ValueError(f"sincos position embedding needs embed_dim divisible by 4, got {dim}")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64, device=device) / (dim // 4))
    rows = torch.arange(grid[0], dtype=torch.float64, device=device)
    cols = torch.arange(grid[1], dtype=torch.float64, device=device)
    rr, cc = torch.meshgrid(rows, cols, indexing="ij")  # (H, W) each
    r = rr.reshape(-1, 1) * omega  # (H*W, D/4)
    c = cc.reshape(-1, 1) * omega
    table = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1).float()  # (H*W, D)
    table = torch.cat([table.new_zeros(num_prefix_tokens, dim), table], dim=0)
    return table.unsqueeze(0)
