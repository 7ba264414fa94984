"""A wall-clock budget (optim.budget_minutes, train/budget.py): the lr decay and progressive sizes
follow the clock, the run stops by itself with a final evaluation inside the budget, the time
spent carries over a resume, and the settings that cannot work are one-line errors."""
import subprocess
import sys
import time

import pytest
import torch

from vitkit.training.budget import Clock
from vitkit.training.optim import lr_at

from test_train import ENV, TINY, cli, read_metrics


def test_clock_progress_reserve_and_exhaustion():
    c = Clock(None, time.time())
    assert c.budget_s is None and c.fraction() == 0.0 and c.progress(5, 10) == 0.5 and not c.exhausted()
    c = Clock(2.0, time.time() - 30, spent_before_s=30)  # 30 s in this process + 30 s before it
    c.reserve_s = 6.0  # the final evaluation must fit too
    assert 65.5 < c.projected_s() < 70
    assert c.fraction() == pytest.approx(30 / 120)  # only the synced value counts (ranks agree)
    c.synced_s = c.projected_s()
    assert 0.54 < c.fraction() < 0.59 and c.progress(1, 100) == c.fraction() and not c.exhausted()
    assert c.progress(90, 100) == 0.9  # steps ahead of the clock: the steps decide
    c.synced_s = 121.0
    assert c.exhausted() and c.fraction() == 1.0


def test_clock_starts_with_the_process():
    code = "import time; from vitkit.training.budget import process_start_time as p; print(time.time() - p())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                               check=True).stdout)
    assert -1.5 < age < 60, age  # /proc's boot time is whole seconds; the import itself takes a few


def test_budget_moves_the_decay_on_but_not_the_warmup():
    assert lr_at(50, 100, 10, 1.0, 0.0, "linear") == pytest.approx(1 - 40 / 90)
    assert lr_at(50, 100, 10, 1.0, 0.0, "linear", budget_used=0.9) == pytest.approx(0.1)
    assert lr_at(50, 100, 10, 1.0, 0.0, "linear", budget_used=0.1) == pytest.approx(1 - 40 / 90)
    assert lr_at(5, 100, 10, 1.0, 0.0, "linear", budget_used=0.9) == pytest.approx(0.6)
    assert lr_at(50, 100, 10, 1.0, 0.0, "cosine", budget_used=1.0) == pytest.approx(0.0)


def _sets(*extra):
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


@pytest.mark.slow
def test_budgeted_run_ends_in_time_evaluated_with_lr_near_zero(cifar_small, tmp_path):
    budget_s = 24
    run = tmp_path / "r"
    t = time.time()
    cli("train", "--data", cifar_small, "--out", run, "--budget-minutes", budget_s / 60, "--epochs", 10_000,
        "--lr", "1e-3", "--cache", "memory", *_sets("model.drop_path_rate=0"), check=True)
    wall = time.time() - t
    m = read_metrics(run)
    steps = [r for r in m if r["kind"] == "step"]
    epochs = [r for r in m if r["kind"] == "epoch"]
    assert 1 < len(epochs) < 10_000 and epochs[-1]["top1"] is not None  # stopped by the clock, evaluated
    assert steps[-1]["lr"] < 0.15e-3, steps[-1]  # the linear decay reached (almost) zero with the time
    assert max(s["lr"] for s in steps) > 0.8e-3
    assert wall < budget_s + 20, wall
    ck = torch.load(run / "last.pt", weights_only=True)
    assert 0.8 * budget_s < ck["spent_s"] < budget_s + 15, ck["spent_s"]
    # The spent time is part of the run: resuming a finished budget trains nothing and keeps last.pt.
    before = (run / "last.pt").read_bytes()
    r = cli("train", "--out", run, "--resume", check=True)
    assert "already spent" in r.stdout and (run / "last.pt").read_bytes() == before


@pytest.mark.parametrize("flags, message", [
    (["--budget-minutes", "0"], "optim.budget_minutes must be in (0, inf)"),
    (["--budget-minutes", "-5"], "optim.budget_minutes must be in (0, inf)"),
    (["--budget-minutes", "5", "--deterministic"], "cannot be --deterministic"),
])
def test_bad_budgets_are_one_line_errors(cifar_small, tmp_path, flags, message):
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", *flags, *_sets())
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_a_run_stopped_by_its_clock_saves_the_whole_budget_as_spent():
    """Its final evaluation can end under the reserve it was given, leaving the clock 0.x s short of
    the budget: the checkpoint must still say the budget is spent, or --resume trains on."""
    clock = Clock(1.0, t_start=time.time() - 59.5)  # 59.5 s of a 60-s budget spent
    clock.synced_s = 60.2  # the projected end (spent + the reserved evaluation) that stopped the run
    assert clock.exhausted() and clock.spent_s() < 60.0
    assert clock.spent_to_save() == 60.0
    assert Clock(1.0, t_start=time.time() - 30.0).spent_to_save() == pytest.approx(30.0, abs=1.0)  # mid-run: as is
    assert Clock(None, t_start=time.time() - 5.0).spent_to_save() == pytest.approx(5.0, abs=1.0)  # no budget
