"""`vitkit plot` draws runs side by side from metrics.jsonl; `vitkit runs` tabulates a folder of
runs with their status (finished / interrupted / running)."""
import json
import os
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from vitkit.cli.main import main


def _fake_run(folder, name, accs, status="finished", epochs=None):
    run = folder / name
    run.mkdir(parents=True)
    t0 = 1_700_000_000.0
    rows = [{"kind": "start", "time": t0}]
    for i, a in enumerate(accs, 1):
        rows.append({"kind": "step", "epoch": i, "step": 10 * i, "loss": 2.0 / i, "lr": 1e-3 / i, "time": t0 + 50 * i})
        rows.append({"kind": "epoch", "epoch": i, "step": 10 * i, "top1": a, "loss": 1.0, "time": t0 + 60 * i})
    if status in ("finished", "failed"):
        rows.append({"kind": "end", "status": status, "time": t0 + 60 * len(accs) + 1})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "vit_tiny_patch4_32"},
                                                     "optim": {"epochs": epochs or len(accs)}}))
    return run


@pytest.mark.parametrize("x, metric", [("minutes", "top1"), ("steps", "loss"), ("epochs", "lr")])
def test_plot_draws_two_runs(tmp_path, capsys, x, metric):
    a, b = _fake_run(tmp_path, "a", [40.0, 50.0]), _fake_run(tmp_path, "b", [45.0, 60.0, 65.0])
    out = tmp_path / "cmp.png"
    assert main(["plot", str(a), str(b), "--out", str(out), "--x", x, "--metric", metric]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (420, 700, 3)
    # two coloured lines: matplotlib's first two cycle colours are both on the canvas
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(img.astype(int) - colour).sum(-1) < 60).sum() > 30, colour


def test_runs_table_names_each_status(tmp_path, capsys):
    _fake_run(tmp_path, "done", [40.0, 55.5])
    _fake_run(tmp_path, "killed", [30.0], status="none", epochs=5)
    live = _fake_run(tmp_path, "live", [20.0], status="none", epochs=5)
    (live / ".vitkit-running").write_text(f"{os.getpid()} {os.uname().nodename}\n")
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["done"]["status"] == "finished" and rows["done"]["best_top1"] == 55.5 and rows["done"]["epochs"] == "2/2"
    assert rows["killed"]["status"] == "interrupted" and rows["killed"]["epochs"] == "1/5"
    assert rows["live"]["status"] == "running" and rows["done"]["minutes"] == pytest.approx(121 / 60)
    assert main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "model", "epochs", "best", "top-1", "minutes", "status"]
    assert any(line.split()[0] == "done" and "55.50%" in line and line.endswith("finished") for line in lines)


def test_a_real_run_is_finished_in_the_table(cifar_small, tmp_path, capsys):
    import vitkit

    from test_api import RECIPE

    vitkit.train(RECIPE, data=cifar_small, out=tmp_path / "runs" / "r1", epochs=1, max_steps=2)
    capsys.readouterr()  # the training's own lines
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "finished" and row["epochs"] == "1/1" and not (tmp_path / "runs" / "r1" / ".vitkit-running").exists()


@pytest.mark.parametrize("argv, message", [
    (["plot", "NOPE", "--out", "x.png"], "no metrics.jsonl"),
    (["runs", "NOPE"], "no such directory"),
])
def test_bad_inputs_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("NOPE", str(tmp_path / "nope")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
