"""The Vision Transformer (Dosovitskiy et al. 2021), numerically equal to timm's.

    import torch, vitkit
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10).eval()
    logits = model(torch.randn(2, 3, 32, 32))                  # (2, 10)
    maps = model.get_attention_maps(torch.randn(1, 3, 32, 32))  # 12 × (1, 3, 65, 65)
    feats = model.forward_intermediates(torch.randn(2, 3, 32, 32), indices=4, intermediates_only=True)  # 4 × (2, 192, 8, 8)

Order as in timm's model files: model → init → config hooks. Blocks live in `vitkit.layers`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import ViTConfig
from ..layers import Block, PatchEmbed, resample_pos_embed, sincos_2d_pos_embed
from ..layers.relpos import build_rel_pos
from .features import forward_intermediates

_POS_CACHE_SIZE = 8


class VisionTransformer(nn.Module):
    """ViT built from a `ViTConfig`; parameter names follow timm's `VisionTransformer`.

    Args:
        cfg: the model config (saved with every checkpoint).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        # What a checkpoint knows beyond the weights (checkpoint/load.py fills them): the label of
        # each output, and the eval preprocessing a run recorded (data/transforms.preprocess_of).
        self.class_names: list[str] | None = None
        self.preprocess: dict | None = None
        D = cfg.embed_dim
        self.num_prefix_tokens = cfg.num_prefix_tokens
        self.grad_checkpointing = False
        self.patch_dropout = cfg.patch_dropout  # training only; set_patch_dropout may lower it late in a run
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, D, cfg.stem_channels)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.distilled else None
        num_pos = cfg.num_prefix_tokens + cfg.grid_size[0] * cfg.grid_size[1]
        if cfg.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, num_pos, D))  # (1, prefix + N, D)
        elif cfg.pos_embed == "sincos":
            # Not persistent: it is a function of the grid, so checkpoints need not carry it.
            self.register_buffer("pos_embed", sincos_2d_pos_embed(cfg.grid_size, D, cfg.num_prefix_tokens),
                                 persistent=False)
        else:
            self.pos_embed = None
        self._pos_cache: dict = {}
        self.pos_drop = nn.Dropout(cfg.pos_drop_rate)
        # Stochastic depth grows linearly with depth (DeiT / timm rule).
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList([
            Block(D, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, cfg.act,
                  cfg.proj_drop_rate, cfg.attn_drop_rate, dpr[i], cfg.layer_scale_init,
                  build_rel_pos(cfg))
            for i in range(cfg.depth)])
        # With mean pooling timm normalises after pooling (fc_norm) and not before.
        self.norm = nn.LayerNorm(D, eps=cfg.norm_eps) if not cfg.use_fc_norm else nn.Identity()
        self.fc_norm = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(D, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        if cfg.distilled:  # DeiT's second head; its use is in DistilledVisionTransformer
            self.head_dist = nn.Linear(D, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.init_weights()

    # ---- init (timm's default 'jax'-free scheme) ----
    def init_weights(self) -> None:
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02, a=-2.0, b=2.0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for blk in self.blocks:
            if blk.attn.rel_pos is not None:
                blk.attn.rel_pos.init_weights()
        if self.cfg.head_init_zero:
            for head in self.heads():
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def heads(self) -> list[nn.Linear]:
        heads = [self.head, getattr(self, "head_dist", None)]
        return [h for h in heads if isinstance(h, nn.Linear)]

    def no_weight_decay(self) -> set[str]:
        """Parameter names (beyond norms and biases) that AdamW must not decay."""
        names = {"pos_embed", "cls_token", "dist_token"}
        names |= {n for n, _ in self.named_parameters() if ".rel_pos." in n}
        return names

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def set_patch_dropout(self, rate: float) -> None:
        """The PatchDropout rate of the next training steps (the trainer lowers it late in a run);
        `cfg.patch_dropout`, the rate saved with the model, is left as it is."""
        self.patch_dropout = rate

    def set_attention_impl(self, fused: bool) -> None:
        """Choose SDPA (fused=True) or the explicit softmax(QKᵀ/√d)V path for every block."""
        for blk in self.blocks:
            blk.attn.fused = fused

    # ---- embedding ----
    @property
    def grid_size(self) -> tuple[int, int]:
        return self.cfg.grid_size

    def pos_table(self, grid: tuple[int, int]) -> torch.Tensor | None:
        """The (1, prefix + H*W, D) position table for a grid; resampled and cached when it differs.

        The cache is used only where it cannot go stale or cut the graph: outside autograd and
        outside torch.compile tracing, keyed by the parameter's version counter (which every
        optimizer step and `load_state_dict` bumps).
        """
        exporting = torch.compiler.is_exporting()
        # Exported graphs (ONNX, torch.export) always resample: the grid is symbolic there, and
        # a Python `grid == native` test would freeze the graph to one size. Resampling to the
        # native grid is the identity (bicubic/bilinear at scale 1 hit the table's own points).
        if self.pos_embed is None or (not exporting and grid == self.grid_size):
            return self.pos_embed
        cfg = self.cfg
        if cfg.pos_embed == "sincos":
            make = lambda: sincos_2d_pos_embed(grid, cfg.embed_dim, cfg.num_prefix_tokens,
                                               device=self.pos_embed.device).to(self.pos_embed.dtype)
        else:
            make = lambda: resample_pos_embed(self.pos_embed, grid, self.grid_size, cfg.num_prefix_tokens,
                                              cfg.pos_embed_interp, cfg.pos_embed_antialias, always=exporting)
        cacheable = not (torch.compiler.is_compiling() or exporting) and not (
            torch.is_grad_enabled() and self.pos_embed.requires_grad)
        if not cacheable:
            return make()
        key = (grid, self.pos_embed._version, self.pos_embed.data_ptr(), self.pos_embed.dtype)
        table = self._pos_cache.get(key)
        if table is None:
            if len(self._pos_cache) >= _POS_CACHE_SIZE:
                self._pos_cache.clear()
            table = self._pos_cache[key] = make().detach()
        return table

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) → tokens (B, prefix + N, D) with positions added, and the patch grid."""
        x, grid = self.patch_embed(x)  # (B, N, D)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.dist_token) if t is not None]
        if prefix:
            x = torch.cat(prefix + [x], dim=1)  # (B, prefix + N, D): [class], [dist], patches
        pos = self.pos_table(grid)
        if pos is not None:
            x = x + pos
        x = self.pos_drop(x)
        if self.training and self.patch_dropout > 0:
            x = self.drop_patches(x)
        return x, grid

    def drop_patches(self, x: torch.Tensor) -> torch.Tensor:
        """PatchDropout (Liu et al. 2022): keep a random subset of patch tokens per image.

        (B, prefix + N, D) → (B, prefix + K, D), K = round(N × (1 − p)). Positions were added
        before, so each kept token still knows where it came from; the prefix tokens are always
        kept. The step costs ~(1 − p) of the full one, and the test-time model sees all tokens.
        """
        P = self.num_prefix_tokens
        B, n = x.shape[0], x.shape[1] - P
        keep = max(1, int(round(n * (1.0 - self.patch_dropout))))
        idx = torch.rand(B, n, device=x.device).argsort(dim=1)[:, :keep] + P  # (B, K)
        patches = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, K, D)
        return torch.cat([x[:, :P], patches], dim=1)

    # ---- forward ----
    def _run_blocks(self, x: torch.Tensor, grid: tuple[int, int], blocks) -> torch.Tensor:
        for blk in blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, grid, use_reentrant=False)[0]
            else:
                x = blk(x, grid)[0]
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → all output tokens after the final norm, (B, prefix + N, D)."""
        x, grid = self.embed(x)
        return self.norm(self._run_blocks(x, grid, self.blocks))

    def _prefix_only_ok(self) -> bool:
        """Whether logits depend on the prefix tokens' last-block outputs alone."""
        last = self.blocks[-1].attn.rel_pos if len(self.blocks) else None
        return (self.cfg.pool == "cls" and self.num_prefix_tokens > 0 and len(self.blocks) > 0
                and not (last is not None and last.needs_probs))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, prefix + N, D) → (B, D)."""
        if self.cfg.pool == "mean":
            return x[:, self.num_prefix_tokens:].mean(dim=1)
        return x[:, 0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.fc_norm(self.pool(x)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._prefix_only_ok():
            return self.forward_head(self.forward_features(x))
        # [class] pooling: the head reads only the prefix tokens, so the last block computes
        # queries, MLP and projection for them alone (exact; ~7% less work for 12 blocks).
        x, grid = self.embed(x)
        x = self._run_blocks(x, grid, self.blocks[:-1])
        x = self.blocks[-1](x, grid, num_queries=self.num_prefix_tokens)[0]  # (B, prefix, D)
        return self.forward_head(self.norm(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, return_prefix_tokens: bool = False,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """Outputs of chosen blocks, timm's contract (models/features.py): `indices` None = all,
        n = the last n, or a list; NCHW (B, D, H, W) or NLC (B, N, D); prefix tokens apart."""
        return forward_intermediates(self, x, indices, return_prefix_tokens, norm, stop_early, output_fmt,
                                     intermediates_only)

    @torch.no_grad()
    def get_attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities of every block, each (B, heads, prefix + N, prefix + N).

        Uses the explicit path (SDPA cannot return probabilities); rows sum to 1.
        """
        x, grid = self.embed(x)
        maps = []
        for blk in self.blocks:
            x, attn = blk(x, grid, return_attention=True)
            maps.append(attn)
        return maps

    def get_last_selfattention(self, x: torch.Tensor) -> torch.Tensor:
        """DINO's name: the last block's attention, (B, heads, prefix + N, prefix + N)."""
        return self.get_attention_maps(x)[-1]
