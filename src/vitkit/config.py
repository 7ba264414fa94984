"""The model config: one dataclass that rebuilds any vitkit model and is saved in every checkpoint.

    from vitkit.config import ViTConfig
    cfg = ViTConfig(embed_dim=192, depth=12, num_heads=3, patch_size=4, img_size=(32, 32))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

POOLS = ("cls", "mean")
POS_EMBEDS = ("learned", "sincos", "none")
REL_POS = ("none", "shaw", "decomposed", "bias")
ACTS = ("gelu", "gelu_tanh")




def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ConfigError(f"img_size must be an int or (height, width), got {v}")
    return v  # type: ignore[return-value]


@dataclass
class ViTConfig:
    """Everything that decides a ViT's weights and numerics.

    Args:
        img_size: training size (H, W); other sizes work by resampling the position table.
        patch_size: P; the patch embedding is a conv with kernel = stride = P.
        embed_dim, depth, num_heads, mlp_ratio: the size (see `registry.SIZES`).
        class_token: prepend a learned `[class]` token.
        distilled: add DeiT's distillation token and second head.
        pool: "cls" (the `[class]` output) or "mean" (mean of patch tokens).
        fc_norm: norm after pooling instead of before it; None means timm's rule
            (True exactly when pool == "mean").
        pos_embed: "learned", "sincos" (fixed 2-D) or "none".
        pos_embed_interp / pos_embed_antialias: how a learned table is resampled for another
            grid. timm: bicubic + antialias; Hugging Face: bicubic, no antialias.
        rel_pos: relative position form inside attention ("none", "shaw", "decomposed", "bias").
        norm_eps: LayerNorm eps (timm 1e-6; Hugging Face ViT 1e-12).
        act: "gelu" (exact, erf) or "gelu_tanh" (the JAX original).
        layer_scale_init: LayerScale init value; None disables it.
        head_init_zero: zero-initialise the head (the ViT paper's fine-tuning rule).
        stem_channels: widths of a convolutional stem in place of the single patch conv — the
            ViT paper's hybrid input, in the form of Xiao et al. 2021 ("Early convolutions help
            transformers see better"): one 3×3 stride-2 conv + BatchNorm + ReLU per width, then
            a 1×1 conv to embed_dim. The strides multiply to patch_size (2 widths for P = 4).
            Empty (the default): the plain patch conv.
    """

    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    distilled: bool = False
    pool: str = "cls"
    fc_norm: bool | None = None
    pos_embed: str = "learned"
    pos_embed_interp: str = "bicubic"
    pos_embed_antialias: bool = True
    rel_pos: str = "none"
    rel_pos_max_dist: int | None = None  # Shaw's clipping distance k; None: the whole grid
    rel_pos_values: bool = False  # Shaw's optional value term (forces the explicit path)
    norm_eps: float = 1e-6
    act: str = "gelu"
    drop_rate: float = 0.0
    pos_drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    proj_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    patch_dropout: float = 0.0  # training only: drop this fraction of patch tokens (Liu et al. 2022)
    layer_scale_init: float | None = None
    head_init_zero: bool = False
    stem_channels: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. where a checkpoint came from)

    def __post_init__(self) -> None:
        self.img_size = _pair(self.img_size)
        self.stem_channels = tuple(int(c) for c in self.stem_channels)  # JSON gives a list
        if self.stem_channels and (2 ** len(self.stem_channels) != self.patch_size
                                   or min(self.stem_channels) < 1):
            raise ConfigError(f"stem_channels={list(self.stem_channels)}: a conv stem halves the size per "
                              f"width, so patch_size {self.patch_size} needs "
                              f"{self.patch_size.bit_length() - 1} positive widths and a power-of-two patch")
        for name, allowed in (("pool", POOLS), ("pos_embed", POS_EMBEDS), ("rel_pos", REL_POS),
                              ("act", ACTS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for side in self.img_size:
            if side % self.patch_size:
                raise ConfigError(f"image size {side} is not a multiple of patch size {self.patch_size}")
        if self.pool == "cls" and not self.class_token:
            raise ConfigError("pool='cls' needs class_token=True; use pool='mean' without a class token")
        if self.distilled and not self.class_token:
            raise ConfigError("distilled=True needs class_token=True")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if not 0.0 <= self.patch_dropout < 1.0:
            raise ConfigError(f"patch_dropout must be in [0, 1), got {self.patch_dropout}")
        if self.patch_dropout and self.rel_pos != "none":
            # Relative terms are indexed by grid position; a random subset of tokens has no grid.
            raise ConfigError(f"patch_dropout needs rel_pos='none' (got {self.rel_pos!r}): dropped "
                              "tokens break the patch grid that relative positions index")

    # ---- derived values (never stored, so they cannot disagree with the fields) ----
    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + int(self.distilled)

    @property
    def use_fc_norm(self) -> bool:
        return self.pool == "mean" if self.fc_norm is None else self.fc_norm

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        d["stem_channels"] = list(self.stem_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ViTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **overrides: Any) -> "ViTConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)


# CNN teachers (models/resnet.py): torchvision ResNets, optionally with a CIFAR stem.
CNN_ARCHS = ("resnet18", "resnet34", "resnet50")


@dataclass
class CNNConfig:
    arch: str = "resnet18"
    num_classes: int = 1000
    cifar_stem: bool = False
    img_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    width: int = 64  # channels of the first stage (torchvision: 64); stages double it
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in CNN_ARCHS:
            raise ConfigError(f"unknown CNN arch {self.arch!r}; choose one of {', '.join(CNN_ARCHS)}")
        if self.width < 1:
            raise ConfigError(f"CNN width must be at least 1, got {self.width}")
        self.img_size = (self.img_size, self.img_size) if isinstance(self.img_size, int) else tuple(self.img_size)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d

    def replace(self, **overrides) -> "CNNConfig":
        known = {f.name for f in dataclasses.fields(self)}
        bad = sorted(k for k in overrides if k not in known and k not in _VIT_ONLY)
        if bad:
            raise ConfigError(f"unknown CNN option(s): {', '.join(bad)}")
        # ViT-only options (drop_path_rate, ...) mean nothing to a CNN: they are ignored, not fatal.
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if k in known})


_VIT_ONLY = ("drop_path_rate", "drop_rate", "pos_embed_interp", "pos_embed_antialias", "patch_dropout")


def config_from_dict(d: dict):
    """The config a checkpoint header describes: a CNN when it names an `arch`, else a ViT."""
    d = dict(d)
    return CNNConfig(**d) if "arch" in d else ViTConfig.from_dict(d)
