"""`vitkit demo MODEL`: the model on a Gradio page (deploy/demo.py).

    vitkit demo cifar10_vit_tiny --port 7860      # open http://127.0.0.1:7860
    vitkit demo model-int8.onnx                   # predictions only: no attention maps in ONNX
"""
from __future__ import annotations

import sys

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("demo", help="a browser page: top-5, attention rollout, per-block/head maps, position embeddings")
    p.add_argument("model", help="run dir, bundled name, hf-hub:, any checkpoint, or an .onnx file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--topk", type=int, default=5, help="classes shown and returned by /predict")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..deploy.demo import DemoModel, build_demo, launch, require_gradio

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: choose 0 to 65535")
    if args.topk < 1:
        raise UsageError("--topk must be at least 1")
    require_gradio()  # a missing extra is one line before the model loads
    page = build_demo(DemoModel(args.model), topk=args.topk)  # a bad MODEL is one line before the server starts
    print(f"vitkit demo: {args.model} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    launch(page, args.host, args.port)
    return 0
