"""Features from any block (timm's `forward_intermediates` contract), for probes and dense heads.

    feats = model.forward_intermediates(x, indices=[3, 7, 11], intermediates_only=True)
    # 3 × (B, D, H/P, W/P); indices=4 means the last 4 blocks; negative indices count from the end
    final, feats = model.forward_intermediates(x, indices=2, output_fmt="NLC", return_prefix_tokens=True)
    # final: (B, prefix + N, D) after the final norm; feats: 2 × ((B, N, D), (B, prefix, D))

Same arguments and outputs as timm 1.0's `VisionTransformer.forward_intermediates` (tested
against it on the same weights), so code written for timm's feature API runs unchanged.
"""
from __future__ import annotations

import torch


def take_indices(num_blocks: int, indices: int | list[int] | tuple[int, ...] | None) -> tuple[list[int], int]:
    """Absolute block indices to return and the largest: None → all, n → the last n, a list → those."""
    if indices is None:
        indices = num_blocks
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ValueError(f"last-n ({indices}) is out of range (1 to {num_blocks})")
        taken = list(range(num_blocks - indices, num_blocks))
    else:
        taken = []
        for i in indices:
            idx = num_blocks + i if i < 0 else i
            if not 0 <= idx < num_blocks:
                raise ValueError(f"block index {i} is out of range for {num_blocks} blocks")
            taken.append(idx)
    return taken, max(taken)


def forward_intermediates(model, x: torch.Tensor, indices=None, return_prefix_tokens: bool = False,
                          norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                          intermediates_only: bool = False):
    """See the module docstring; `model` is a vitkit VisionTransformer."""
    if output_fmt not in ("NCHW", "NLC"):
        raise ValueError(f"output_fmt={output_fmt!r}: choose NCHW or NLC")
    taken, last = take_indices(len(model.blocks), indices)
    B = x.shape[0]
    x, grid = model.embed(x)  # (B, prefix + N, D)
    blocks = model.blocks[:last + 1] if stop_early else model.blocks
    out = []
    for i, blk in enumerate(blocks):
        x = model._run_blocks(x, grid, [blk])
        if i in taken:
            out.append(model.norm(x) if norm else x)
    P = model.num_prefix_tokens
    prefix = [y[:, :P] for y in out] if P else None  # (B, prefix, D) each
    out = [y[:, P:] for y in out]  # (B, N, D) each
    if output_fmt == "NCHW":
        out = [y.reshape(B, grid[0], grid[1], -1).permute(0, 3, 1, 2).contiguous() for y in out]  # (B, D, H, W)
    if return_prefix_tokens and prefix is not None:
        out = list(zip(out, prefix))
    if intermediates_only:
        return out
    return model.norm(x), out
