"""What the machine can do fast: CPU flags, native bf16, and the precision / attention path to use.

    from vitkit.hardware import describe_cpu, resolve_precision
    print(describe_cpu())                          # "AMD EPYC ... | AVX2 AVX-512 AVX512-BF16 VNNI | 2 threads"
    resolve_precision("auto", torch.device("cpu")) # "bf16" where the CPU has native bf16, else "fp32"

Why it matters: on a CPU with AVX-512 BF16 or AMX a bf16 GEMM runs ~4x an fp32 one; on an AVX2-only
CPU bf16 is emulated and slower than fp32. So "auto" must follow the hardware, and every speed
figure must be printed next to these flags (absolute times from different CPUs do not compare).

The trap: /proc/cpuinfo lists what the silicon has, not what the libraries may use. With
`ONEDNN_MAX_CPU_ISA=AVX2` (how an AVX2-only CPU is stood in for on an AVX-512 one:
benchmarks/as_avx2.sh) oneDNN's bf16 GEMM falls back to emulation, so "auto" must pick fp32 there,
and the printed line must say the ISA was capped.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

_SHOWN = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
          ("avx512_vnni", "VNNI"), ("avx_vnni", "AVX-VNNI"), ("amx_bf16", "AMX-BF16"), ("amx_int8", "AMX-INT8"))
PRECISIONS = ("auto", "fp32", "bf16")
# Variables that cap the x86 ISA the math libraries use (oneDNN: convolutions and bf16 GEMM; ATen:
# element-wise kernels; MKL: fp32 GEMM), printed beside the flags when set.
_ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
# oneDNN ISA levels without bf16 dot products in hardware (those start at AVX512_CORE_BF16).
_ONEDNN_BELOW_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                "AVX512_CORE_VNNI"})


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


def isa_caps() -> dict[str, str]:
    """The ISA caps set in the environment, e.g. {"ONEDNN_MAX_CPU_ISA": "AVX2"} ("ALL" is no cap)."""
    caps = {var: os.environ.get(var, "").strip() for var in _ISA_CAPS}
    return {var: v for var, v in caps.items() if v and v.upper() != "ALL"}


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX that oneDNN may use: bf16 matrix products in hardware (else emulated, slower)."""
    # oneDNN reads ONEDNN_MAX_CPU_ISA first and DNNL_MAX_CPU_ISA only when the first is unset.
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"}) and onednn not in _ONEDNN_BELOW_BF16


def describe_cpu() -> str:
    """One line to print beside every speed figure."""
    flags = cpu_flags()
    shown = " ".join(label for flag, label in _SHOWN if flag in flags) or "no AVX2"
    caps = " ".join(f"{var}={v}" for var, v in isa_caps().items())
    capped = f" | capped: {caps}" if caps else ""
    return f"{cpu_model()} | {shown}{capped} | {torch.get_num_threads()} threads | torch {torch.__version__}"


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
