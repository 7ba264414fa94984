"""Multi-head self-attention with a fused (SDPA) path and an explicit path for attention maps.

The explicit path is the reference and the only one that can return probabilities; the fused
path is the default. `Attention.fused` is a plain attribute so a caller (ONNX export, a custom
kernel) can switch paths without touching weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Args:
        dim: token width D.
        num_heads: heads; head_dim = D / heads.
        qkv_bias: bias on the fused qkv projection (timm and HF both have one).
        attn_drop / proj_drop: dropout on probabilities and on the output projection.
        rel_pos: optional module giving an additive logit bias from (q, grid); see `relpos.py`.
    """

    fused: bool = True

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, rel_pos: nn.Module | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        # One (3D, D) projection, laid out [q; k; v] like timm, so its weights load unchanged.
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rel_pos = rel_pos

    def forward(self, x: torch.Tensor, grid: tuple[int, int], return_attention: bool = False,
                num_queries: int | None = None):
        """x: (B, N, D) → ((B, Q, D), probabilities (B, heads, Q, N) or None).

        `num_queries` keeps only the first Q queries (all keys and values stay): the last block
        of a [class]-pooled model needs outputs for the prefix tokens alone. Q = N by default.
        """
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, head_dim) each
        rel = self.rel_pos
        needs_probs = return_attention or (rel is not None and rel.needs_probs)
        drop = self.attn_drop.p if self.training else 0.0
        attn = None
        if self.fused and not needs_probs and rel is not None and rel.foldable:
            q, k, v = rel.fold(q, k, v, grid, self.scale)  # (B, heads, N, E'), E' > head_dim
            q = q[:, :, :num_queries] if num_queries is not None else q
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=self.scale)[..., :self.head_dim]
            N = q.shape[2]
        else:
            bias = rel(q, grid) if rel is not None else None  # (B|1, heads, N, N)
            if num_queries is not None:
                q = q[:, :, :num_queries]  # (B, heads, Q, head_dim)
                bias = bias[:, :, :num_queries] if bias is not None else None
                N = num_queries
            if self.fused and not needs_probs:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
            else:
                logits = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
                if bias is not None:
                    logits = logits + bias
                attn = logits.softmax(dim=-1)
                probs = self.attn_drop(attn)
                out = probs @ v  # (B, heads, N, head_dim)
                if rel is not None and rel.needs_probs:
                    out = out + rel.value_term(probs, grid)
        out = out.transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(out)), (attn if return_attention else None)
