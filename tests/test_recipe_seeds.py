"""benchmarks/recipe_seeds.py keeps finished runs by arm and seed and summarises them: means over
seeds, the minute a threshold was first reached, and each arm against the base arm paired by seed."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "recipe_seeds.py"


def fake_run(folder: Path, seed: int, top1s: list[float], finished: bool = True) -> Path:
    """A run folder as `vitkit train` writes it: one evaluation a minute after the start record."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"run": {"seed": seed}, "data": {"auto_augment": None}}))
    t0 = 1000.0
    rows = [{"kind": "start", "time": t0, "device": "Test CPU | AVX2 | 2 threads"}]
    for e, acc in enumerate(top1s, 1):
        rows.append({"kind": "step", "epoch": e, "step": e * 10, "loss": 1.0, "time": t0 + 60 * e - 30})
        rows.append({"kind": "epoch", "epoch": e, "top1": acc, "time": t0 + 60 * e})
    if finished:
        rows.append({"kind": "end", "status": "finished", "time": t0 + 60 * len(top1s) + 6})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)
    assert (out.returncode == 0) == ok, out.stderr
    return out


def test_keeps_runs_by_seed_and_compares_arms_paired(tmp_path):
    kept = tmp_path / "kept"
    plain = [fake_run(tmp_path / f"p{s}", s, [70.0, 79.0, 80.0 + s]) for s in range(3)]
    lever = [fake_run(tmp_path / f"l{s}", s, [60.0, 75.0, 81.0 + s]) for s in (0, 1)]
    run(str(kept), "--keep", *map(str, plain), "--arm", "plain")
    out = run(str(kept), "--keep", *map(str, lever), "--arm", "lever", "--base", "plain").stdout
    kept_rows = [json.loads(x) for x in (kept / "plain" / "seed2" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in kept_rows] == ["start", "epoch", "epoch", "epoch", "end"]  # step rows dropped
    assert yaml.safe_load((kept / "lever" / "seed1" / "config.yaml").read_text())["run"]["seed"] == 1
    assert "cpu: Test CPU | AVX2 | 2 threads" in out
    # plain finals 80, 81, 82: mean 81, std 1; 80% first at the third evaluation (minute 3), lever never
    assert re.search(r"plain:\n  seed 0: 80\.00% after 3 epochs in 3\.1 min; 80% at minute 3\.0", out)
    assert "final top-1: 81.00 ± 1.00 (n=3, 95% [78.52, 83.48])" in out
    assert "seed 1: 82.00% after 3 epochs in 3.1 min; 80% at minute 3.0" in out
    # lever 81, 82 against plain's same seeds 80, 81: +1 on both, std 0 (seed 2 has no pair)
    assert "lever − plain, paired by seed: 1.00 ± 0.00 (n=2, 95% [1.00, 1.00]) points" in out
    threshold = run(str(kept), "--threshold", "75").stdout
    assert "lever:\n  seed 0: 81.00% after 3 epochs in 3.1 min; 75% at minute 2.0" in threshold


@pytest.mark.parametrize("case", ["unfinished", "no_arm", "bad_base", "missing", "not_a_run", "broken_kept"])
def test_bad_input_is_one_line_and_keeps_nothing_half_done(tmp_path, case):
    kept = tmp_path / "kept"
    good = fake_run(tmp_path / "good", 0, [50.0, 60.0])
    run(str(kept), "--keep", str(good), "--arm", "plain")
    before = (kept / "plain" / "seed0" / "metrics.jsonl").read_text()
    args = {"unfinished": ["--keep", str(fake_run(tmp_path / "half", 1, [40.0], finished=False)), "--arm", "plain"],
            "no_arm": ["--keep", str(good)],
            "bad_base": ["--base", "nosuch"],
            "missing": [],
            "not_a_run": ["--keep", str(tmp_path), "--arm", "plain"],
            "broken_kept": []}[case]
    if case == "broken_kept":  # a folder put there by hand, not by --keep: its run never ended
        fake_run(kept / "lever" / "seed3", 3, [40.0], finished=False)
    folder = str(tmp_path / "absent") if case == "missing" else str(kept)
    out = run(folder, *args, ok=False)
    assert "Traceback" not in out.stderr
    # one line names the problem: the last (argparse prints its usage lines above it)
    assert {"unfinished": "has not finished", "no_arm": "--keep needs --arm", "bad_base": "--base nosuch",
            "missing": "no such folder", "not_a_run": "not a vitkit run folder",
            "broken_kept": "seed3: not a kept finished run"}[case] in out.stderr.strip().splitlines()[-1]
    assert not (kept / "plain" / "seed1").exists()
    assert (kept / "plain" / "seed0" / "metrics.jsonl").read_text() == before
