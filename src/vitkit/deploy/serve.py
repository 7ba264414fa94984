"""`vitkit serve`: a model over HTTP, on FastAPI and uvicorn (no hand-written HTTP).

    vitkit serve cifar10_vit_tiny --port 8000 [--runtime auto|torch|onnx] [--max-batch 32] [--max-wait-ms 5]
    curl -X POST --data-binary @cat.jpg -H 'Content-Type: image/jpeg' 'localhost:8000/predict?topk=3'
    curl -F file=@cat.jpg -F file=@dog.png localhost:8000/predict          # several images → a list

Needs the `serve` extra: pip install 'vitkit[serve]' (fastapi, uvicorn, python-multipart,
prometheus-client). Why FastAPI on uvicorn: request parsing, multipart, OpenAPI docs (/docs) and graceful shutdown
(SIGTERM finishes the requests in flight, then exits) come from maintained libraries; what is
vitkit's own is small — dynamic batching across clients (batching.py), input limits, metrics.

Bad input is a 4xx with {"error": "..."} and never crashes the server: empty body (400), not an
image or truncated (400), wrong content type (415), body over the limit (413, checked on
Content-Length and while reading), an image over the pixel limit (413, refused from its header
before its pixels are allocated), a client too slow to send its body (408). With
VITKIT_SERVE_TOKEN (or --token-file) every route but /health needs `Authorization: Bearer TOKEN`.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from fastapi import Query, Request  # module level: FastAPI resolves the endpoints' annotations here

from ..checkpoint import load_model
from ..data.images import to_rgb
from ..data.transforms import transform_for
from ..errors import UsageError
from ..hardware import autocast, resolve_precision
from ..inference.predict import class_label
from .batching import DynamicBatcher
from .onnx_runtime import OnnxClassifier, is_onnx_file

CONFIG_ENV = "VITKIT_SERVE_CONFIG"  # JSON ServeConfig, for uvicorn's worker processes (--workers N)


@dataclass
class ServeConfig:
    model: str
    runtime: str = "auto"  # auto: onnx for a .onnx file, else torch
    precision: str = "auto"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # width × height; larger images are refused before decoding
    body_timeout_s: float = 10.0
    max_topk: int = 100
    token: str | None = None


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def load_classifier(cfg: ServeConfig):
    """(model callable on (B, C, H, W), eval transform, model for labels, precision)."""
    runtime = cfg.runtime
    if runtime == "auto":
        runtime = "onnx" if is_onnx_file(cfg.model) else "torch"
    if runtime == "onnx":
        clf = OnnxClassifier(cfg.model)
        return clf, transform_for(clf), clf, "fp32"
    if is_onnx_file(cfg.model):
        raise UsageError(f"{cfg.model}: an ONNX file is served with --runtime onnx (or auto)")
    model = load_model(cfg.model).float().eval()
    precision = resolve_precision(cfg.precision, torch.device("cpu"))

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast(torch.device("cpu"), precision):
            return model(x)

    return run, transform_for(model), model, precision


def decode_image(data: bytes, max_pixels: int, name: str = "body"):
    """RGB PIL image from bytes, or BadRequest (400 unreadable, 413 too many pixels)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest(400, f"{name}: empty")
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            w, h = img.size
            if w * h > max_pixels:
                raise BadRequest(413, f"{name}: {w}×{h} pixels is over the limit of {max_pixels}")
            img.load()
            return to_rgb(img)
    except Image.DecompressionBombError:
        raise BadRequest(413, f"{name}: image over the pixel limit") from None
    except UnidentifiedImageError:
        raise BadRequest(400, f"{name}: not an image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise BadRequest(400, f"{name}: unreadable image ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})") from None


async def read_body(request, limit: int, timeout_s: float) -> bytes:
    """The body, at most `limit` bytes (413 past it), within `timeout_s` (408 for a stalled client)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"body of {int(length)} bytes is over the limit of {limit}")

    async def gather() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"body over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(gather(), timeout_s)
    except asyncio.TimeoutError:
        raise BadRequest(408, f"the body did not arrive within {timeout_s:g} s") from None


def create_app(cfg: ServeConfig):
    """The FastAPI application for one model (tests use it with a real uvicorn server)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    run, transform, labels_of, precision = load_classifier(cfg)
    registry = CollectorRegistry()
    requests = Counter("vitkit_requests", "HTTP requests to /predict by status", ["status"], registry=registry)
    latency = Histogram("vitkit_request_seconds", "time to answer /predict", registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    batch_sizes = Histogram("vitkit_batch_size", "images per forward pass", registry=registry,
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128))
    images_total = Counter("vitkit_images", "images classified", registry=registry)
    in_flight = Gauge("vitkit_requests_in_flight", "/predict requests accepted and not yet answered", registry=registry)
    batcher = DynamicBatcher(lambda x: run(x).float().softmax(dim=-1), cfg.max_batch, cfg.max_wait_ms,
                             on_batch=batch_sizes.observe)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="vitkit", description=f"Image classification with {cfg.model}", lifespan=lifespan)
    app.state.cfg, app.state.precision = cfg, precision

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if cfg.token and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {cfg.token}".encode()):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        if request.url.path != "/predict":
            return await call_next(request)
        t0 = time.perf_counter()
        with in_flight.track_inprogress():  # the queue a load balancer or autoscaler watches
            response = await call_next(request)
        requests.labels(str(response.status_code)).inc()
        latency.observe(time.perf_counter() - t0)
        return response

    @app.exception_handler(BadRequest)
    async def bad_request(_request, e: BadRequest):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def bad_query(_request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": cfg.model, "precision": precision}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    @app.post("/predict", responses={400: {}, 401: {}, 408: {}, 413: {}, 415: {}})
    async def predict(request: Request, topk: int = Query(5, ge=1)):
        """The image as the body (Content-Type: image/*), or multipart field(s) `file`."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (ctype.startswith("image/") or ctype == "multipart/form-data"):
            raise BadRequest(415, f"Content-Type {ctype or 'missing'}: send image/* or multipart/form-data")
        body = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)
        if ctype == "multipart/form-data":
            request._body = body  # Starlette's form() reads the cached body
            form = await request.form(max_files=256)
            files = form.getlist("file")
            if not files:
                raise BadRequest(400, "multipart request without a `file` field")
            named = [(getattr(f, "filename", None) or f"file {i}", await f.read()) for i, f in enumerate(files)]
        else:
            named = [("body", body)]
        xs = [transform(decode_image(data, cfg.max_pixels, name)) for name, data in named]  # (C, H, W) each
        probs = await asyncio.gather(*(batcher.submit(x) for x in xs))
        images_total.inc(len(xs))
        k = min(topk, cfg.max_topk)
        out = []
        for p in probs:
            top = p.topk(min(k, p.numel()))
            out.append({"topk": [{"label": class_label(labels_of, int(i)), "index": int(i), "prob": round(float(v), 6)}
                                 for v, i in zip(top.values, top.indices)]})
        return out if len(out) > 1 else out[0]  # several files → a list

    return app


def app_from_env():
    """uvicorn factory for worker processes (`--workers N`): the config travels in CONFIG_ENV."""
    return create_app(ServeConfig(**json.loads(os.environ[CONFIG_ENV])))


def serve(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, app=None) -> None:
    """Run the server until SIGTERM / SIGINT (in-flight requests finish first). `app`: one made
    already by create_app (one process); worker processes make their own."""
    import uvicorn

    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(asdict(cfg))
        uvicorn.run("vitkit.deploy.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                    timeout_keep_alive=5, timeout_graceful_shutdown=30, log_level="warning")
    else:
        uvicorn.run(app or create_app(cfg), host=host, port=port, timeout_keep_alive=5, timeout_graceful_shutdown=30,
                    log_level="warning")


def read_token(token_file: str | None) -> str | None:
    if token_file:
        path = Path(token_file)
        if not path.is_file():
            raise UsageError(f"--token-file {path}: no such file")
        token = path.read_text().strip()
        if not token:
            raise UsageError(f"--token-file {path}: empty")
        return token
    return os.environ.get("VITKIT_SERVE_TOKEN") or None
