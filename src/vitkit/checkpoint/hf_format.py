"""Hugging Face transformers ViT / DeiT: key mapping both ways and config translation.

Read: `ViTModel`, `ViTForImageClassification`, `DeiTModel`, `DeiTForImageClassificationWithTeacher`
directories (config.json + model.safetensors or pytorch_model.bin). Written: the legacy key layout
that `save_pretrained` still writes in transformers 5 (`encoder.layer.N.attention.attention.query`).

Numerics carried over from config.json rather than replaced by vitkit defaults:
`layer_norm_eps` (1e-12 by default in HF), `hidden_act`, `qkv_bias`, dropouts; position tables are
resized as HF does (bicubic, no antialias), both at load and at run time.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..config import ViTConfig
from ..errors import CheckpointError
from .io import read_tensor_file, weights_in

_ACTS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
         "gelu_fast": "gelu_tanh", "gelu_python_tanh": "gelu_tanh"}
HF_MODEL_TYPES = ("vit", "deit")

# Top-level names (after the "vit."/"deit." prefix); per-layer names follow in _LAYER.
_TOP = {"embeddings.cls_token": "cls_token", "embeddings.distillation_token": "dist_token",
        "embeddings.position_embeddings": "pos_embed",
        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
_LAYER = {"layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
          "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
# transformers 5 in-memory names → the legacy names it saves.
_V5 = [(r"^layers\.(\d+)\.", r"encoder.layer.\1."), (r"\.attention\.q_proj\.", ".attention.attention.query."),
       (r"\.attention\.k_proj\.", ".attention.attention.key."), (r"\.attention\.v_proj\.", ".attention.attention.value."),
       (r"\.attention\.o_proj\.", ".attention.output.dense."), (r"\.mlp\.fc1\.", ".intermediate.dense."),
       (r"\.mlp\.fc2\.", ".output.dense.")]


def looks_like_hf(sd: dict) -> bool:
    return any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in sd)


def _strip_model_prefix(sd: dict) -> tuple[dict, dict]:
    """Split off heads; drop "vit."/"deit." prefixes and translate transformers-5 names."""
    heads, body = {}, {}
    for k, v in sd.items():
        if k.startswith(("classifier.", "cls_classifier.", "distillation_classifier.")):
            heads[k] = v
            continue
        k = re.sub(r"^(vit|deit)\.", "", k)
        for pat, rep in _V5:
            k = re.sub(pat, rep, k)
        body[k] = v
    return body, heads


def hf_to_vitkit(sd: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    body, heads = _strip_model_prefix(sd)
    out: dict[str, torch.Tensor] = {}
    for k, v in body.items():
        if k in _TOP:
            out[_TOP[k]] = v
        elif k.startswith("pooler."):
            continue  # ViTModel's tanh pooler: not part of classification (HF's own classifier skips it)
        elif m := re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", k):
            i, name, kind = m.groups()
            if name.startswith("attention.attention."):
                continue  # q, k, v: fused below
            if name not in _LAYER:
                raise CheckpointError(f"{where}: unexpected Hugging Face key {k!r}")
            out[f"blocks.{i}.{_LAYER[name]}.{kind}"] = v
        elif k == "embeddings.mask_token":
            continue  # masked-image-modelling token, unused by classification
        else:
            raise CheckpointError(f"{where}: unexpected Hugging Face key {k!r}")
    layers = sorted({int(m.group(1)) for k in body if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    for i in layers:
        pre = f"encoder.layer.{i}.attention.attention."
        # timm's fused qkv is the three projections stacked [q; k; v] along the output dim.
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([body[pre + n + ".weight"] for n in ("query", "key", "value")])
        if pre + "query.bias" in body:
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([body[pre + n + ".bias"] for n in ("query", "key", "value")])
    for src, dst in (("classifier", "head"), ("cls_classifier", "head"), ("distillation_classifier", "head_dist")):
        for kind in ("weight", "bias"):
            if f"{src}.{kind}" in heads:
                out[f"{dst}.{kind}"] = heads[f"{src}.{kind}"]
    return out


def vitkit_to_hf(sd: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    prefix = "deit." if cfg.distilled else "vit."
    inv_top = {v: k for k, v in _TOP.items()}
    inv_layer = {v: k for k, v in _LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in inv_top:
            out[prefix + inv_top[k]] = v
        elif m := re.match(r"blocks\.(\d+)\.(.+)\.(weight|bias)$", k):
            i, name, kind = m.groups()
            pre = f"{prefix}encoder.layer.{i}."
            if name == "attn.qkv":
                for n, part in zip(("query", "key", "value"), v.chunk(3, dim=0)):
                    out[f"{pre}attention.attention.{n}.{kind}"] = part.contiguous()
            else:
                out[pre + inv_layer[name] + "." + kind] = v
        elif k.startswith("head."):
            out[("cls_classifier." if cfg.distilled else "classifier.") + k[5:]] = v
        elif k.startswith("head_dist."):
            out["distillation_classifier." + k[10:]] = v
        else:
            raise CheckpointError(f"key {k!r} has no place in a Hugging Face ViT")
    return out


def config_from_hf(hf: dict, sd: dict[str, torch.Tensor], where: str, **known) -> ViTConfig:
    if hf.get("model_type") not in HF_MODEL_TYPES:
        raise CheckpointError(f"{where}: Hugging Face model_type {hf.get('model_type')!r} is not a ViT "
                              f"(expected one of {', '.join(HF_MODEL_TYPES)})")
    arch = (hf.get("architectures") or [""])[0]
    if arch == "DeiTForImageClassification":
        raise CheckpointError(f"{where}: DeiTForImageClassification (class head only, distillation token "
                              f"unused) is not supported; use DeiTForImageClassificationWithTeacher")
    act = hf.get("hidden_act", "gelu")
    if act not in _ACTS:
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported (use gelu or a tanh gelu)")
    size = hf.get("image_size", 224)
    head = sd.get("head.weight")
    fields = dict(
        img_size=size, patch_size=hf.get("patch_size", 16), in_chans=hf.get("num_channels", 3),
        embed_dim=hf["hidden_size"], depth=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        mlp_ratio=hf["intermediate_size"] / hf["hidden_size"], qkv_bias=hf.get("qkv_bias", True),
        distilled="dist_token" in sd, num_classes=head.shape[0] if head is not None else 0,
        norm_eps=hf.get("layer_norm_eps", 1e-12), act=_ACTS[act],
        pos_embed_interp="bicubic", pos_embed_antialias=False,
        pos_drop_rate=hf.get("hidden_dropout_prob", 0.0), proj_drop_rate=hf.get("hidden_dropout_prob", 0.0),
        attn_drop_rate=hf.get("attention_probs_dropout_prob", 0.0),
    )
    fields.update(known)
    return ViTConfig(**fields)


def class_names_from_hf(hf: dict, num_classes: int) -> list[str] | None:
    id2label = hf.get("id2label") or {}
    names = [id2label.get(str(i), id2label.get(i)) for i in range(num_classes)]
    if num_classes == 0 or any(n is None for n in names) or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return names


def read_hf_dir(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    hf = json.loads((path / "config.json").read_text())
    weights = weights_in(path)
    if weights is not None:
        return hf, read_tensor_file(weights)
    raise CheckpointError(f"{path}: Hugging Face config.json found but no model.safetensors or pytorch_model.bin "
                          f"(sharded checkpoints are not supported)")


def write_hf_dir(path: Path, sd: dict[str, torch.Tensor], cfg: ViTConfig,
                 class_names: list[str] | None) -> None:
    """config.json + model.safetensors that `from_pretrained` loads with no missing keys."""
    from safetensors.torch import save_file

    if not cfg.class_token or cfg.pool != "cls" or cfg.use_fc_norm:
        raise CheckpointError("Hugging Face ViT needs a [class] token with cls pooling; this model has "
                              f"class_token={cfg.class_token}, pool={cfg.pool!r}")
    if cfg.pos_embed != "learned" or cfg.rel_pos != "none" or cfg.layer_scale_init is not None:
        raise CheckpointError("Hugging Face ViT has only learned absolute position embeddings and no "
                              "LayerScale; keep this model in vitkit or timm format")
    if cfg.stem_channels:
        raise CheckpointError("Hugging Face ViT has no conv stem (stem_channels); keep this model in vitkit format")
    names = class_names or [f"LABEL_{i}" for i in range(cfg.num_classes)]
    gh, gw = cfg.img_size
    hf = {
        "architectures": ["DeiTForImageClassificationWithTeacher" if cfg.distilled else "ViTForImageClassification"],
        "model_type": "deit" if cfg.distilled else "vit",
        "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.depth, "num_attention_heads": cfg.num_heads,
        "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio),
        "hidden_act": "gelu" if cfg.act == "gelu" else "gelu_pytorch_tanh",
        "hidden_dropout_prob": cfg.proj_drop_rate, "attention_probs_dropout_prob": cfg.attn_drop_rate,
        "initializer_range": 0.02, "layer_norm_eps": cfg.norm_eps,
        "image_size": gh if gh == gw else [gh, gw], "patch_size": cfg.patch_size,
        "num_channels": cfg.in_chans, "qkv_bias": cfg.qkv_bias, "encoder_stride": cfg.patch_size,
        "id2label": {str(i): n for i, n in enumerate(names)},
        "label2id": {n: i for i, n in enumerate(names)},
    }
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in vitkit_to_hf(sd, cfg).items()}, str(path / "model.safetensors"),
              metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(hf, indent=2) + "\n")
