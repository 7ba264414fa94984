"""Every numeric option is range-checked before any work starts: one line, exit 2, nothing
written (table-driven over train.config.RANGES and the flags of train, finetune, eval, predict,
embed)."""
from pathlib import Path

import pytest

from vitkit.cli.main import main
from vitkit.training.config import RANGES, in_interval


def _bad_values(interval: str) -> list[str]:
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    bad = [str(int(lo) - 1) if interval[0] == "[" else str(int(lo) if lo == int(lo) else lo)]
    if hi != float("inf"):
        bad.append(str(int(hi) + 1) if interval[-1] == "]" else str(int(hi) if hi == int(hi) else hi))
    return bad


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_ranged_option_refuses_values_outside_its_interval(key, tmp_path, capsys, cifar_small):
    for value in _bad_values(RANGES[key]) + ["nan"]:
        assert not in_interval(float(value), RANGES[key])
        rc = main(["train", "--data", str(cifar_small), "--out", str(tmp_path / "r"), "--set", f"{key}={value}"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and key.split(".")[1] in err and "Traceback" not in err, (value, err)
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "-3"], ["train", "--batch-size", "0"], ["train", "--lr", "nan"], ["train", "--lr", "-1"],
    ["train", "--warmup-epochs", "-1"], ["train", "--weight-decay", "-0.1"], ["train", "--accum-steps", "0"],
    ["train", "--drop-path", "1.5"], ["train", "--workers", "-1"], ["train", "--max-steps", "0"],
    ["train", "--log-every", "0"], ["train", "--ema", "1.0"], ["train", "--layer-decay", "0"],
    ["train", "--img-size", "0"], ["train", "--patch-dropout", "1"], ["train", "--budget-minutes", "0"],
    ["finetune", "--init", "INIT", "--epochs", "0"], ["finetune", "--init", "INIT", "--lr", "inf"],
    ["eval", "--checkpoint", "INIT", "--batch-size", "0"], ["eval", "--checkpoint", "INIT", "--workers", "-2"],
    ["eval", "--checkpoint", "INIT", "--knn", "0"],
    ["predict", "--checkpoint", "INIT", "--topk", "0", "IMG"],
    ["embed", "--checkpoint", "INIT", "--out", "OUT/f.npy", "--batch-size", "0"],
])
def test_cli_numeric_flags_are_checked(argv, tmp_path, capsys, cifar_small):
    import vitkit

    vitkit.save_model(vitkit.create_model("vit_tiny_patch4_32", depth=1, num_classes=10), tmp_path / "init")
    img = next(Path(cifar_small).rglob("*.jpg"))
    sub = {"INIT": str(tmp_path / "init"), "IMG": str(img), "OUT": str(tmp_path / "o")}
    argv = [sub.get(a, a.replace("OUT", str(tmp_path / "o"))) for a in argv]
    if argv[0] in ("train", "finetune"):
        argv += ["--out", str(tmp_path / "r")]
    if argv[0] != "predict":
        argv += ["--data", str(cifar_small)]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()
