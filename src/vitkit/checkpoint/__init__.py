"""Everything about checkpoint files: reading every format, surgery, and writing.

One package owns all key mapping, prefix stripping and table resizing (see `surgery.py`).
"""
from ..errors import CheckpointError
from .load import convert, load_model, model_from_checkpoint, read_checkpoint
from .loaded import LoadedCheckpoint
from .native import model_state_dict, save_model

__all__ = ["CheckpointError", "LoadedCheckpoint", "convert", "load_model", "model_from_checkpoint",
           "read_checkpoint", "model_state_dict", "save_model"]
