"""timm state dicts. vitkit's parameter names are timm's, so the mapping is the identity; the
work is reading the architecture back from the tensors' shapes.

What shapes cannot tell, and the rule used:
- number of heads: the published size with that width (Ti 3, S 6, B 12, L 16, H 16), else
  width / 64; pass `num_heads=` to `load_model` to say otherwise;
- a non-square training grid: the grid is taken as square; pass `img_size=(H, W)` to say otherwise.

One renaming: a conv stem (`stem_channels`) is timm's hybrid embedding with a `ConvStem` backbone
(timm.models.vision_transformer_hybrid: 3×3 stride-2 ConvNormAct layers, then a 1×1 conv with
bias and no norm, `HybridEmbed(proj=False)`, patch_size=1), whose keys are
`patch_embed.backbone.{i}.conv|bn.*`; vitkit keeps them as `patch_embed.stem.*` + `patch_embed.proj`.
"""
from __future__ import annotations

import math
import re

import torch

from ..config import ViTConfig
from ..registry import SIZES
from ..errors import CheckpointError

HEADS_BY_WIDTH = {width: heads for width, _, heads, _ in SIZES.values()}


def looks_like_timm(sd: dict) -> bool:
    return "patch_embed.proj.weight" in sd or "patch_embed.backbone.0.conv.weight" in sd


_STEM_KEY = re.compile(r"patch_embed\.backbone\.(\d+)\.(conv|bn)\.(\w+)$")


def from_timm_stem(sd: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """timm's ConvStem hybrid keys → vitkit's `patch_embed.stem.*` / `patch_embed.proj.*`."""
    found = {m.groups(): k for k in sd if (m := _STEM_KEY.match(k))}
    if not found:
        return sd
    last = max(int(i) for i, _, _ in found)
    out = {k: v for k, v in sd.items() if not _STEM_KEY.match(k)}
    for (i, part, name), key in found.items():
        i, w = int(i), sd[key]
        if i == last:
            if part != "conv" or (name == "weight" and tuple(w.shape[-2:]) != (1, 1)):
                raise CheckpointError(f"{where}: timm conv stem ends in {key} {tuple(w.shape)}; vitkit's stem "
                                      f"ends in a 1×1 conv with bias and no norm")
            out[f"patch_embed.proj.{name}"] = w
        elif part == "conv":
            if name != "weight" or tuple(w.shape[-2:]) != (3, 3):
                raise CheckpointError(f"{where}: timm conv stem layer {key} {tuple(w.shape)} is not a 3×3 "
                                      f"conv without bias; vitkit's stem has only those")
            out[f"patch_embed.stem.{3 * i}.weight"] = w
        else:
            out[f"patch_embed.stem.{3 * i + 1}.{name}"] = w
    return out


def to_timm_stem(sd: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """The inverse of `from_timm_stem`."""
    k = len(cfg.stem_channels)
    out = {}
    for key, v in sd.items():
        if key.startswith("patch_embed.stem."):
            layer, name = key[len("patch_embed.stem."):].split(".", 1)
            i, kind = divmod(int(layer), 3)  # 0: conv, 1: BatchNorm, 2: ReLU (no parameters)
            out[f"patch_embed.backbone.{i}.{'conv' if kind == 0 else 'bn'}.{name}"] = v
        elif key.startswith("patch_embed.proj."):
            out[f"patch_embed.backbone.{k}.conv.{key.rsplit('.', 1)[1]}"] = v
        else:
            out[key] = v
    return out


def from_timm(sd: dict[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], dict]:
    """timm names → vitkit names (conv stem, relative positions) and the config fields they fix."""
    return from_timm_relpos(from_timm_stem(sd, where), where)


def from_timm_relpos(sd: dict[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], dict]:
    """timm's VisionTransformerRelPos → vitkit names, where the forms match.

    Matches: `rel_pos_type='bias'` without a class token (a Swin-style per-head table whose
    (2H-1)(2W-1) index layout is vitkit's "bias" form). Refused: the log-coordinate MLP that
    timm's pretrained `vit_relpos_*` use, shared tables, and class-token tables (3 extra BEiT
    entries; vitkit gives prefix tokens a zero term).
    """
    if not any("rel_pos" in k for k in sd):
        return sd, {}
    if any(".rel_pos.mlp." in k or k.startswith("shared_rel_pos.") for k in sd):
        raise CheckpointError(f"{where}: timm relative positions of MLP or shared form (vit_relpos_* pretrained) "
                              f"have no vitkit equivalent; only rel_pos_type='bias' checkpoints load")
    out = {}
    for k, v in sd.items():
        if k.endswith(".attn.rel_pos.relative_position_bias_table"):
            k = k.replace(".relative_position_bias_table", ".table")
            if "cls_token" in sd:
                raise CheckpointError(f"{where}: timm relative-position tables with a class token (3 extra "
                                      f"entries) are not supported")
        out[k] = v
    return out, {"rel_pos": "bias", "pos_embed": "none"}


def infer_config(sd: dict[str, torch.Tensor], where: str, **known) -> ViTConfig:
    """Architecture from timm-named tensors. `known` fixes fields shapes cannot tell."""
    w = sd["patch_embed.proj.weight"]  # (D, C, P, P)
    if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise CheckpointError(f"{where}: patch_embed.proj.weight has shape {tuple(w.shape)}, "
                              f"expected (D, C, P, P)")
    D, C, P = w.shape[0], w.shape[1], w.shape[-1]
    stem = [sd[k].shape for k in sorted((k for k in sd if re.fullmatch(r"patch_embed\.stem\.\d+\.weight", k)
                                         and sd[k].ndim == 4), key=lambda k: int(k.split(".")[2]))]
    if stem:  # (width, C_in, 3, 3) per stride-2 conv; the 1×1 proj adds no stride
        known.setdefault("stem_channels", tuple(s[0] for s in stem))
        C, P = stem[0][1], 2 ** len(stem)
    table = sd.get("blocks.0.attn.rel_pos.table")
    depth = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise CheckpointError(f"{where}: no transformer blocks (blocks.N.*) found")
    class_token, distilled = "cls_token" in sd, "dist_token" in sd
    prefix = int(class_token) + int(distilled)
    pos = sd.get("pos_embed")
    img_size = known.pop("img_size", None)
    if pos is None and table is not None and img_size is None:
        side = (math.isqrt(table.shape[0]) + 1) // 2  # (2H-1)² entries for a square grid
        img_size = side * P
    if pos is not None and img_size is None:
        side = math.isqrt(pos.shape[1] - prefix)
        if side * side != pos.shape[1] - prefix:
            raise CheckpointError(f"{where}: pos_embed has {pos.shape[1] - prefix} patch entries, not a "
                                  f"square grid; pass img_size=(H, W)")
        img_size = side * P
    elif img_size is None:
        img_size = 224 if 224 % P == 0 else 16 * P
    head = sd.get("head.weight")
    fields = dict(
        img_size=img_size, patch_size=P, in_chans=C, embed_dim=D, depth=depth,
        # A relative-position bias table is (offsets, heads): the one place shapes show heads.
        num_heads=table.shape[1] if table is not None else HEADS_BY_WIDTH.get(D, max(1, D // 64)),
        mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / D,
        qkv_bias="blocks.0.attn.qkv.bias" in sd,
        class_token=class_token, distilled=distilled,
        # timm normalises after pooling exactly when it mean-pools (fc_norm).
        pool="mean" if ("fc_norm.weight" in sd or not class_token) else "cls",
        fc_norm="fc_norm.weight" in sd,
        pos_embed="learned" if pos is not None else "none",
        num_classes=head.shape[0] if head is not None else 0,
        layer_scale_init=1e-5 if "blocks.0.ls1.gamma" in sd else None,
    )
    fields.update(known)
    return ViTConfig(**fields)


def to_timm(sd: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """vitkit state dict → timm's (same names); refuses what timm's ViT has no place for."""
    if cfg.rel_pos != "none":
        raise CheckpointError(f"rel_pos={cfg.rel_pos!r} has no equivalent in timm's VisionTransformer; "
                              f"keep this model in vitkit format")
    if cfg.pos_embed == "sincos":
        raise CheckpointError("pos_embed='sincos' is not stored in timm checkpoints; keep vitkit format")
    return to_timm_stem(sd, cfg) if cfg.stem_channels else dict(sd)

