"""Progressive training: early steps at a lower resolution and with PatchDropout (fewer tokens,
cheaper steps), the last ones as the test-time model runs.

    data: {progressive: [24, 32], progressive_end: 0.5}   # 24 px for the first half, then 32 px

A ViT takes any size that the patch divides: the position table is resampled to the smaller grid
(as at test time), so the weights learnt at 24 px carry over to 32 px. At 24 px / patch 4 a
ViT-Ti step handles 36 instead of 64 patch tokens and ran ~2x faster on the 2-core CPU.

    model: {patch_dropout: 0.5, patch_dropout_end: 0.85}  # every token for the last 15%
"""
from __future__ import annotations

from ..errors import UsageError


def check_progressive(sizes: list[int] | None, end: float, final_size: int, patch: int | None,
                      name: str = "data.progressive") -> None:
    """One-line errors for sizes a model cannot take, before any work starts (`name`: where the
    sizes were set)."""
    if not sizes:
        return
    if not 0.0 < end <= 1.0:
        raise UsageError(f"data.progressive_end must be in (0, 1], got {end}")
    for s in sizes:
        if s <= 0 or (patch and s % patch):
            raise UsageError(f"{name} size {s} is not a positive multiple of the patch size {patch}")
    if sizes[-1] != final_size:
        raise UsageError(f"{name} must end at the training size {final_size}, got {sizes}")


def size_at(sizes: list[int] | None, end: float, progress: float, final_size: int) -> int:
    """The training size at `progress` ∈ [0, 1] of the run.

    The sizes before the last share [0, end) equally; the last (the model's size) runs from `end`
    on: [24, 32] with end 0.5 is 24 px for the first half; [16, 24, 32] with end 0.6 is 16 px
    until 0.3, 24 px until 0.6, then 32 px.
    """
    if not sizes or len(sizes) == 1 or progress >= end:
        return final_size
    return sizes[min(len(sizes) - 2, int(progress / end * (len(sizes) - 1)))]


def patch_dropout_at(rate: float, end: float, progress: float) -> float:
    """The PatchDropout rate at `progress` ∈ [0, 1] of the run: `rate` before `end`, then 0."""
    return rate if progress < end else 0.0
