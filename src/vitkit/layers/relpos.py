"""Relative position terms for attention logits: Shaw, MViTv2-decomposed, and Swin/BEiT bias.

    model = vitkit.create_model("vit_small_relpos_patch4_32", num_classes=10)   # decomposed
    model = vitkit.create_model("vit_tiny_patch4_32", rel_pos="shaw", rel_pos_max_dist=4)

Every form is indexed by the offset (Δrow, Δcol) between a query patch and a key patch, so the
term for two pairs with the same offset is the same wherever they sit. Tables cover offsets
-k..k per axis, k = the training grid's extent - 1 (or `rel_pos_max_dist`). At another grid,
offsets are clamped into that range (Shaw's clipping): every offset that exists in both grids
keeps its trained entry exactly, larger ones reuse the edge entry, and nothing is resampled.

Prefix tokens ([class], distillation) have no place on the grid: their rows and columns get a
zero term (timm's and MViTv2's convention), so they attend and are attended by content alone.

`forward` returns the term as an additive bias (B|1, heads, N, N): the explicit path adds it to
the logits, and the fused path hands the bias-table form to SDPA as `attn_mask`. The decomposed and
Shaw key terms have rank H + W, so the fused path folds them into q and k instead (`fold`): no
(N, N) mask is built or differentiated. Shaw's optional value term needs the probabilities, so
it forces the explicit path (`needs_probs`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ViTConfig


def _offset_index(size: int, max_dist: int, device) -> torch.Tensor:
    """(size, size) index into a (2k+1) table: clamp(i - j, -k, k) + k."""
    pos = torch.arange(size, device=device)
    return (pos[:, None] - pos[None, :]).clamp(-max_dist, max_dist) + max_dist


class RelativePosition(nn.Module):
    """Shared machinery: offset ranges, index caching and prefix padding."""

    needs_probs = False
    foldable = False  # True: `fold(q, k, v, grid, scale)` carries the term inside q·kᵀ (see Decomposed)

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        gh, gw = cfg.grid_size
        k = cfg.rel_pos_max_dist
        self.max_dist = (gh - 1 if k is None else k, gw - 1 if k is None else k)
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.num_prefix_tokens = cfg.num_prefix_tokens
        self._index_cache: dict = {}

    def index(self, grid: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column offset indices, each (H, H) and (W, W); cached per grid outside compile."""
        traced = torch.compiler.is_compiling() or torch.compiler.is_exporting()  # grid may be symbolic
        key = (grid, str(device))
        if not traced and key in self._index_cache:
            return self._index_cache[key]
        idx = (_offset_index(grid[0], self.max_dist[0], device), _offset_index(grid[1], self.max_dist[1], device))
        if not traced:
            self._index_cache[key] = idx
        return idx

    def pad_prefix(self, bias: torch.Tensor) -> torch.Tensor:
        """(..., N, N) patch-only bias → (..., P+N, P+N) with zeros for the prefix tokens."""
        p = self.num_prefix_tokens
        return F.pad(bias, (p, 0, p, 0)) if p else bias

    def init_weights(self) -> None:
        for t in self.parameters():
            nn.init.trunc_normal_(t, std=0.02, a=-2.0, b=2.0)

    def extra_repr(self) -> str:
        return f"max_dist={self.max_dist}"


class DecomposedRelPos(RelativePosition):
    """MViTv2 (Li et al. 2022): logits += q·R_h[Δrow] + q·R_w[Δcol], tables shared by heads.

    q enters unscaled, as in MViTv2 and SAM.
    """

    def __init__(self, cfg: ViTConfig, scale: float = 1.0):
        super().__init__(cfg)
        self.scale = scale
        self.rel_h = nn.Parameter(torch.zeros(2 * self.max_dist[0] + 1, self.head_dim))
        self.rel_w = nn.Parameter(torch.zeros(2 * self.max_dist[1] + 1, self.head_dim))

    # The bias is a sum of a per-(query, key row) and a per-(query, key column) term, so it has
    # rank H + W: bias = [A_h, A_w] · [onehot(row_j), onehot(col_j)]ᵀ. `fold` appends those
    # H + W columns to q and k, and SDPA then adds the bias inside its own q·kᵀ, with no
    # (B, heads, N, N) mask to build, read, or back-propagate through.
    foldable = True

    def _terms(self, q: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch queries' terms for each key row and key column: (B, h, H, W, kH), (B, h, H, W, kW)."""
        B, heads, _, d = q.shape
        gh, gw = grid
        ih, iw = self.index(grid, q.device)
        Rh, Rw = self.rel_h[ih], self.rel_w[iw]  # (H, H, d), (W, W, d)
        qp = q[:, :, self.num_prefix_tokens:].reshape(B, heads, gh, gw, d) * self.scale  # (B, h, H, W, d)
        return torch.einsum("bnhwd,hkd->bnhwk", qp, Rh), torch.einsum("bnhwd,wkd->bnhwk", qp, Rw)

    def forward(self, q: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        B, heads = q.shape[:2]
        gh, gw = grid
        rel_h, rel_w = self._terms(q, grid)
        bias = rel_h[..., :, None] + rel_w[..., None, :]  # (B, h, H, W, kH, kW)
        return self.pad_prefix(bias.reshape(B, heads, gh * gw, gh * gw))

    def fold(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int],
             attn_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, k, v) with E = head_dim → (q', k', v') with E' = head_dim + H + W (rounded up to 8)
        such that softmax(attn_scale · q'·k'ᵀ) v' = softmax(attn_scale · q·kᵀ + bias) [v, 0].

        v is zero-padded to E' because fused CPU/GPU kernels need equal q/k/v widths; take
        the first head_dim channels of the output.
        """
        B, heads, n, d = q.shape
        gh, gw = grid
        p = self.num_prefix_tokens
        rel_h, rel_w = self._terms(q, grid)
        q_extra = torch.cat([rel_h, rel_w], -1).reshape(B, heads, gh * gw, gh + gw) / attn_scale
        q_extra = F.pad(q_extra, (0, 0, p, 0))  # prefix queries: no term
        # One-hot rows and columns of each key j, built by broadcasting (not one_hot /
        # repeat_interleave, which export with the example's grid frozen in).
        ar, ac = torch.arange(gh, device=q.device), torch.arange(gw, device=q.device)
        rows = (ar[:, None, None] == ar[None, None, :]).expand(gh, gw, gh).reshape(gh * gw, gh)  # (N, H)
        cols = (ac[None, :, None] == ac[None, None, :]).expand(gh, gw, gw).reshape(gh * gw, gw)  # (N, W)
        k_extra = torch.cat([rows, cols], -1).to(k.dtype)  # (N, H + W)
        k_extra = F.pad(k_extra, (0, 0, p, 0)).expand(B, heads, n, gh + gw)  # prefix keys: no term
        zeros = q.new_zeros(B, heads, n, -(d + gh + gw) % 8)  # width to a multiple of 8
        q2 = torch.cat([q, q_extra, zeros], -1)  # one copy each: q, k, v arrive as strided views
        k2 = torch.cat([k, k_extra, zeros], -1)
        return q2, k2, F.pad(v, (0, q2.shape[-1] - d))


class ShawRelPos(DecomposedRelPos):
    """Shaw et al. 2018 in 2-D: key term a^K_ij = R_row[Δrow] + R_col[Δcol], clipped at k.

    e_ij = q_i·(k_j + a^K_ij)/√d, so the key term carries the 1/√d scale; with
    `rel_pos_values`, z_i = Σ_j p_ij (v_j + a^V_ij) adds the value term as well.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg, scale=cfg.head_dim ** -0.5)
        self.needs_probs = cfg.rel_pos_values
        if cfg.rel_pos_values:
            self.val_h = nn.Parameter(torch.zeros(2 * self.max_dist[0] + 1, self.head_dim))
            self.val_w = nn.Parameter(torch.zeros(2 * self.max_dist[1] + 1, self.head_dim))

    def value_term(self, probs: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Σ_j p_ij a^V_ij for patch queries: probs (B, h, P+N, P+N) → (B, h, P+N, d)."""
        B, heads, n, _ = probs.shape
        p, (gh, gw) = self.num_prefix_tokens, grid
        ih, iw = self.index(grid, probs.device)
        pp = probs[:, :, p:, p:].reshape(B, heads, gh, gw, gh, gw)  # (B, h, qH, qW, kH, kW)
        # Mass on each key row / column, then one table lookup per (query row, key row) pair.
        out = torch.einsum("bnhwk,hkd->bnhwd", pp.sum(-1), self.val_h[ih])
        out = out + torch.einsum("bnhwk,wkd->bnhwd", pp.sum(-2), self.val_w[iw])
        out = out.reshape(B, heads, gh * gw, self.head_dim)
        return F.pad(out, (0, 0, p, 0))  # prefix queries get no value term


class BiasRelPos(RelativePosition):
    """Swin / BEiT: a learned per-head bias B[Δrow, Δcol], independent of content."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        kh, kw = self.max_dist
        self.table = nn.Parameter(torch.zeros((2 * kh + 1) * (2 * kw + 1), cfg.num_heads))

    def forward(self, q: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        gh, gw = grid
        ih, iw = self.index(grid, q.device)
        idx = ih[:, None, :, None] * (2 * self.max_dist[1] + 1) + iw[None, :, None, :]  # (H, W, H, W)
        bias = self.table[idx.reshape(gh * gw, gh * gw)]  # (N, N, heads)
        return self.pad_prefix(bias.permute(2, 0, 1).unsqueeze(0)).to(q.dtype)  # (1, heads, P+N, P+N)


_FORMS = {"decomposed": DecomposedRelPos, "shaw": ShawRelPos, "bias": BiasRelPos}


def build_rel_pos(cfg: ViTConfig) -> RelativePosition | None:
    """One relative-position module for one block (each block learns its own tables)."""
    return None if cfg.rel_pos == "none" else _FORMS[cfg.rel_pos](cfg)
