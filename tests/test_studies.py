"""The seeds' studies (studies/): each runs end to end in --smoke mode (rows, summary.md, figure),
a study continues where it stopped, and the statistics are right."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))

from stats import describe, paired  # noqa: E402

from test_train import ENV  # noqa: E402


def _study(name: str, data: Path, out: Path, seeds: int):
    return subprocess.run([sys.executable, str(ROOT / "studies" / f"{name}.py"), "--data", str(data), "--out", str(out),
                           "--seeds", str(seeds), "--smoke", "--workers", "0"], capture_output=True, text=True,
                          env=ENV, timeout=600)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name, arms", [("data_hunger", 8), ("relative_position", 6), ("distillation", 8)])
def test_study_smoke_writes_rows_summary_and_figure(cifar_small, tmp_path, name, arms):
    r = _study(name, cifar_small, tmp_path / name, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(tmp_path / name)
    assert len(rows) == arms and all(row["smoke"] and row["study"] == name for row in rows)
    for key in ("arm", "data_fraction", "phase", "seed", "top1", "wall_s", "epochs", "steps", "machine", "torch", "commit"):
        assert all(key in row for row in rows), key
    summary = (tmp_path / name / "summary.md").read_text()
    assert summary.count("\n| ") == arms + 2 and (tmp_path / name / "figure.png").stat().st_size > 5000
    if name == "relative_position":
        assert all(0 <= row["shift_changed_pct"] <= 100 and 0 <= row["shift_top1"] <= 100 for row in rows)
    if name == "distillation":  # the student arms report each head; their mean is what the model predicts
        students = [row for row in rows if row["phase"] == "train"]
        assert len(students) == 6 and all(row["top1_both"] == pytest.approx(row["top1"]) for row in students)
        assert {row["arm"] for row in rows if row["phase"] == "teacher"} == {"cnn_teacher"}
    if name == "data_hunger":
        assert sorted({row["data_fraction"] for row in rows}) == [0.1, 0.25, 0.5, 1.0]


def test_a_study_continues_where_it_stopped(cifar_small, tmp_path):
    out = tmp_path / "rp"
    assert _study("relative_position", cifar_small, out, 1).returncode == 0
    first = _rows(out)
    partial = out / "runs" / "abs_learned-f1-train-s1"  # a run killed half-way: trained again from the start
    partial.mkdir(parents=True)
    (partial / "junk").write_text("half a run")
    r = _study("relative_position", cifar_small, out, 2)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(out)
    assert rows[:6] == first and len(rows) == 12 and {row["seed"] for row in rows[6:]} == {1}
    assert r.stdout.count("seed 0") == 0 and not (partial / "junk").exists()  # seed 0 not trained again
    assert "(n=2, 95% [" in (out / "summary.md").read_text()


def test_statistics_by_hand():
    d = describe([70.0, 72.0, 74.0])  # mean 72, std 2, t(0.975, 2) = 4.303
    assert d["mean"] == 72.0 and d["std"] == pytest.approx(2.0) and d["n"] == 3
    assert (d["lo"], d["hi"]) == pytest.approx((72 - 4.303 * 2 / math.sqrt(3), 72 + 4.303 * 2 / math.sqrt(3)))
    diff = paired({0: 71.0, 1: 73.0, 2: 75.0, 3: 99.0}, {0: 70.0, 1: 71.0, 2: 72.0})  # seed 3 has no partner
    assert diff["n"] == 3 and diff["mean"] == pytest.approx(2.0) and diff["std"] == pytest.approx(1.0)
    assert describe([5.0])["std"] is None and describe([])["n"] == 0
