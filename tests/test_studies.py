"""The seeds' studies (studies/): each runs end to end in --smoke mode (rows, summary.md, figure),
a study continues where it stopped, and the statistics are right."""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.parametrize("name, arms", [("data_hunger", 8), ("relative_position", 6), ("distillation", 8), ("two_step", 17)])
def test_study_smoke_writes_rows_summary_and_figure(cifar_small, tmp_path, name, arms):
    r = _study(name, cifar_small, tmp_path / name, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(tmp_path / name)
    assert len(rows) == arms and all(row["smoke"] and row["study"] == name for row in rows)
    for key in ("arm", "data_fraction", "phase", "seed", "top1", "wall_s", "epochs", "steps", "machine", "torch", "commit"):
        assert all(key in row for row in rows), key
    for row in rows:  # the optimizer steps taken (the run's closing record), not the last logged step
        folder = tmp_path / name / "runs" / f"{row['arm']}-f{row['data_fraction']:g}-{row['phase']}-s{row['seed']}"
        steps = [r["step"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
                 if r["kind"] == "end"] if row["epochs"] else [0]
        assert row["steps"] == steps[-1] and (row["steps"] >= 1 or not row["epochs"]), (row, steps)
    summary = (tmp_path / name / "summary.md").read_text()
    # hard − soft at 10% and 100%, ft_src100 − ft_src20 at 32 and 48 px: two rows under their own header
    contrasts = 2 + 2 if name in ("distillation", "two_step") else 0
    assert summary.count("\n| ") == arms + 2 + contrasts and (tmp_path / name / "figure.png").stat().st_size > 5000
    assert summary.count("| hard − soft |") == (2 if name == "distillation" else 0)
    assert summary.count("| ft_src100 − ft_src20 |") == (2 if name == "two_step" else 0)
    if name == "relative_position":
        assert all(0 <= row["shift_changed_pct"] <= 100 and 0 <= row["shift_top1"] <= 100 for row in rows)
    if name == "distillation":  # the student arms report each head; their mean is what the model predicts
        students = [row for row in rows if row["phase"] == "train"]
        assert len(students) == 6 and all(row["top1_both"] == pytest.approx(row["top1"]) for row in students)
        assert {row["arm"] for row in rows if row["phase"] == "teacher"} == {"cnn_teacher"}
    if name == "data_hunger":
        assert sorted({row["data_fraction"] for row in rows}) == [0.1, 0.25, 0.5, 1.0]
    if name == "two_step":  # pre-training at three fractions, fine-tunes at 32 and 48 px, interpolation alone
        phases = {}
        for row in rows:
            phases.setdefault(row["phase"], set()).add((row["arm"], row["data_fraction"]))
        assert phases["pretrain"] == {("pretrain", 0.2), ("pretrain", 0.5), ("pretrain", 1.0)}
        for size in (32, 48):
            assert phases[f"target_{size}px"] == {(a, 1.0) for a in ("scratch", "ft_src20", "ft_src50", "ft_src100")}
        assert {row["img_size"] for row in rows if row["phase"] == "interpolation"} == {24, 32, 40, 48, 56, 64}


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


def test_distillation_reuses_the_data_hunger_cnn_as_its_teacher(cifar_small, tmp_path):
    """--teachers: data_hunger's finished CNN runs (same recipe, subset, seed) are the teachers; none is
    trained again, their rows are copied, and the students distil from those folders."""
    hunger = tmp_path / "data_hunger"
    assert _study("data_hunger", cifar_small, hunger, 1).returncode == 0
    (hunger / "runs" / "cnn-f0.1-train-s0" / "best.pt").unlink()  # an unfinished folder: trained here instead
    out = tmp_path / "distillation"
    r = subprocess.run([sys.executable, str(ROOT / "studies" / "distillation.py"), "--data", str(cifar_small), "--out",
                        str(out), "--seeds", "1", "--smoke", "--workers", "0", "--teachers", str(hunger)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    cnn = {row["data_fraction"]: row for row in _rows(hunger) if row["arm"] == "cnn"}
    teachers = {row["data_fraction"]: row for row in _rows(out) if row["phase"] == "teacher"}
    assert teachers[1.0]["reused_from"] == str(hunger / "runs" / "cnn-f1-train-s0")
    assert {k: teachers[1.0][k] for k in ("top1", "wall_s", "commit")} == {k: cnn[1.0][k] for k in ("top1", "wall_s", "commit")}
    assert "reused_from" not in teachers[0.1] and (out / "runs" / "cnn_teacher-f0.1-teacher-s0" / "best.pt").exists()
    assert not (out / "runs" / "cnn_teacher-f1-teacher-s0").exists()
    hard = yaml.safe_load((out / "runs" / "hard-f1-train-s0" / "config.yaml").read_text())
    assert hard["distill"]["teacher"] == str(hunger / "runs" / "cnn-f1-train-s0")
    assert len([row for row in _rows(out) if row["phase"] == "train"]) == 6


def test_statistics_by_hand():
    d = describe([70.0, 72.0, 74.0])  # mean 72, std 2, t(0.975, 2) = 4.303
    assert d["mean"] == 72.0 and d["std"] == pytest.approx(2.0) and d["n"] == 3
    assert (d["lo"], d["hi"]) == pytest.approx((72 - 4.303 * 2 / math.sqrt(3), 72 + 4.303 * 2 / math.sqrt(3)))
    diff = paired({0: 71.0, 1: 73.0, 2: 75.0, 3: 99.0}, {0: 70.0, 1: 71.0, 2: 72.0})  # seed 3 has no partner
    assert diff["n"] == 3 and diff["mean"] == pytest.approx(2.0) and diff["std"] == pytest.approx(1.0)
    assert describe([5.0])["std"] is None and describe([])["n"] == 0


def _queue_study(log: list):
    """Evaluation-only arms (nothing trained): a teacher phase, then two students that need it."""
    import threading

    from runner import Arm, Study

    def work(name):
        def after(_result, _args):
            log.append((name, threading.current_thread().name))
            time.sleep(0.05)
            return {"top1": 50.0}
        return after

    teacher = Arm("teacher", None, phase="teacher", after=work("teacher"))
    arms = [teacher, Arm("a", None, after=work("a"), needs=(teacher,)), Arm("b", None, after=work("b"), needs=(teacher,))]
    return Study("q", "claim", "a", lambda args: arms)


def _queue_args(out: Path, n: int):
    import argparse

    return argparse.Namespace(out=out, seeds=3, shard=(0, n), smoke=True, max_steps=2)


def test_processes_share_one_queue_each_run_once_students_after_their_teacher(tmp_path):
    """Two processes (threads with their own lock descriptors: flock excludes them as it does processes)
    on one study: every run exactly once, both take runs, and a seed's students start only after its
    teacher's row is written. A static split by seed would give one of them 2 seeds of 3."""
    import threading

    from runner import run_study

    log: list = []
    study = _queue_study(log)
    threads = [threading.Thread(target=run_study, args=(study, _queue_args(tmp_path, 2)), name=f"p{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    rows = _rows(tmp_path)
    keys = [(row["arm"], row["seed"]) for row in rows]
    assert sorted(keys) == sorted((arm, seed) for seed in range(3) for arm in ("teacher", "a", "b")) and len(set(keys)) == 9
    assert {who for _, who in log} == {"p0", "p1"} and len(log) == 9
    for seed in range(3):
        assert keys.index(("teacher", seed)) < min(keys.index(("a", seed)), keys.index(("b", seed)))
    assert all(row["processes"] == 2 for row in rows)


def test_a_run_waits_for_what_it_needs_only():
    """A run waits for the runs of its seed it names in `needs`, not for every earlier phase: the
    distillation study's 100% teacher once waited 16 min for a 10% student it does not read."""
    from runner import Arm, Study, jobs, ready

    teacher_10, teacher_100 = Arm("t", None, data_fraction=0.1, phase="teacher"), Arm("t", None, phase="teacher")
    student_10 = Arm("hard", None, data_fraction=0.1, needs=(teacher_10,))
    plain_10 = Arm("none", None, data_fraction=0.1)
    student_100 = Arm("hard", None, needs=(teacher_100,))
    args = _queue_args(Path("unused"), 1)
    pending = jobs(Study("q", "claim", "none", lambda a: [teacher_10, student_10, plain_10, teacher_100, student_100]), args)
    assert not ready((0, student_10), pending) and ready((0, plain_10), pending)
    assert ready((0, teacher_100), pending)  # behind a pending student of another phase, needing nothing
    done_0 = [job for job in pending if job[0] != 0 or job[1] is not teacher_10]
    assert ready((0, student_10), done_0) and not ready((1, student_10), done_0)
    stray = Arm("ft", None, needs=(Arm("pretrain", None, phase="pretrain"),))  # a need the study never runs
    with pytest.raises(ValueError, match="ft needs pretrain, which is not one of the study's arms"):
        jobs(Study("q", "claim", "ft", lambda a: [stray]), args)


def test_a_pretraining_left_on_another_machine_is_trained_again_before_its_fine_tune(tmp_path, monkeypatch):
    """runs/ is not committed: a study continued on another machine has the row of seed 0's pre-training
    but not its weights. The fine-tune that reads them must not start from a missing folder: the
    pre-training is trained again first, its row kept but marked rebuilt, and the tables count the
    first row. A pre-training no pending run reads is not trained again, nor is one whose folder is here."""
    import shutil

    import runner
    from runner import Arm, Study, by_arm, run_dir, run_study

    trained: list = []

    def fake_train(study, arm, seed, args):  # stands for vitkit.train: best.pt is what a finished run leaves
        if arm.needs:
            assert (run_dir(args.out, arm.needs[0], seed) / "best.pt").exists(), "fine-tune started without its weights"
        trained.append((arm.name, seed))
        folder = run_dir(args.out, arm, seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "best.pt").write_bytes(b"w")
        return {"study": study.name, "arm": arm.name, "data_fraction": arm.data_fraction, "phase": arm.phase,
                "seed": seed, "top1": 60.0 + len(trained), "machine": "here"}

    monkeypatch.setattr(runner, "train_arm", fake_train)
    pre = Arm("pretrain", {}, phase="pretrain")
    study = Study("q", "claim", "ft", lambda a: [pre, Arm("ft", {}, needs=(pre,))])
    run_study(study, _queue_args(tmp_path, 1))
    assert trained == [(name, s) for s in range(3) for name in ("pretrain", "ft")]
    first = {(r["arm"], r["seed"]): r["top1"] for r in _rows(tmp_path)}
    # another machine: every folder gone; the fine-tunes of seeds 0 and 2 had not finished there
    shutil.rmtree(tmp_path / "runs")
    rows = [r for r in _rows(tmp_path) if not (r["arm"] == "ft" and r["seed"] in (0, 2))]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir(tmp_path, pre, 2) / "best.pt").parent.mkdir(parents=True)
    (run_dir(tmp_path, pre, 2) / "best.pt").write_bytes(b"w")  # seed 2's weights are still here
    trained.clear()
    run_study(study, _queue_args(tmp_path, 1))
    assert trained == [("pretrain", 0), ("ft", 0), ("ft", 2)]  # seed 1: nothing pending reads it
    rows = _rows(tmp_path)
    assert [(r["arm"], r["seed"]) for r in rows if r.get("rebuilt")] == [("pretrain", 0)]
    assert by_arm(rows)[(1.0, "pretrain", "pretrain")][0]["top1"] == first[("pretrain", 0)]
    run_study(study, _queue_args(tmp_path, 1))
    assert len(trained) == 3  # nothing left: the rebuilt folder is here now
    assert "(6 runs, and 1 trained again for their weights on another machine, not counted;" in (
        tmp_path / "summary.md").read_text()


def test_a_run_another_process_holds_is_left_to_it_and_a_dead_holder_leaves_no_claim(tmp_path):
    import fcntl
    import os

    from runner import Arm, run_dir, run_study

    log: list = []
    study = _queue_study(log)
    held = Path(f"{run_dir(tmp_path, Arm('b', None), 2)}.lock")
    held.parent.mkdir(parents=True)
    fd = os.open(held, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live process trains b, seed 2
    run_study(study, _queue_args(tmp_path, 1))
    assert sorted((row["arm"], row["seed"]) for row in _rows(tmp_path)) == sorted(
        (arm, seed) for seed in range(3) for arm in ("teacher", "a", "b") if (arm, seed) != ("b", 2))
    os.close(fd)  # its holder died: the kernel dropped the lock, the file stays behind
    dead = subprocess.run([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                           "fcntl.flock(fd, fcntl.LOCK_EX); os._exit(9)", str(held)], timeout=60)
    assert dead.returncode == 9 and held.exists()
    run_study(study, _queue_args(tmp_path, 1))
    assert [(row["arm"], row["seed"]) for row in _rows(tmp_path)][-1] == ("b", 2) and len(_rows(tmp_path)) == 9


def test_claims_tables_are_the_committed_rows():
    """docs/claims.md's tables equal what studies/claims.py makes from studies/results/*/runs.jsonl."""
    r = subprocess.run([sys.executable, str(ROOT / "studies" / "claims.py"), "--check"], capture_output=True, text=True,
                       env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr


def test_claims_tables_follow_the_rows(tmp_path):
    import claims

    row = {"study": "relative_position", "arm": "abs_learned", "data_fraction": 1.0, "phase": "train", "machine": "M",
           "threads": 1, "processes": 2, "shift_changed_pct": 10.0, "shift_top1": 50.0}
    (tmp_path / "relative_position").mkdir()
    rows = [{**row, "seed": s, "top1": t} for s, t in ((0, 40.0), (1, 42.0))]
    rows += [{**row, "arm": "shaw", "seed": s, "top1": t} for s, t in ((0, 41.0), (1, 44.0))]
    rows += [{**row, "arm": "shaw", "seed": 2, "top1": 99.0, "smoke": True}]  # never counted
    (tmp_path / "relative_position" / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = claims.render((ROOT / "docs" / "claims.md").read_text(), tmp_path)
    assert "| 1 | train | shaw | 42.50 ± 2.12 (n=2, 95% [23.44, 61.56]) | 1.50 ± 0.71 (n=2, 95% [-4.85, 7.85])" in text
    assert "4 runs from `studies/results/relative_position/runs.jsonl` (M; 2 process(es) × 1 thread(s))" in text
    assert text.count("No runs committed yet.") == 3


def test_a_contrast_is_the_paired_difference_of_two_arms_by_hand():
    """distillation's verdict compares hard with soft, neither of them the reference: a second table."""
    from runner import Study, markdown_table

    row = {"data_fraction": 0.1, "phase": "train"}
    rows = [{**row, "arm": a, "seed": s, "top1": t, "head": t - 1}
            for a, tops in (("none", (30.0, 31.0, 32.0)), ("soft", (30.0, 32.0, 34.0)), ("hard", (33.0, 34.0, 35.0)))
            for s, t in enumerate(tops)]
    rows.append({**row, "arm": "hard", "seed": 3, "top1": 99.0, "head": 98.0})  # no soft partner: not paired
    lines = markdown_table(Study("d", "claim", "none", lambda a: [], extra_columns=["head"],
                                 contrasts=[("hard", "soft")]), rows)
    # hard − soft by seed: 3, 2, 1 → mean 2, std 1, t(0.975, 2) = 4.303
    half = 4.303 / math.sqrt(3)
    want = f"2.00 ± 1.00 (n=3, 95% [{2 - half:.2f}, {2 + half:.2f}])"
    assert lines[-1] == f"| 0.1 | train | hard − soft | {want} | {want} |"
    assert lines[-3].startswith("| fraction | phase | contrast | top1 | head |")
