"""few_epochs: settings switched once, when the projected epochs fall below a count
(training/few_epochs.py) — the decision point (derived or set by `at`), the projection, the
switched schedule and sizes in a real run, its survival across --resume, and one-line errors."""
import pytest
import torch

from vitkit.training.config import load_train_config
from vitkit.training.few_epochs import FewEpochs
from vitkit.training.loop import train

from test_train import TINY, cli, read_metrics

PAIR = "{data.progressive_end: 0.75, model.patch_dropout_end: 0.75}"
PROGRESSIVE = ["data.progressive=[16, 32]", "data.progressive_end=0.5", "model.patch_dropout=0.5"]


def _cfg(*sets):
    return load_train_config(None, list(sets))


def test_decides_once_at_the_first_point_where_an_option_differs():
    cfg = _cfg("data.progressive_end=0.5", "few_epochs.below=30", f"few_epochs.options={PAIR}")
    few = FewEpochs.from_config(cfg)
    # progressive_end 0.5 → 0.75 differs from 0.5 on; patch_dropout_end 1.0 → 0.75 from 0.75 on
    assert few.at == 0.5
    assert not few.decide(step=400, steps_per_epoch=100, progress=0.49) and few.short is None
    assert few.value(cfg, "data.progressive_end") == 0.5  # undecided: as configured
    # 5 epochs at half the budget: 10 in all, under 30
    assert few.decide(step=500, steps_per_epoch=100, progress=0.5)
    assert few.short and few.projected == pytest.approx(10.0)
    assert few.value(cfg, "data.progressive_end") == 0.75 and few.value(cfg, "model.patch_dropout_end") == 0.75
    assert not few.decide(step=5000, steps_per_epoch=100, progress=0.6)  # once: a faster pace later changes nothing
    assert few.short and few.state() == {"short": True, "projected": pytest.approx(10.0)}


def test_a_long_budget_keeps_the_configured_schedule_and_off_means_off():
    cfg = _cfg("few_epochs.below=30", f"few_epochs.options={PAIR}")
    few = FewEpochs.from_config(cfg)
    assert few.decide(step=2000, steps_per_epoch=100, progress=0.5)  # 40 epochs in the budget
    assert few.short is False and few.projected == pytest.approx(40.0)
    assert few.value(cfg, "data.progressive_end") == 0.5 and few.value(cfg, "model.patch_dropout_end") == 1.0
    assert "(>= 30)" in few.describe(2000, 100) and "not applied" in few.describe(2000, 100)
    off = FewEpochs.from_config(_cfg())
    assert not off.decide(step=10, steps_per_epoch=100, progress=0.9) and off.state() is None
    assert off.value(_cfg(), "model.patch_dropout_end") == 1.0


def test_an_explicit_point_decides_there_and_can_switch_the_sizes():
    """data.progressive differs from the first step on: the run decides at `at`, from the pace
    of the configured sizes so far, and trains at the switched sizes from there."""
    sets = ["data.progressive=[24, 32]", "few_epochs.below=36", "few_epochs.at=0.05",
            "few_epochs.options={data.progressive: [16, 24, 32]}"]
    few = FewEpochs.from_config(_cfg(*sets))
    assert few.at == 0.05
    assert not few.decide(step=60, steps_per_epoch=195, progress=0.049)
    assert few.value(_cfg(*sets), "data.progressive") == [24, 32]  # undecided: as configured
    assert few.decide(step=293, steps_per_epoch=195, progress=0.05)  # 1.5 epochs at 5%: ~30 in all
    assert few.short and few.projected == pytest.approx(30.05, abs=0.01)
    assert few.value(_cfg(*sets), "data.progressive") == [16, 24, 32]
    assert "data.progressive=[16, 24, 32] from here on" in few.describe(293, 195)
    fast = FewEpochs.from_config(_cfg(*sets))
    assert fast.decide(step=468, steps_per_epoch=195, progress=0.05) and fast.short is False  # ~48
    assert fast.value(_cfg(*sets), "data.progressive") == [24, 32]
    # `at` later than where a numeric option differs: the decision waits for `at`
    late = FewEpochs.from_config(_cfg("few_epochs.below=30", "few_epochs.at=0.6", f"few_epochs.options={PAIR}"))
    assert late.at == 0.6 and not late.decide(step=500, steps_per_epoch=100, progress=0.55)


def test_restore_keeps_the_decision():
    cfg = _cfg("few_epochs.below=30", f"few_epochs.options={PAIR}")
    few = FewEpochs.from_config(cfg)
    few.restore({"short": True, "projected": 12.5})
    assert not few.decide(step=9000, steps_per_epoch=100, progress=0.9)  # 100 epochs now: still short
    assert few.short and few.value(cfg, "model.patch_dropout_end") == 0.75
    fresh = FewEpochs.from_config(cfg)
    fresh.restore(None)
    assert fresh.short is None


def _run_with_rates(cfg, monkeypatch):
    """Train; returns the PatchDropout rate set at each step (engine._begin_step)."""
    from vitkit.models.vit import VisionTransformer

    rates = []
    original = VisionTransformer.set_patch_dropout

    def record(self, rate):
        rates.append(rate)
        original(self, rate)

    monkeypatch.setattr(VisionTransformer, "set_patch_dropout", record)
    train(cfg)
    return rates


@pytest.mark.parametrize("below, short", [(5, True), (3, False)])
def test_a_run_switches_its_schedule_when_its_epochs_are_few(cifar_small, tmp_path, monkeypatch, below, short):
    """4 epochs (step-based: the projection is exact): below 5 switches, below 3 does not."""
    out = tmp_path / "r"
    cfg = load_train_config(None, TINY + PROGRESSIVE + [
        f"data.path={cifar_small}", f"run.out={out}", "optim.epochs=4",
        f"few_epochs.below={below}", f"few_epochs.options={PAIR}"])
    rates = _run_with_rates(cfg, monkeypatch)
    rows = read_metrics(out)
    steps = [r for r in rows if r["kind"] == "step"]
    total = len(steps)
    assert total == 4 * 9  # 300 training images, batch 32
    [decision] = [r for r in rows if r["kind"] == "few_epochs"]
    assert decision["step"] == total // 2 and decision["projected_epochs"] == pytest.approx(4.0)
    assert decision["short"] is short
    sizes = [r["size"] for r in steps]  # step records carry the step just taken (1-based)
    # progress = (step - 1) / total at the step's start: 16 px while it is below the progressive end
    end = 0.75 if short else 0.5
    expected = [16 if (s - 1) / total < end else 32 for s in range(1, total + 1)]
    assert sizes == expected
    if short:  # from the decision (step 19) on: PatchDropout until 0.75 (step 27), then every token
        assert rates == [0.5] * (27 - 18) + [0.0] * (total - 27)
    else:  # patch_dropout_end stays 1.0: the rate is never touched
        assert rates == []
    assert torch.load(out / "last.pt", weights_only=True)["few_epochs"]["short"] is short


@pytest.mark.parametrize("below, short", [(5, True), (3, False)])
def test_a_short_run_switches_its_sizes_at_the_point_it_decides(cifar_small, tmp_path, below, short):
    """4 epochs of 9 steps; configured 16 px to 0.5 then 32; decided at 0.1 (the start of step 5):
    short switches to [8, 16, 32] — 8 px to 0.25, 16 to 0.5 — from step 5 on."""
    out = tmp_path / "r"
    cfg = load_train_config(None, TINY + PROGRESSIVE + [
        f"data.path={cifar_small}", f"run.out={out}", "optim.epochs=4", f"few_epochs.below={below}",
        "few_epochs.at=0.1", "few_epochs.options={data.progressive: [8, 16, 32]}"])
    train(cfg)
    rows = read_metrics(out)
    [decision] = [r for r in rows if r["kind"] == "few_epochs"]
    assert decision["step"] == 4 and decision["short"] is short  # progress 4/36 ≥ 0.1 > 3/36
    assert decision["options"] == ({"data.progressive": [8, 16, 32]} if short else {})
    sizes = [r["size"] for r in rows if r["kind"] == "step"]
    configured = [16 if (s - 1) / 36 < 0.5 else 32 for s in range(1, 37)]
    switched = [16] * 4 + [8 if (s - 1) / 36 < 0.25 else 16 if (s - 1) / 36 < 0.5 else 32 for s in range(5, 37)]
    assert sizes == (switched if short else configured)
    assert 8 in sizes if short else 8 not in sizes


def test_a_resumed_run_goes_on_with_the_decision_it_took(cifar_small, tmp_path):
    """Decided short at 4 epochs (below 5), stopped after 3, resumed with 8 epochs: a new
    decision would now say long (8 >= 5); the kept one stays short."""
    out = tmp_path / "r"
    sets = TINY + PROGRESSIVE + ["optim.epochs=4", "few_epochs.below=5", f"few_epochs.options={PAIR}",
                                 "run.deterministic=true"]
    args = ["train", "--data", cifar_small, "--out", out, *[a for s in sets for a in ("--set", s)]]
    cli(*args, "--max-steps", 27, check=True)  # 3 of 4 epochs: past the decision at step 18
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 27 and state["few_epochs"]["short"] is True
    r = cli(*args, "--resume", "--max-steps", 72, "--set", "optim.epochs=8")
    assert r.returncode == 0, r.stderr
    rows = read_metrics(out)
    assert [d["step"] for d in rows if d["kind"] == "few_epochs"] == [18]  # not decided again
    after = [r["size"] for r in rows if r["kind"] == "step" and r["step"] > 27]
    # 8 epochs = 72 steps; short: 16 px while progress < 0.75 (steps 28..54), then 32
    assert after == [16 if (s - 1) / 72 < 0.75 else 32 for s in range(28, 73)]


@pytest.mark.parametrize("sets, message", [
    (["few_epochs.below=20"], "few_epochs needs both below (an epoch count) and options"),
    ([f"few_epochs.options={PAIR}"], "few_epochs needs both below (an epoch count) and options"),
    (["few_epochs.below=20", "few_epochs.options={optim.lr: 0.1}"], "'optim.lr' cannot be switched during a run"),
    (["few_epochs.below=20", "few_epochs.options={model.patch_dropout_end: 1.5}"],
     "few_epochs.options: model.patch_dropout_end must be in (0, 1], got 1.5"),
    (["few_epochs.below=20", "few_epochs.options=0.7"], "few_epochs.options must be a mapping"),
    (["few_epochs.below=0", f"few_epochs.options={PAIR}"], "few_epochs.below must be in (0, inf), got 0"),
    (["few_epochs.befor=20"], "unknown option few_epochs.befor"),
    (["data.progressive=[16, 32]", "few_epochs.below=20",
      "few_epochs.options={data.progressive_end: 0}"], "data.progressive_end must be in (0, 1], got 0"),
    (["few_epochs.below=20", "few_epochs.options={data.progressive: [16, 32]}"],
     "switches data.progressive, whose sizes differ from the first step on: set few_epochs.at"),
    (["few_epochs.below=20", "few_epochs.at=0.1", "few_epochs.options={data.progressive: 16}"],
     "few_epochs.options: data.progressive must be a list of sizes, got 16"),
    (["few_epochs.below=20", "few_epochs.at=0.1", "few_epochs.options={data.progressive: [18, 32]}"],
     "few_epochs.options: data.progressive size 18 is not a positive multiple of the patch size 4"),
    (["few_epochs.below=20", "few_epochs.at=0.1", "few_epochs.options={data.progressive: [16, 24]}"],
     "few_epochs.options: data.progressive must end at the training size 32, got [16, 24]"),
    (["few_epochs.below=20", "few_epochs.at=1.5", f"few_epochs.options={PAIR}"],
     "few_epochs.at must be in (0, 1), got 1.5"),
    (["few_epochs.at=0.1"], "few_epochs.at needs below and options"),
])
def test_bad_few_epochs_settings_are_one_line_errors(cifar_small, tmp_path, sets, message):
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", *[a for s in TINY + sets for a in ("--set", s)])
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_a_cnn_refuses_a_switched_patch_dropout_end(cifar_small, tmp_path):
    sets = TINY + ["model.name=resnet18_cifar", "model.overrides={}", "few_epochs.below=20",
                   "few_epochs.options={model.patch_dropout_end: 0.8}"]
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", *[a for s in sets for a in ("--set", s)])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "has no PatchDropout" in r.stderr, r.stderr


def test_a_budgeted_run_decides_from_the_clock(cifar_small, tmp_path):
    """With a time budget the progress is the clock's: the decision comes once ~60% of the
    budget is spent, and the projection is the epochs done over that fraction."""
    out = tmp_path / "r"
    sets = TINY + ["model.patch_dropout=0.5", "few_epochs.below=1000000",
                   "few_epochs.options={model.patch_dropout_end: 0.6}"]
    r = cli("train", "--data", cifar_small, "--out", out, "--budget-minutes", 0.35, "--epochs", 10_000,
            "--cache", "memory", *[a for s in sets for a in ("--set", s)], check=True)
    [line] = [x for x in r.stdout.splitlines() if "few epochs:" in x]
    assert "(< 1e+06): model.patch_dropout_end=0.6 from here on" in line, line
    rows = read_metrics(out)
    [decision] = [x for x in rows if x["kind"] == "few_epochs"]
    fraction = decision["step"] / 9 / decision["projected_epochs"]  # the progress it was decided at
    assert 0.6 <= fraction < 0.7, fraction
    steps = [x["step"] for x in rows if x["kind"] == "step"]
    assert steps[0] < decision["step"] < steps[-1]  # part-way (the clock counts from process start)
    assert decision["short"] is True and decision["options"] == {"model.patch_dropout_end": 0.6}
    assert torch.load(out / "last.pt", weights_only=True)["few_epochs"]["short"] is True
