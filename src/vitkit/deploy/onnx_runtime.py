"""`OnnxClassifier`: an exported .onnx file used like a vitkit model (predict, eval).

    clf = OnnxClassifier("model.onnx")             # preprocessing and labels from its metadata
    logits = clf(images)                           # (B, 3, H, W) float tensor → (B, classes)

Called with a torch tensor, returns a torch tensor; runs on ONNX Runtime's CPU provider with
all of the process's threads. Files exported by other tools work too (no vitkit metadata):
then ImageNet preprocessing at the graph's input size is assumed and labels are indices.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UsageError
from ..data.transforms import preprocess_of
from .onnx_export import METADATA_KEY


def is_onnx_file(path: str | Path) -> bool:
    return str(path).endswith(".onnx")


class _Cfg:
    """The attributes of a ViTConfig that predict/eval read (img_size, num_classes)."""

    def __init__(self, img_size: tuple[int, int], num_classes: int):
        self.img_size, self.num_classes = img_size, num_classes


class OnnxClassifier:
    def __init__(self, path: str | Path, threads: int | None = None):
        from .extras import require

        ort = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf
        from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as NotImplemented_

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except (InvalidProtobuf, Fail, InvalidGraph, NotImplemented_, OSError) as e:  # ORT's own types for a file that is not ONNX
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"{path}: not a readable ONNX model ({msg[:160]})") from None
        self.path = path
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.meta = json.loads(meta) if meta else {}
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name = inp.name
        self.class_names = self.meta.get("class_names")
        pre = dict(self.meta.get("preprocess") or {})
        side = pre.get("img_size") or (inp.shape[-1] if isinstance(inp.shape[-1], int) else 224)
        n = out.shape[-1] if isinstance(out.shape[-1], int) else len(self.class_names or []) or 0
        self.cfg = _Cfg((side, side), n)
        self.preprocess = pre
        self.preprocess = preprocess_of(self)  # missing fields: the defaults every vitkit model gets
        self.training = False
        self.device = torch.device("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    # the parts of the nn.Module interface that evaluation code touches
    def eval(self) -> "OnnxClassifier":
        return self

    def train(self, mode: bool = True) -> "OnnxClassifier":
        return self

    def to(self, *args, **kwargs) -> "OnnxClassifier":
        return self
