"""`vitkit serve` under load, against `predict_files` in-process on the same images.

    python benchmarks/bench_serve.py --data /tmp/c10 [--model cifar10_vit_tiny] [--soak 60]

Claims it checks: dynamic batching raises throughput at concurrency 16 and 64 over batching off
(--max-batch 1); the HTTP server's throughput as a ratio of in-process `predict_files` (batch 32)
on the same machine; 64 clients for `--soak` seconds with zero errors and the server's resident
memory at the end within 10% of that after warm-up. Statistic: one run per row (images/s over all
requests; p50/p99 of per-request latency). Prints the CPU flags first; figures from different
machines do not compare.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

import vitkit
from vitkit.hardware import describe_cpu
from vitkit.inference.predict import predict_files


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, *args) -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "vitkit", "serve", model, "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(proc.stderr.read().decode())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, bodies: list[bytes], clients: int, seconds: float | None = None, per_client: int = 0):
    """Each client posts images in turn (`per_client` requests, or until `seconds` pass)."""
    lat, errors, lock = [], [], threading.Lock()
    end = time.perf_counter() + seconds if seconds else None

    def client(k: int):
        with httpx.Client(timeout=120) as c:
            i = 0
            while (end is None and i < per_client) or (end is not None and time.perf_counter() < end):
                body = bodies[(k * 7919 + i) % len(bodies)]
                t0 = time.perf_counter()
                try:
                    r = c.post(url + "/predict", content=body, headers={"Content-Type": "image/jpeg"})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    (lat if ok else errors).append(time.perf_counter() - t0)
                i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    lat.sort()
    return {"img_s": len(lat) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "errors": len(errors), "requests": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with test/<class>/*.jpg")
    ap.add_argument("--model", default="cifar10_vit_tiny")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--requests", type=int, default=256, help="requests per concurrency level")
    ap.add_argument("--soak", type=float, default=60.0, help="seconds of 64 clients at the end (0: skip)")
    args = ap.parse_args()
    print(describe_cpu(), flush=True)
    paths = sorted(str(p) for p in Path(args.data, "test").rglob("*.jpg"))[:args.images]
    bodies = [open(p, "rb").read() for p in paths]
    model = vitkit.load_model(args.model)
    predict_files(model, paths[:32], batch_size=32)  # warm-up
    t0 = time.perf_counter()
    predict_files(model, paths, batch_size=32)
    inproc = len(paths) / (time.perf_counter() - t0)
    print(f"in-process predict_files, batch 32: {inproc:.1f} img/s", flush=True)
    for label, extra in (("batching on (max-batch 32, 5 ms)", ["--max-batch", "32", "--max-wait-ms", "5"]),
                         ("batching off (max-batch 1)", ["--max-batch", "1"])):
        proc, url = start(args.model, *extra)
        load(url, bodies, 8, per_client=8)  # warm-up
        for clients in (1, 16, 64):
            r = load(url, bodies, clients, per_client=max(1, args.requests // clients))
            print(f"{label:34s} c={clients:2d}: {r['img_s']:7.1f} img/s ({r['img_s'] / inproc:.2f}× in-process)  "
                  f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}", flush=True)
        if args.soak and "32" in extra:
            load(url, bodies, 64, seconds=5)
            rss0 = rss_mb(proc.pid)
            r = load(url, bodies, 64, seconds=args.soak)
            rss1 = rss_mb(proc.pid)
            print(f"soak, 64 clients × {args.soak:g} s: {r['requests']} requests, {r['errors']} errors, "
                  f"{r['img_s']:.1f} img/s, RSS {rss0:.0f} → {rss1:.0f} MB ({100 * (rss1 / rss0 - 1):+.1f}%)", flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
