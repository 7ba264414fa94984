"""benchmarks/bench_batch_augment.py runs every augmentation setting on the recipe's batch and
prints a cost line for each (the figures themselves are the benchmark's, not asserted here)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_prints_one_cost_line_per_setting():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_batch_augment.py"),
                          "--recipe", str(ROOT / "recipes" / "cifar10_vit_cpu_60min.yaml"),
                          "--images", "512", "--reps", "1", "--steps", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.startswith("cpu: ")
    step = float(re.search(r"training step .*: ([0-9.]+) ms per batch", out).group(1))
    rows = re.findall(r"^(crop\+flip only|\+ [^\n]+?)\s+([0-9.]+) ms/batch\s+\(\+\s*(-?[0-9.]+) over crop\+flip\)\s+([0-9.]+)% of a step$",
                      out, re.M)
    assert [r[0] for r in rows] == ["crop+flip only", "+ random erasing 0.25", "+ trivialaugment",
                                    "+ randaugment 2 ops, m9", "+ trivialaugment + erasing 0.25",
                                    "+ mixup 0.8 / cutmix 1.0"]
    assert step > 0 and all(float(ms) > 0 for _, ms, _, _ in rows)
    assert float(rows[0][2]) == 0.0  # the first row is the baseline the others are read against
    for _, ms, _, share in rows:  # the share is the printed ms over the printed step, rounded
        assert abs(float(share) - 100 * float(ms) / step) < 0.1 + 0.01 * float(share)
