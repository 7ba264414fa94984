"""`vitkit serve MODEL`: the model over HTTP (deploy/serve.py).

    vitkit serve cifar10_vit_tiny --port 8000
    vitkit serve model-int8.onnx --max-batch 32 --max-wait-ms 5 --workers 2
"""
from __future__ import annotations

import sys

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP: POST /predict, GET /health, /metrics, /docs")
    p.add_argument("model", help="run dir, bundled name, hf-hub:, any checkpoint, or an .onnx file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--max-batch", type=int, default=32, help="images per forward pass (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with")
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument("--max-body-mb", type=float, default=20.0)
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="larger images are refused from their header")
    p.add_argument("--body-timeout-s", type=float, default=10.0, help="a client slower than this to send its body gets 408")
    p.add_argument("--token-file", help="require `Authorization: Bearer <token>` (also: VITKIT_SERVE_TOKEN)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..deploy.serve import ServeConfig, create_app, read_token, serve

    for name, value, low in (("--port", args.port, 0), ("--max-batch", args.max_batch, 1), ("--workers", args.workers, 1),
                             ("--max-pixels", args.max_pixels, 1)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}")
    if args.max_wait_ms < 0 or args.max_body_mb <= 0 or args.body_timeout_s <= 0:
        raise UsageError("--max-wait-ms must be at least 0, --max-body-mb and --body-timeout-s above 0")
    cfg = ServeConfig(model=args.model, runtime=args.runtime, precision=args.precision, max_batch=args.max_batch,
                      max_wait_ms=args.max_wait_ms, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                      max_pixels=args.max_pixels, body_timeout_s=args.body_timeout_s, token=read_token(args.token_file))
    app = create_app(cfg)  # load the model now: a bad MODEL is one line before the server starts
    print(f"vitkit serve: {args.model} on http://{args.host}:{args.port} (POST /predict, GET /health, /metrics, /docs)",
          file=sys.stderr, flush=True)
    serve(cfg, args.host, args.port, args.workers, app=None if args.workers > 1 else app)
    return 0
