"""vitkit: Vision Transformers that match timm and Hugging Face, from images to trained models.

    import vitkit
    model = vitkit.create_model("vit_small_patch16_224", num_classes=10)
    vitkit.save_model(model, "runs/mine")
    model = vitkit.load_model("runs/mine")       # also timm / Hugging Face / JAX checkpoints
    result = vitkit.train("recipes/quickstart.yaml", data="sample", out="runs/q")   # result.top1
"""
__version__ = "0.1.0"

from .checkpoint import load_model, save_model
from .config import ViTConfig
from .models import DistilledVisionTransformer, VisionTransformer, build_model
from .factory import create_model
from .registry import list_models, model_config
from .deploy import OnnxClassifier, export_onnx
from .inference.predict import predict_files

__all__ = ["ViTConfig", "VisionTransformer", "DistilledVisionTransformer", "build_model",
           "create_model", "list_models", "model_config", "load_model", "save_model", "export_onnx",
           "OnnxClassifier", "predict_files", "train", "TrainResult", "__version__"]


def __getattr__(name: str):
    """`vitkit.train` and `vitkit.TrainResult` import the training stack (and torchvision's
    datasets) on first use, so `import vitkit` and every `vitkit` command that does not train
    start without it."""
    if name in ("train", "TrainResult"):
        from .training import api

        return getattr(api, name)
    raise AttributeError(f"module 'vitkit' has no attribute {name!r}")
