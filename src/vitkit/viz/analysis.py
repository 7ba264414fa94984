"""The numbers behind the pictures; pure tensor functions, no plotting.

All attention inputs are lists (one per block) of probabilities (B, heads, P+N, P+N) from
`model.get_attention_maps`, with P prefix tokens and N = H*W patches.
"""
from __future__ import annotations

import torch


def cls_attention(attn: torch.Tensor, num_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """[class] → patch attention of one block: (B, heads, H, W)."""
    B, heads = attn.shape[:2]
    return attn[:, :, 0, num_prefix:].reshape(B, heads, *grid)


def attention_rollout(maps: list[torch.Tensor], num_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """Abnar & Zuidema 2020: average heads, add the identity (residual), renormalise rows,
    multiply through the blocks; returns the [class] row over patches, (B, H, W).

    A model whose attention is the identity rolls out to the identity, so the [class] token gives
    every patch the same (zero) weight: a uniform map.
    """
    rollout = None
    for attn in maps:
        a = attn.mean(dim=1)  # (B, T, T)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    B = rollout.shape[0]
    return rollout[:, 0, num_prefix:].reshape(B, *grid)


def patch_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between patch centres, (N, N)."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=1).double() * patch_size  # (N, 2)
    return torch.cdist(pos, pos)


def mean_attention_distance(maps: list[torch.Tensor], num_prefix: int, grid: tuple[int, int],
                            patch_size: int) -> torch.Tensor:
    """ViT paper fig. 7 (right): per block and head, the attention-weighted pixel distance from
    each patch query to the patch keys (weights renormalised over patch keys), averaged over
    queries and images. Returns (blocks, heads)."""
    dist = patch_distances(grid, patch_size)  # (N, N)
    out = []
    for attn in maps:
        a = attn[:, :, num_prefix:, num_prefix:].double()  # (B, heads, N, N)
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        out.append((a * dist).sum(-1).mean(dim=(0, 2)))  # (heads,)
    return torch.stack(out).float()


def pos_embed_similarity(pos_embed: torch.Tensor, num_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """Cosine similarity of each patch's position embedding with every other: (H, W, H, W)."""
    p = pos_embed[0, num_prefix:].float()
    p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (p @ p.T).reshape(*grid, *grid)


def filter_components(weight: torch.Tensor, k: int = 28) -> torch.Tensor:
    """Principal components of the patch-embedding filters (ViT fig. 7 left): (k, C, P, P),
    each scaled to [0, 1] for display."""
    D = weight.shape[0]
    w = weight.detach().float().reshape(D, -1)
    w = w - w.mean(dim=0, keepdim=True)
    _, _, v = torch.linalg.svd(w, full_matrices=False)  # rows of v: directions in C·P·P space
    comps = v[: min(k, v.shape[0])].reshape(-1, *weight.shape[1:])
    lo = comps.amin(dim=(1, 2, 3), keepdim=True)
    hi = comps.amax(dim=(1, 2, 3), keepdim=True)
    return (comps - lo) / (hi - lo).clamp_min(1e-12)
