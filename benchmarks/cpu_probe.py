"""How fast this machine is *right now*: fp32 GEMM GFLOP/s and copy bandwidth, in ~10 seconds.

    python benchmarks/cpu_probe.py                 # both cores; prints one line per figure
    python benchmarks/cpu_probe.py --threads 1 --json /tmp/probe.json

Why: on a shared VM the same CPU model runs at very different speeds from one hour to the next
(2026-12-01 on one AVX2 EPYC VM: the speed-run ViT trained at 527–544 img/s at 12:40 UTC and at
345–373 img/s at 16:00 and 19:30, the hypervisor's steal time under 1%). A time-budgeted recipe
then measures the VM, not the recipe. Run this probe right before such a run and print it beside
the result: two figures compare only when their probes do (a few percent apart), whatever the
CPU's name says.

Shapes: the GEMM of the speed-run ViT's MLP at 32 px (batch 256 × 65 tokens, 192 → 384: what the
training step spends most of its time in) and a square 1024 GEMM (the compute peak); the copy is
256 MiB (memory bandwidth, beyond every cache).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vitkit.hardware import describe_cpu  # noqa: E402

GEMMS = {"vit_mlp_16640x192x384": (16640, 192, 384), "square_1024": (1024, 1024, 1024)}


def _rate(fn, work: float, seconds: float) -> float:
    """work units per second of `fn`, the best of repeated ~0.2 s windows over `seconds` (best, not
    mean: a neighbour's burst slows some windows, and the probe asks what the machine can do now)."""
    fn()  # warm-up: oneDNN picks its kernels on the first call
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.2:
            fn()
            n += 1
        best = max(best, n * work / (time.perf_counter() - t0))
    return best


def probe(threads: int, seconds: float) -> dict:
    torch.set_num_threads(threads)
    out = {"cpu": describe_cpu(), "torch": torch.__version__, "threads": threads,
           "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, (m, k, n) in GEMMS.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        c = torch.empty(m, n)
        out[f"gemm_{name}_gflops"] = round(_rate(lambda: torch.mm(a, b, out=c), 2 * m * k * n / 1e9, seconds), 1)
    src = torch.randn(64 * 2**20)  # 256 MiB of fp32
    dst = torch.empty_like(src)
    # read + write of 256 MiB each
    out["copy_gib_s"] = round(_rate(lambda: dst.copy_(src), 2 * src.numel() * 4 / 2**30, seconds), 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seconds", type=float, default=3.0, help="per figure (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    if a.threads < 1 or a.seconds <= 0:
        p.error("--threads must be >= 1 and --seconds > 0")
    out = probe(a.threads, a.seconds)
    for key, value in out.items():
        print(f"{key}: {value}")
    if a.json:
        a.json.write_text(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
