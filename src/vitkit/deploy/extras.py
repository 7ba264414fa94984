"""The optional ONNX packages, imported on use (the `deploy` extra)."""
from __future__ import annotations

import importlib

from ..errors import UsageError


def require(module: str):
    """Import an ONNX package or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{module} is not installed: pip install 'vitkit[deploy]'") from None
