"""Batch resizing for progressive training (data.progressive), as two small GEMMs.

    python benchmarks/bench_data_path.py    # ms per batch of this and of F.interpolate

Bilinear interpolation, antialiased or not, is linear and separable: each output row is a fixed
weighted sum of input rows, each output column of input columns. So a resize from (H, W) to
(h, w) is `A_h @ x @ A_w.T` with A_h (h, H) and A_w (w, W), and the matrices are read off
F.interpolate itself by resizing an identity along one axis: the result equals F.interpolate up
to float summation order (tests/test_fast_path.py), whatever its kernel does at the borders.
Why: on 2 cores of an AMD EPYC (nothing beside it) F.interpolate(antialias=True) took 1.97 ms
for a (256, 3, 32, 32) batch to 24 px, the GEMMs 1.11 ms; it also takes bf16, which the CPU
antialias kernel does not.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n_out, n_in): row i holds the weights of output pixel i along one axis, as F.interpolate
    (bilinear, antialias=True, align_corners=False) computes them."""
    eye = torch.eye(n_in, dtype=torch.float64).view(1, 1, n_in, n_in)
    # Resize rows only (columns keep n_in: at scale 1 the kernel is the identity): column k of
    # the output is the response to an impulse at input row k, i.e. column k of the matrix.
    a = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return a.to(dtype=dtype, device=device)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) floating → (B, C, size, size), antialiased when shrinking (progressive resizing).
    Equal to F.interpolate(x, (size, size), mode="bilinear", antialias=True) up to rounding."""
    B, C, H, W = x.shape
    if H == size and W == size:
        return x
    if x.dtype not in (torch.float32, torch.float64):  # half types: sums in float32 (F.interpolate's
        return resize_batch(x.float(), size).to(x.dtype)  # antialias has no bf16 kernel on CPU)
    a_h = resize_matrix(H, size, x.dtype, x.device)  # (size, H)
    a_w = resize_matrix(W, size, x.dtype, x.device)  # (size, W)
    y = x.reshape(B * C * H, W) @ a_w.T  # (B·C·H, size): the columns, one GEMM
    y = y.view(B * C, H, size).transpose(1, 2).reshape(B * C * size, H) @ a_h.T  # (B·C·size_w, size_h)
    return y.view(B, C, size, size).transpose(2, 3).contiguous()  # (B, C, size, size)
