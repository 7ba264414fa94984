"""What the machine can do fast: CPU flags, native bf16, and the precision / attention path to use.

    from vitkit.hardware import describe_cpu, resolve_precision
    print(describe_cpu())                          # "AMD EPYC ... | AVX2 AVX-512 AVX512-BF16 VNNI | 2 threads"
    resolve_precision("auto", torch.device("cpu")) # "bf16" where the CPU has native bf16, else "fp32"

Why it matters: on a CPU with AVX-512 BF16 or AMX a bf16 GEMM runs ~4x an fp32 one; on an AVX2-only
CPU bf16 is emulated and slower than fp32. So "auto" must follow the hardware, and every speed
figure must be printed next to these flags (absolute times from different CPUs do not compare).
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

_SHOWN = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
          ("avx512_vnni", "VNNI"), ("avx_vnni", "AVX-VNNI"), ("amx_bf16", "AMX-BF16"), ("amx_int8", "AMX-INT8"))
PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matrix products in hardware (else they are emulated, slower)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def describe_cpu() -> str:
    """One line to print beside every speed figure."""
    flags = cpu_flags()
    shown = " ".join(label for flag, label in _SHOWN if flag in flags) or "no AVX2"
    return f"{cpu_model()} | {shown} | {torch.get_num_threads()} threads | torch {torch.__version__}"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} | torch {torch.__version__}"
    return describe_cpu()


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" → "bf16" on CUDA and on CPUs with native bf16, "fp32" elsewhere."""
    if precision not in PRECISIONS:
        from .errors import UsageError
        raise UsageError(f"precision {precision!r}: choose {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def resolve_attention(impl: str, device: torch.device) -> bool:
    """Whether attention uses SDPA (True) or the explicit softmax(QKᵀ)V path (False).

    "auto": SDPA on CUDA (flash / memory-efficient kernels); the explicit path on the CPU, where
    for ViT-length sequences it was faster in every case measured (benchmarks/bench_train_step.py):
    PyTorch's CPU flash-attention backward in bf16 took 42% of a ViT-Ti/4 training step.
    """
    if impl not in ("auto", "sdpa", "explicit"):
        from .errors import UsageError
        raise UsageError(f"run.attention={impl!r}: choose auto, sdpa or explicit")
    if impl == "auto":
        return device.type != "cpu"
    return impl == "sdpa"


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision ("fp32" → no autocast)."""
    import contextlib

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
