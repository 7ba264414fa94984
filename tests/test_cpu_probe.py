"""benchmarks/cpu_probe.py: its rate arithmetic (work per second of a known-duration call), what it
writes, and its refusal of bad arguments. The machine's speed itself is a benchmark figure, not a test."""
import importlib.util
import json
import time
from pathlib import Path

import pytest

from vitkit.hardware import describe_cpu

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def probe_mod():
    spec = importlib.util.spec_from_file_location("cpu_probe", ROOT / "benchmarks" / "cpu_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rate_is_work_per_second_of_the_best_window(probe_mod):
    # a call of 10 ms doing 3 units of work: 300 units/s, never more (sleep only overshoots)
    rate = probe_mod._rate(lambda: time.sleep(0.01), 3.0, seconds=0.5)
    assert 200 < rate <= 300


def test_probe_writes_every_figure_beside_the_cpu(probe_mod, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert probe_mod.main(["--threads", "1", "--seconds", "0.05", "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["cpu"] == describe_cpu() and row["threads"] == 1
    figures = {k: v for k, v in row.items() if k.endswith(("_gflops", "_gib_s"))}
    assert set(figures) == {"gemm_vit_mlp_16640x192x384_gflops", "gemm_square_1024_gflops", "copy_gib_s"}
    assert all(v > 0 for v in figures.values())
    printed = capsys.readouterr().out
    assert all(f"{k}: {v}" in printed for k, v in row.items())


@pytest.mark.parametrize("args", [["--threads", "0"], ["--seconds", "0"]])
def test_bad_arguments_are_a_usage_error(probe_mod, args):
    with pytest.raises(SystemExit) as e:
        probe_mod.main(args)
    assert e.value.code == 2
