"""Statistics of study rows: mean, standard deviation, n, 95% interval by the t distribution, and
the paired difference of an arm to the reference arm over the seeds both have."""
from __future__ import annotations

import math
import statistics

# Two-sided 95% quantiles of Student's t, df = 1..30 (beyond: 1.96 is within 2% of the truth).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def t975(df: int) -> float:
    return T975[df - 1] if 1 <= df <= len(T975) else 1.96


def describe(values: list[float]) -> dict:
    """mean, std (n-1), n and the 95% t interval of the mean (None for n < 2)."""
    n = len(values)
    mean = statistics.fmean(values) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": None, "n": n, "lo": None, "hi": None}
    std = statistics.stdev(values)
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "lo": mean - half, "hi": mean + half}


def paired(arm: dict[int, float], ref: dict[int, float]) -> dict:
    """arm − ref over shared seeds ({seed: top1}): the interval of the mean paired difference."""
    seeds = sorted(set(arm) & set(ref))
    return describe([arm[s] - ref[s] for s in seeds])


def fmt(d: dict, digits: int = 2) -> str:
    if d["n"] == 0:
        return "–"
    if d["std"] is None:
        return f"{d['mean']:.{digits}f} (n=1)"
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f} (n={d['n']}, 95% [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}])"
