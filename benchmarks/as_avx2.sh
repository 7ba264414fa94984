#!/bin/bash
# Run a command as if on an AVX2-only CPU (no AVX-512, no native bf16) on an AVX-512 machine.
#
#   benchmarks/as_avx2.sh python benchmarks/cpu_probe.py
#   benchmarks/as_avx2.sh vitkit train --config recipes/cifar10_vit_cpu_60min.yaml --data /tmp/c10 --out /tmp/run
#
# It caps the ISA of every math library the training step uses: MKL (fp32 GEMM), oneDNN
# (convolutions, bf16 GEMM) and ATen's element-wise kernels. `run.precision: auto` then picks fp32
# and every printed CPU line says "capped: ..." (src/vitkit/hardware.py).
# What it is not: an AVX2 CPU's speed. On the Xeon of 2026-12-02 the capped fp32 probe gave
# 209.8 GFLOP/s against 121-135 on the AVX2 EPYC, and the speed-run model step ran 1.3-1.5x the
# EPYC's img/s. So only pairs run under it at equal time compare (a lever against its base),
# never its absolute minutes or accuracy against a real AVX2 machine's.
if [ $# -eq 0 ]; then
  echo "as_avx2.sh: no command given (e.g. benchmarks/as_avx2.sh python benchmarks/cpu_probe.py)" >&2
  exit 2
fi
export MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
exec "$@"
