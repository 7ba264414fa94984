"""`vitkit.train()`: the Python entry point the CLI calls — its result, re-entrancy (two calls in
one process give the same weights and leave no global mode changed), option typos, and what
`--resume` may and may not change."""
import random
import shutil

import numpy as np
import pytest
import torch
import torch.distributed as dist

import vitkit
from vitkit.errors import UsageError
from vitkit.training.config import CHOICES, load_train_config

from test_train import cli

# A recipe as a dict: the same sections as a YAML file.
RECIPE = {"model": {"name": "vit_tiny_patch4_32", "overrides": {"depth": 2}},
          "data": {"train_crop": "pad_crop", "workers": 0, "cache": "none", "mixup": 0.2},
          "optim": {"batch_size": 50, "warmup_epochs": 1, "lr": 2e-3},
          "run": {"progress": False, "log_every": 1}}


def test_two_calls_in_one_process_give_identical_weights_and_restore_global_state(cifar_small, tmp_path):
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    results = [vitkit.train(RECIPE, data=cifar_small, out=tmp_path / name, epochs=2, max_steps=4,
                            deterministic=True, set={"model.drop_path_rate": 0.1})
               for name in ("a", "b")]
    # nothing global is left changed: deterministic mode, the caller's RNG streams, process groups
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    assert not (dist.is_available() and dist.is_initialized())
    a, b = (vitkit.load_model(r.out / "last.pt") for r in results)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    r = results[0]
    steps = [m for m in r.metrics if m["kind"] == "step"]
    epochs = [m for m in r.metrics if m["kind"] == "epoch"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and r.top1 == epochs[-1]["top1"] == results[1].top1
    assert r.best_top1 == max(e["top1"] for e in epochs) and r.config.optim.epochs == 2
    assert r.top1 is not None and r.out == tmp_path / "a"


def test_api_and_cli_share_one_flag_table(cifar_small, tmp_path):
    with pytest.raises(UsageError, match="unknown option 'batchsize'"):
        vitkit.train(RECIPE, data=cifar_small, out=tmp_path / "x", batchsize=8)
    with pytest.raises(UsageError, match="unknown option data.mixupp"):
        vitkit.train(RECIPE, data=cifar_small, out=tmp_path / "x", set={"data.mixupp": 0.2})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_enumerated_option_refuses_a_typo_naming_its_choices(key):
    shown = ", ".join("null" if c is None else str(c) for c in CHOICES[key])
    with pytest.raises(UsageError) as e:
        load_train_config(None, [f"{key}=not_a_choice"])
    assert str(e.value) == f"{key}='not_a_choice' is not a choice: choose one of {shown}"


@pytest.mark.parametrize("item, named", [
    ("data.train_crop=pad_crp", "data.train_crop='pad_crp' is not a choice: choose one of random_resized, pad_crop, resize"),
    ("data.interpolation=bicubc", "data.interpolation='bicubc' is not a choice: choose one of bicubic, bilinear, nearest"),
])
def test_cli_option_typo_is_one_line_exit_2_before_anything_is_written(cifar_small, tmp_path, item, named):
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", "--set", item)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {named}", r.stderr
    assert not (tmp_path / "r").exists()


def test_python_config_typo_is_refused_too(cifar_small, tmp_path):
    bad = {**RECIPE, "data": {**RECIPE["data"], "auto_augment": "randaugmnt"}}
    with pytest.raises(UsageError, match=r"data.auto_augment='randaugmnt' is not a choice: choose one of none, "):
        vitkit.train(bad, data=cifar_small, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def _cli_run(data, out, *extra):
    args = ["--model", "vit_tiny_patch4_32", "--set", "model.overrides={depth: 2}", "--set", "data.train_crop=pad_crop",
            "--workers", "0", "--cache", "none", "--batch-size", "50", "--no-progress", "--log-every", "1"]
    return cli("train", "--data", data, "--out", out, *args, *extra)


def test_resume_applies_a_moved_dataset_and_refuses_changed_optimisation(cifar_small, tmp_path):
    old, run = tmp_path / "old_place", tmp_path / "run"
    shutil.copytree(cifar_small, old)
    r = _cli_run(old, run, "--epochs", "1", "--lr", "2e-3")
    assert r.returncode == 0, r.stderr
    shutil.move(old, tmp_path / "new_place")  # the dataset moved, as on another cluster node
    stamp = (run / "last.pt").stat().st_mtime_ns
    # Changing the model or the optimisation is refused, each option named; nothing is written.
    r = cli("train", "--out", run, "--resume", "--data", tmp_path / "new_place", "--epochs", "2", "--lr", "0.1",
            "--batch-size", "25", "--set", "data.mixup=0.5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    for named in ("optim.lr (0.002 → 0.1)", "optim.batch_size (50 → 25)", "data.mixup (0.0 → 0.5)"):
        assert named in r.stderr, r.stderr
    assert "data.path" not in r.stderr and (run / "last.pt").stat().st_mtime_ns == stamp
    # The same command without them continues at the new data path, one more epoch.
    r = cli("train", "--out", run, "--resume", "--data", tmp_path / "new_place", "--epochs", "2", "--lr", "2e-3",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "data.path=" in r.stdout and "optim.epochs=2" in r.stdout
    cfg = load_train_config(run / "config.yaml")
    assert cfg.data.path == str(tmp_path / "new_place") and cfg.optim.epochs == 2 and cfg.optim.lr == 2e-3
    from test_train import read_metrics

    assert [m["epoch"] for m in read_metrics(run) if m["kind"] == "epoch"] == [1, 2]
