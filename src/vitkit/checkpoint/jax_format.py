"""Original JAX ViT checkpoints (google-research/vision_transformer `.npz`).

Layout read (optionally under an "opt/target/" prefix, as in the training-state files):
    embedding/kernel (P, P, C, D)            cls (1, 1, D)
    Transformer/posembed_input/pos_embedding (1, 1 + N, D)
    Transformer/encoderblock_i/LayerNorm_0, MultiHeadDotProductAttention_1/{query,key,value,out},
        LayerNorm_2, MlpBlock_3/Dense_{0,1}
    Transformer/encoder_norm, head (D, K); pre_logits is ignored, as timm's loader does.

Two choices follow timm's `_load_weights`, so vitkit and timm give the same logits from one file:
- GELU: the JAX models use the tanh approximation, timm's loader keeps the exact (erf) GELU, and
  so does vitkit by default. Pass `act="gelu_tanh"` to `load_model` to match JAX itself.
- a position table resized at load time is resampled bilinearly without antialias.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..config import ViTConfig
from ..errors import CheckpointError

RESAMPLE = ("bilinear", False)
_BLOCK = "Transformer/encoderblock_{i}/"
_ATTN = "MultiHeadDotProductAttention_1/"


def looks_like_jax(raw: dict) -> bool:
    return any(k.endswith("embedding/kernel") for k in raw)


def _prefix(raw: dict) -> str:
    return "opt/target/" if "opt/target/embedding/kernel" in raw else ""


def jax_to_vitkit(raw: dict[str, np.ndarray], where: str, **known) -> tuple[ViTConfig, dict[str, torch.Tensor]]:
    p = _prefix(raw)
    w = {k[len(p):]: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in raw.items() if k.startswith(p)}
    try:
        sd = {"patch_embed.proj.weight": w["embedding/kernel"].permute(3, 2, 0, 1),  # HWIO → OIHW
              "patch_embed.proj.bias": w["embedding/bias"],
              "norm.weight": w["Transformer/encoder_norm/scale"], "norm.bias": w["Transformer/encoder_norm/bias"]}
        if "cls" in w:
            sd["cls_token"] = w["cls"]
        if "Transformer/posembed_input/pos_embedding" in w:
            sd["pos_embed"] = w["Transformer/posembed_input/pos_embedding"]
        if "head/kernel" in w:
            sd["head.weight"], sd["head.bias"] = w["head/kernel"].T, w["head/bias"]
        depth = 1 + max(int(m.group(1)) for k in w if (m := re.match(r"Transformer/encoderblock_(\d+)/", k)))
        heads = w[_BLOCK.format(i=0) + _ATTN + "query/kernel"].shape[1]
        for i in range(depth):
            b, a, t = _BLOCK.format(i=i), _BLOCK.format(i=i) + _ATTN, f"blocks.{i}."
            sd[t + "norm1.weight"], sd[t + "norm1.bias"] = w[b + "LayerNorm_0/scale"], w[b + "LayerNorm_0/bias"]
            sd[t + "norm2.weight"], sd[t + "norm2.bias"] = w[b + "LayerNorm_2/scale"], w[b + "LayerNorm_2/bias"]
            # (D, heads, head_dim) kernels → (D_out, D_in) rows, stacked [q; k; v] as timm fuses them.
            sd[t + "attn.qkv.weight"] = torch.cat([w[a + n + "/kernel"].flatten(1).T for n in ("query", "key", "value")])
            sd[t + "attn.qkv.bias"] = torch.cat([w[a + n + "/bias"].reshape(-1) for n in ("query", "key", "value")])
            sd[t + "attn.proj.weight"] = w[a + "out/kernel"].flatten(0, 1).T  # (heads, hd, D) → (D, D)
            sd[t + "attn.proj.bias"] = w[a + "out/bias"]
            for j, name in ((0, "fc1"), (1, "fc2")):
                sd[t + f"mlp.{name}.weight"] = w[b + f"MlpBlock_3/Dense_{j}/kernel"].T
                sd[t + f"mlp.{name}.bias"] = w[b + f"MlpBlock_3/Dense_{j}/bias"]
    except KeyError as e:
        raise CheckpointError(f"{where}: JAX ViT archive lacks {e.args[0]!r}") from None
    from .timm_format import infer_config

    cfg = infer_config(sd, where, num_heads=heads, **known)
    return cfg, sd


def vitkit_to_jax(sd: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, np.ndarray]:
    """The inverse mapping: a vitkit state dict written in the original JAX layout."""
    if (cfg.distilled or cfg.rel_pos != "none" or cfg.layer_scale_init is not None or cfg.use_fc_norm
            or cfg.stem_channels):
        raise CheckpointError("the original JAX ViT layout has no distillation token, relative "
                              "positions, LayerScale, fc_norm or conv stem; keep this model in vitkit format")
    n = lambda t: t.detach().cpu().float().numpy()
    h, hd, D = cfg.num_heads, cfg.head_dim, cfg.embed_dim
    out = {"embedding/kernel": n(sd["patch_embed.proj.weight"].permute(2, 3, 1, 0)),
           "embedding/bias": n(sd["patch_embed.proj.bias"]),
           "Transformer/encoder_norm/scale": n(sd["norm.weight"]), "Transformer/encoder_norm/bias": n(sd["norm.bias"])}
    if "cls_token" in sd:
        out["cls"] = n(sd["cls_token"])
    if "pos_embed" in sd:
        out["Transformer/posembed_input/pos_embedding"] = n(sd["pos_embed"])
    if "head.weight" in sd:
        out["head/kernel"], out["head/bias"] = n(sd["head.weight"].T), n(sd["head.bias"])
    for i in range(cfg.depth):
        b, a, t = _BLOCK.format(i=i), _BLOCK.format(i=i) + _ATTN, f"blocks.{i}."
        out[b + "LayerNorm_0/scale"], out[b + "LayerNorm_0/bias"] = n(sd[t + "norm1.weight"]), n(sd[t + "norm1.bias"])
        out[b + "LayerNorm_2/scale"], out[b + "LayerNorm_2/bias"] = n(sd[t + "norm2.weight"]), n(sd[t + "norm2.bias"])
        for name, wq, bq in zip(("query", "key", "value"), sd[t + "attn.qkv.weight"].chunk(3),
                                sd[t + "attn.qkv.bias"].chunk(3)):
            out[a + name + "/kernel"] = n(wq.T.reshape(D, h, hd))
            out[a + name + "/bias"] = n(bq.reshape(h, hd))
        out[a + "out/kernel"] = n(sd[t + "attn.proj.weight"].T.reshape(h, hd, D))
        out[a + "out/bias"] = n(sd[t + "attn.proj.bias"])
        for j, name in ((0, "fc1"), (1, "fc2")):
            out[b + f"MlpBlock_3/Dense_{j}/kernel"] = n(sd[t + f"mlp.{name}.weight"].T)
            out[b + f"MlpBlock_3/Dense_{j}/bias"] = n(sd[t + f"mlp.{name}.bias"])
    return out
