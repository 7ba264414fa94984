"""FSDP2 on 2 CPU processes (gloo): the same steps as DDP, gradient checkpointing, sharded
Distributed Checkpoint that resumes on another number of processes and consolidates into one
file."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vitkit
from vitkit.cli.main import main
from vitkit.checkpoint.dcp import consolidated_model_state

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
COMMON = ["train", "--epochs", "2", "--max-steps", "12", "--lr", "1e-3", "--batch-size", "32", "--precision", "fp32",
          "--device", "cpu", "--no-progress", "--checkpoint-every", "4", "--set", "model.name=vit_tiny_patch4_32",
          "--set", "model.overrides={depth: 2}", "--set", "data.train_crop=resize", "--set", "data.hflip=0",
          "--set", "model.drop_path_rate=0", "--set", "data.workers=0", "--set", "run.log_every=1"]


def _torchrun(*args, nproc: int = 2) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "vitkit", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300)


def _failure(name: str, r: subprocess.CompletedProcess) -> str:
    """Both ends of a failed run's stderr: under torchrun the failing rank's own lines come first and
    torchrun's summary last (a rare `terminate called without an active exception` in CI showed only the end)."""
    err = r.stderr
    return f"{name}: rc {r.returncode}\n" + (err if len(err) <= 6000 else err[:3000] + "\n[...]\n" + err[-3000:])


def _losses(run: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in x
            and json.loads(x)["kind"] == "step"]


@pytest.fixture(scope="module")
def runs(cifar_small, tmp_path_factory):
    """2-process runs of the same config: DDP, FSDP2, FSDP2 with gradient checkpointing."""
    root = tmp_path_factory.mktemp("fsdp")
    for name, extra in (("ddp", []), ("fsdp", ["--strategy", "fsdp"]),
                        ("fsdp_gc", ["--strategy", "fsdp", "--set", "model.grad_checkpointing=true"])):
        r = _torchrun(*COMMON, "--data", cifar_small, "--out", root / name, *extra)
        assert r.returncode == 0, _failure(name, r)
    return root


@pytest.mark.slow
def test_fsdp_trains_step_for_step_like_ddp(runs):
    ddp, fsdp, gc = _losses(runs / "ddp"), _losses(runs / "fsdp"), _losses(runs / "fsdp_gc")
    assert len(ddp) == len(fsdp) == len(gc) == 12
    assert max(abs(a - b) for a, b in zip(ddp, fsdp)) < 1e-4, (ddp, fsdp)
    assert max(abs(a - b) for a, b in zip(fsdp, gc)) < 1e-5, (fsdp, gc)
    a = torch.load(runs / "ddp" / "last.pt", weights_only=True)["model_state"]
    b = consolidated_model_state(runs / "fsdp" / torch.load(runs / "fsdp" / "last.pt", weights_only=True)["sharded"])
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


@pytest.mark.slow
def test_sharded_checkpoint_resumes_on_one_process_and_converts(runs, cifar_small, tmp_path):
    run = runs / "fsdp"
    meta = torch.load(run / "last.pt", weights_only=True)
    assert meta["model_state"] is None and meta["optimizer"] is None  # weights only in the shards
    folder = run / meta["sharded"]
    assert sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert len(list(run.glob("last-step*.dcp"))) == 1  # older sharded checkpoints removed
    # converted: one ordinary file, equal to the consolidated shards
    assert main(["convert", str(run / "last.pt"), str(tmp_path / "one"), "--to", "vitkit"]) == 0
    single = load_file(tmp_path / "one" / "model.safetensors")
    full = consolidated_model_state(folder)
    assert all(torch.equal(single[k], full[k]) for k in full)
    assert vitkit.load_model(tmp_path / "one").cfg.depth == 2
    # resumed by one process (another world size): DCP reshards, the run goes on from step 12
    moved = tmp_path / "resumed"
    import shutil

    shutil.copytree(run, moved)
    r = subprocess.run([sys.executable, "-m", "vitkit", "train", "--out", str(moved), "--resume", "--epochs", "3", "--max-steps", "16",
                        "--no-progress"], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, _failure("resume on one process", r)
    after = torch.load(moved / "last.pt", weights_only=True)
    assert after["step"] == 16 and after["sharded"]
    assert sorted(p.name for p in (moved / after["sharded"]).glob("*.distcp")) == ["__0_0.distcp"]


def test_fsdp_refuses_what_it_does_not_support(cifar_small, tmp_path, capsys):
    for extra in (["--strategy", "fsdp", "--ema", "0.99"], ["--set", "run.strategy=zero3"]):
        rc = main(["train", "--data", str(cifar_small), "--out", str(tmp_path / "r"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "strategy" in err, err
        assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_fsdp_with_torch_compile_takes_the_same_steps(runs, cifar_small, tmp_path):
    """FSDP2 under torch.compile (inductor on the CPU): the same losses as eager FSDP2."""
    args = [a if a != "12" else "6" for a in COMMON]  # --max-steps 6: compilation is the cost
    r = _torchrun(*args, "--data", cifar_small, "--out", tmp_path / "c", "--strategy", "fsdp", "--compile")
    assert r.returncode == 0, _failure("fsdp + compile", r)
    compiled, eager = _losses(tmp_path / "c"), _losses(runs / "fsdp")[:6]
    assert len(compiled) == 6 and max(abs(a - b) for a, b in zip(compiled, eager)) < 1e-4, (compiled, eager)
