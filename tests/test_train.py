"""The training engine on real CIFAR-10 images: learning, resume, torchrun, bad input, NaN."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vitkit
from vitkit.errors import TrainingDiverged
from vitkit.training.config import load_train_config
from vitkit.training.loop import train

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# A 2-block tiny ViT with fixed (non-random) preprocessing, so runs can be compared exactly.
TINY = ["model.name=vit_tiny_patch4_32", "model.overrides={depth: 2}", "data.train_crop=pad_crop",
        "data.workers=0", "run.progress=false", "optim.batch_size=32", "optim.warmup_epochs=1",
        "run.log_every=1"]


def cli(*args, check=False, timeout=300):
    r = subprocess.run([sys.executable, "-m", "vitkit", *map(str, args)], capture_output=True, text=True,
                       env=ENV, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(r.stderr)
    return r


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_model_learns_on_real_cifar(cifar_small, tmp_path):
    cfg = load_train_config(None, TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}",
                                          "optim.epochs=6", "optim.lr=2e-3", "model.drop_path_rate=0"])
    last = train(cfg)
    rows = read_metrics(tmp_path / "r")
    steps = [r for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert len(epochs) == 6 and {"loss", "top1", "top5", "lr", "img_s", "time"} <= set(epochs[0])
    first = sum(s["loss"] for s in steps[:3]) / 3
    assert epochs[-1]["train_loss"] < first - 0.15, (first, epochs[-1]["train_loss"])
    assert last["top1"] > 10.0  # above chance on held-out images
    for name in ("last.pt", "best.pt", "config.yaml"):
        assert (tmp_path / "r" / name).exists()
    model = vitkit.load_model(tmp_path / "r")
    assert model.class_names[0] == "airplane" and model.preprocess["img_size"] == 32


def _final_weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model_state"]


def test_evaluating_less_often_changes_no_weight_and_no_final_top1(cifar_small, tmp_path):
    """Evaluation draws no random number and touches no weight: a run evaluated after every epoch
    ends with the same weights and the same final top-1 as one evaluated after its last epoch only.
    The studies' runner relies on it (it evaluates once, at the end; rows made before that stay
    valid). PatchDropout and the batch augmentation draw random numbers here, so a stray draw in
    evaluation would show."""
    cfg = {"model": {"name": "vit_tiny_patch4_32", "overrides": {"depth": 2}, "patch_dropout": 0.25},
           "data": {"train_crop": "pad_crop", "workers": 0, "cache": "memory", "label_smoothing": 0.1,
                    "subset": 0.5, "subset_seed": 1, "auto_augment": "randaugment", "mixup": 0.2},
           "optim": {"epochs": 3, "batch_size": 32, "warmup_epochs": 1, "schedule": "linear"},
           "run": {"progress": False, "precision": "fp32", "seed": 1}}
    results = {n: vitkit.train({**cfg, "run": {**cfg["run"], "eval_every": n}}, data=cifar_small, out=tmp_path / f"e{n}")
               for n in (1, 3)}
    evaluated = {n: [r["epoch"] for r in res.metrics if r["kind"] == "epoch" and r["top1"] is not None]
                 for n, res in results.items()}
    assert evaluated == {1: [1, 2, 3], 3: [3]}
    assert results[1].top1 == results[3].top1
    a, b = _final_weights(tmp_path / "e1"), _final_weights(tmp_path / "e3")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def kill_resume_and_compare(args: list, tmp_path: Path) -> Path:
    """Run `args` to the end; run them again, SIGKILL after the first checkpoint, --resume; assert
    both end with identical weights. Returns the killed run's directory."""
    cli(*args, "--out", tmp_path / "full", check=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vitkit", *map(str, args), "--out", str(run)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] < 3, "the run finished before it could be killed; test proves nothing"
    cli(*args, "--out", run, "--resume", check=True)
    a, b = _final_weights(tmp_path / "full"), _final_weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return run


def test_killed_run_resumes_to_identical_weights(cifar_small, tmp_path):
    args = ["train", "--data", cifar_small, "--epochs", 4, "--lr", "1e-3", "--deterministic", "--seed", 3,
            *[a for s in TINY for a in ("--set", s)], "--set", "data.auto_augment=randaugment",
            "--set", "data.random_erasing=0.25", "--set", "data.mixup=0.2"]
    run = kill_resume_and_compare(args, tmp_path)
    epochs = [r["epoch"] for r in read_metrics(run) if r["kind"] == "epoch"]
    assert epochs[-1] == 4


def test_partial_temporary_file_is_never_read_as_last(cifar_small, tmp_path):
    from vitkit.checkpoint.io import atomic_write

    target = tmp_path / "last.pt"
    torch.save({"v": torch.ones(1)}, target)

    def dies_half_way(tmp):
        Path(tmp).write_bytes(b"partial")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_half_way)
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("cache", ["none", "memory"])  # per-image path and decoded tensor path
def test_torchrun_two_processes_match_one_process(cifar_small, tmp_path, cache):
    common = ["train", "--data", cifar_small, "--epochs", 1, "--max-steps", 4, "--lr", "1e-3",
              *[a for s in TINY for a in ("--set", s)], "--set", "data.hflip=0", "--set", "data.train_crop=resize",
              "--set", "model.drop_path_rate=0", "--device", "cpu", "--cache", cache, "--precision", "fp32"]
    cli(*common, "--out", tmp_path / "one", check=True)
    import socket

    with socket.socket() as sock:  # a free port, so parallel CI jobs cannot collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                        "127.0.0.1", "--master_port", str(port), "-m", "vitkit", *map(str, common), "--out", str(tmp_path / "two")],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    one = [m["loss"] for m in read_metrics(tmp_path / "one") if m["kind"] == "step"]
    two = [m["loss"] for m in read_metrics(tmp_path / "two") if m["kind"] == "step"]
    assert len(one) == len(two) == 4
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)


def test_unreadable_images_are_skipped_and_counted(cifar_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_small, data)
    (data / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "train" / "dog" / "empty.jpg").write_bytes(b"")
    r = cli("train", "--data", data, "--out", tmp_path / "r", "--epochs", 1, "--batch-size", 302, "--cache", "none",
            *[a for s in TINY[:5] for a in ("--set", s)], check=True)
    epoch = [m for m in read_metrics(tmp_path / "r") if m["kind"] == "epoch"][0]
    assert epoch["skipped_images"] == 2 and "2 unreadable images skipped" in r.stdout


def test_nan_loss_stops_and_leaves_last_checkpoint_untouched(cifar_small, tmp_path, monkeypatch):
    sets = TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}", "optim.epochs=1"]
    train(load_train_config(None, sets))
    before = (tmp_path / "r" / "last.pt").read_bytes()
    from vitkit.training import losses

    monkeypatch.setattr(losses.DistillationLoss, "forward", lambda self, o, t, x=None: o.sum() * float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2"):
        train(load_train_config(None, sets + ["optim.epochs=2", "run.resume=true"]))
    assert (tmp_path / "r" / "last.pt").read_bytes() == before


def test_bad_inputs_give_one_line_errors(cifar_small, tmp_path):
    r = cli("train", "--data", tmp_path / "nope", "--out", tmp_path / "r")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such directory" in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02garbage")
    for args in (("eval", "--checkpoint", bad, "--data", cifar_small),
                 ("predict", "--checkpoint", bad, cifar_small / "test" / "cat" / "0000.jpg")):
        r = cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.pt" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    r = cli("train", "--config", tmp_path / "missing.yaml")
    assert r.returncode == 2 and "missing.yaml does not exist" in r.stderr
    run = tmp_path / "existing"
    run.mkdir()
    (run / "last.pt").write_bytes(b"precious")
    r = cli("train", "--data", cifar_small, "--out", run)
    assert r.returncode == 2 and "already holds a run" in r.stderr
    assert (run / "last.pt").read_bytes() == b"precious"


def test_eval_and_predict_commands(cifar_small, tmp_path):
    cfg = load_train_config(None, TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}", "optim.epochs=1",
                                          "run.precision=fp32"])
    last = train(cfg)
    r = cli("eval", "--checkpoint", tmp_path / "r", "--data", cifar_small, "--json", "--precision", "fp32", check=True)
    res = json.loads(r.stdout)
    # the one epoch's own evaluation (fp32, same images): the same figure; 10 images per class
    assert res["images"] == 100 and abs(res["top1"] - last["top1"]) < 1e-9, (res["top1"], last["top1"])
    assert set(res["per_class"]) == set(cfg.data.classes or res["per_class"]) and len(res["per_class"]) == 10
    assert abs(sum(res["per_class"].values()) / 10 - res["top1"]) < 1e-6
    good = cifar_small / "test" / "cat" / "0000.jpg"
    (tmp_path / "bad.jpg").write_text("nope")
    r = cli("predict", "--checkpoint", tmp_path / "r", good, tmp_path / "missing.jpg", tmp_path / "bad.jpg",
            "--topk", 3, "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert [bool(o["error"]) for o in out] == [False, True, True]
    assert len(out[0]["topk"]) == 3 and out[0]["topk"][0]["label"] in res["per_class"]
    every = json.loads(cli("predict", "--checkpoint", tmp_path / "r", good, "--topk", 10, "--json", check=True).stdout)
    probs = [t["prob"] for t in every[0]["topk"]]
    assert abs(sum(probs) - 1.0) < 1e-4 and probs == sorted(probs, reverse=True)  # a softmax over 10 classes
    assert out[0]["topk"] == every[0]["topk"][:3]
    r = cli("predict", "--checkpoint", tmp_path / "r", good, check=True)
    assert r.returncode == 0 and str(good) in r.stdout


def test_resume_auto_starts_fresh_then_continues(cifar_small, tmp_path):
    """One command for a requeued job: no last.pt → a fresh start; last.pt → continue it."""
    args = ["train", "--data", cifar_small, "--out", tmp_path / "r", "--lr", "1e-3", "--resume", "auto",
            "--max-steps", 3, *[a for s in TINY for a in ("--set", s)]]
    cli(*args, "--epochs", 1, check=True)
    cli(*args, "--epochs", 2, check=True)
    assert [m["epoch"] for m in read_metrics(tmp_path / "r") if m["kind"] == "epoch"] == [1, 2]
