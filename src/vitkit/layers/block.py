"""The pre-norm transformer block: x + attn(norm(x)); x + mlp(norm(x))."""
from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .mlp import Mlp
from .regularization import DropPath, LayerScale


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6, act: str = "gelu", proj_drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale_init: float | None = None, rel_pos: nn.Module | None = None):
        super().__init__()
        # Names (norm1, attn, ls1, drop_path1, norm2, mlp, ...) match timm's Block.
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop, rel_pos)
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, proj_drop)
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], return_attention: bool = False,
                num_queries: int | None = None):
        """x: (B, N, D) → ((B, N, D), attention probabilities or None).

        `num_queries=P`: outputs of the first P tokens only, (B, P, D), attending to all tokens;
        equal to `forward(x)[0][:, :P]` at a fraction of the cost (the MLP and the output
        projection run on P tokens). Reached through `block(...)`, never a side method, so
        module hooks (FSDP2's unshard, forward hooks) run for it too.
        """
        a, attn = self.attn(self.norm1(x), grid, return_attention, num_queries=num_queries)
        if num_queries is not None:
            x = x[:, :num_queries]
        x = x + self.drop_path1(self.ls1(a))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, attn

    def forward_prefix(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        """(B, P, D) outputs of the first `num_prefix` tokens (see `forward`'s num_queries)."""
        return self(x, grid, num_queries=num_prefix)[0]
