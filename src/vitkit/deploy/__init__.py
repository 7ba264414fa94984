"""Deployment: ONNX export at any image size, ONNX Runtime inference, int8 quantization.

    vitkit export runs/cifar model.onnx                       # dynamic batch, height and width
    vitkit export runs/cifar model-int8.onnx --int8 --calib DIR   # static int8 (dynamic without --calib)
    vitkit predict --checkpoint model.onnx photos/ --output results.csv

ONNX needs the `deploy` extra: pip install 'vitkit[deploy]' (onnx, onnxruntime, onnxscript).
"""
from .onnx_export import export_onnx
from .onnx_runtime import OnnxClassifier, is_onnx_file

__all__ = ["export_onnx", "OnnxClassifier", "is_onnx_file"]

