"""Small single-purpose modules the models are built from."""
from .attention import Attention
from .block import Block
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pos_embed import resample_pos_embed, sincos_2d_pos_embed
from .regularization import DropPath, LayerScale

__all__ = ["Attention", "Block", "Mlp", "PatchEmbed", "DropPath", "LayerScale",
           "resample_pos_embed", "sincos_2d_pos_embed"]
