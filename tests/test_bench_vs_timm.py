"""benchmarks/bench_vs_timm.py over seeds: finished runs are kept, half-finished ones are started
again, and the summary's means, spreads and ratios are those of the runs' final evaluations."""
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

from vitkit.viz.runs import run_labels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_vs_timm", ROOT / "benchmarks" / "bench_vs_timm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_run(run: Path, accs: list[float], finished: bool, launch: float = 1000.0) -> None:
    """A run folder as timm_loop.py or vitkit train leaves it: one epoch record every 6 minutes."""
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "launch.json").exists():  # the benchmark writes its own when it launches the run
        (run / "launch.json").write_text(json.dumps({"time": launch}))
    rows = [{"kind": "start", "time": launch + 5}] + [
        {"kind": "epoch", "epoch": i + 1, "top1": a, "time": launch + 360 * (i + 1)} for i, a in enumerate(accs)]
    if finished:
        rows.append({"kind": "end", "status": "finished", "time": rows[-1]["time"]})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def fake_runner(launched: list, accs, check=None):
    """subprocess.run for the benchmark: records each command; a training command leaves a run
    with `accs(cmd)` as its curve, clocked from the launch.json the benchmark wrote first."""
    def run(cmd, **kw):
        launched.append(cmd)
        if "viz" in cmd:
            return
        out = Path(cmd[cmd.index("--out") + 1])
        if check:
            check(out)
        write_run(out, accs(cmd), finished="train" in cmd, launch=json.loads((out / "launch.json").read_text())["time"])
    return run


FINALS = {0: (60.0, 75.0), 1: (61.0, 74.0), 2: (59.5, 76.5)}  # seed: (timm loop, vitkit)


def test_summary_over_seeds_from_finished_runs(bench, tmp_path, monkeypatch):
    for s, (tl, vk) in FINALS.items():
        write_run(tmp_path / f"seed{s}" / "timm_loop", [40.0, 50.0, 55.0, 58.0, tl], finished=False)
        write_run(tmp_path / f"seed{s}" / "vitkit", [57.0, 72.0, vk], finished=True)
    launched = []
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: launched.append(cmd))
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "unused", "--out", str(tmp_path), "--seeds", "3"])
    bench.main()
    # Every run was finished, so only the figure was drawn (one `vitkit viz curves` call).
    assert len(launched) == 1 and launched[0][3:5] == ["viz", "curves"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    timm, vk = [f[0] for f in FINALS.values()], [f[1] for f in FINALS.values()]
    assert summary["top1"]["timm loop"]["mean"] == pytest.approx(statistics.fmean(timm))
    assert summary["top1"]["vitkit"]["std"] == pytest.approx(statistics.stdev(vk))
    ratios = [v / t for t, v in FINALS.values()]
    assert summary["ratio_per_seed"] == {str(s): pytest.approx(r) for s, r in zip(FINALS, ratios)}
    assert summary["ratio"]["mean"] == pytest.approx(statistics.fmean(ratios))
    assert summary["ratio"]["lo"] < summary["ratio"]["mean"] < summary["ratio"]["hi"]
    # Minutes run from the launch, not from the run's own start record.
    assert summary["curves"]["0"]["vitkit"][-1] == [pytest.approx(18.0), 75.0]


def test_half_finished_runs_start_again_with_their_seed(bench, tmp_path, monkeypatch):
    write_run(tmp_path / "seed0" / "timm_loop", [40.0] * 5, finished=False)
    write_run(tmp_path / "seed0" / "vitkit", [57.0], finished=False)  # killed mid-run: no "end"
    (tmp_path / "seed0" / "vitkit" / "last.pt").write_bytes(b"partial")
    launched = []

    def fake_run(cmd, **kw):
        launched.append(cmd)
        if "train" in cmd:
            out = Path(cmd[cmd.index("--out") + 1])
            assert not (out / "last.pt").exists()  # the broken run was cleared first
            write_run(out, [57.0, 70.0], finished=True, launch=json.loads((out / "launch.json").read_text())["time"])

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "/d", "--out", str(tmp_path), "--set", "optim.lr=1e-3"])
    bench.main()
    train = [c for c in launched if "train" in c]
    assert len(train) == 1 and not any("timm_loop.py" in " ".join(c) for c in launched)
    assert train[0][-4:] == ["--set", "run.seed=0", "--set", "optim.lr=1e-3"]


def test_run_labels_name_the_seed_when_folder_names_repeat(tmp_path):
    assert run_labels([tmp_path / "timm_loop", tmp_path / "vitkit"]) == ["timm_loop", "vitkit"]
    assert run_labels([tmp_path / "seed0" / "vitkit", tmp_path / "seed1" / "vitkit"]) == ["seed0/vitkit", "seed1/vitkit"]


def test_a_reused_run_that_is_not_finished_is_refused_and_kept(bench, tmp_path, monkeypatch, capsys):
    mine = tmp_path / "my_run"
    write_run(mine, [57.0], finished=False)
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: pytest.fail("nothing may run"))
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "/d", "--out", str(tmp_path / "o"),
                                      "--reuse-vitkit", str(mine)])
    with pytest.raises(SystemExit) as e:
        bench.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "not a finished vitkit run" in err[-1]
    assert (mine / "metrics.jsonl").exists()  # the user's folder is untouched


def test_keep_copies_finished_curves_and_a_later_session_runs_only_the_next_seed(bench, tmp_path, monkeypatch):
    """--keep: seed 0's pair, finished in an earlier session, is read from the committed folder
    (its weights long gone); only seed 1 runs, and its curves land in the folder as it ends."""
    kept, out = tmp_path / "kept", tmp_path / "out"
    write_run(kept / "seed0" / "timm_loop", [40.0, 50.0, 55.0, 58.0, 60.0], finished=False)
    write_run(kept / "seed0" / "vitkit", [57.0, 72.0, 75.0], finished=True)
    launched = []

    def check(run):
        assert run.parent == out / "seed1"  # new runs go to --out, never into the committed folder
        (run / "last.pt").write_bytes(b"weights")

    def accs(cmd):
        return [45.0, 52.0, 56.0, 59.0, 61.0] if "timm_loop.py" in " ".join(cmd) else [58.0, 73.0, 76.0]

    monkeypatch.setattr(bench.subprocess, "run", fake_runner(launched, accs, check))
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "/d", "--out", str(out), "--seeds", "2",
                                      "--keep", str(kept)])
    bench.main()
    ran = [c for c in launched if "viz" not in c]
    assert len(ran) == 2 and all("--seed" in c and c[c.index("--seed") + 1] == "1" or "run.seed=1" in c for c in ran)
    for runner in ("timm_loop", "vitkit"):
        names = sorted(p.name for p in (kept / "seed1" / runner).iterdir())
        assert names == ["launch.json", "metrics.jsonl"]  # the curve and its clock, not the weights
        assert "cpu" in json.loads((kept / "seed1" / runner / "launch.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ratio_per_seed"] == {"0": pytest.approx(75 / 60), "1": pytest.approx(76 / 61)}
    assert summary["runs"]["0"]["vitkit"] == str(kept / "seed0" / "vitkit")


def test_vitkit_from_runs_only_timm_loops_against_kept_vitkit_runs(bench, tmp_path, monkeypatch):
    """--vitkit-from: the equal-time peer for pairs kept earlier — every seed's vitkit run is read
    from the other kept folder (not copied), only the timm loops missing from --keep run."""
    pairs, kept, out = tmp_path / "pairs", tmp_path / "timm8", tmp_path / "out"
    for s, vk in ((0, 75.0), (1, 74.0)):
        write_run(pairs / f"seed{s}" / "vitkit", [57.0, 72.0, vk], finished=True)
    write_run(kept / "seed0" / "timm_loop", [40.0 + i for i in range(8)], finished=False)
    launched = []
    monkeypatch.setattr(bench.subprocess, "run", fake_runner(launched, lambda cmd: [45.0 + i for i in range(8)]))
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "/d", "--out", str(out), "--seeds", "2",
                                      "--timm-epochs", "8", "--keep", str(kept), "--vitkit-from", str(pairs)])
    bench.main()
    ran = [c for c in launched if "viz" not in c]
    assert len(ran) == 1 and "timm_loop.py" in " ".join(ran[0]) and ran[0][ran[0].index("--epochs") + 1] == "8"
    assert ran[0][ran[0].index("--seed") + 1] == "1"
    assert sorted(p.name for p in (kept / "seed1").iterdir()) == ["timm_loop"]  # vitkit curves not duplicated
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ratio_per_seed"] == {"0": pytest.approx(75 / 47), "1": pytest.approx(74 / 52)}
    assert summary["runs"]["1"]["vitkit"] == str(pairs / "seed1" / "vitkit")


def test_vitkit_from_without_a_finished_seed_is_refused_before_anything_runs(bench, tmp_path, monkeypatch, capsys):
    pairs = tmp_path / "pairs"
    write_run(pairs / "seed0" / "vitkit", [57.0, 75.0], finished=True)
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: pytest.fail("nothing may run"))
    monkeypatch.setattr(sys, "argv", ["bench_vs_timm.py", "--data", "/d", "--out", str(tmp_path / "o"), "--seeds", "3",
                                      "--vitkit-from", str(pairs)])
    with pytest.raises(SystemExit) as e:
        bench.main()
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].endswith("no finished vitkit run for seed(s) 1, 2")
    assert not (tmp_path / "o").exists()
