"""Never lose more than a few minutes: mid-epoch checkpoints, signals, torchrun elastic
restarts and failed writes, tested by killing real processes (README "When a run is
interrupted")."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitkit.cli.main import main
from vitkit.errors import EXIT_PREEMPTED, UsageError
from vitkit.training.checkpointing import Every, parse_every

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# A 2-block tiny ViT; 300 training images / batch 32 = 9 steps per epoch, 3 epochs = 27 steps.
TINY = ["model.name=vit_tiny_patch4_32", "model.overrides={depth: 2}", "data.workers=0", "run.progress=false",
        "optim.batch_size=32", "optim.warmup_epochs=1", "run.log_every=1", "model.drop_path_rate=0.1"]
PATHS = {  # the per-image folder path (RandAugment, MixUp) and the decoded tensor path
    "folder": ["data.train_crop=pad_crop", "data.auto_augment=randaugment", "data.mixup=0.2", "data.cache=none"],
    "tensor": ["data.train_crop=pad_crop", "data.cache=memory", "model.patch_dropout=0.25"],
}


def _args(data: Path, path: str, *extra) -> list[str]:
    sets = [a for s in TINY + PATHS[path] for a in ("--set", s)]
    return ["train", "--data", str(data), "--epochs", "3", "--lr", "1e-3", "--deterministic", "--seed", "5",
            *sets, *map(str, extra)]


def _vitkit(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitkit", *args], capture_output=True, text=True, env=ENV,
                          timeout=300, **kw)


def _start(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vitkit", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc, timeout=240.0):
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def _state(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _steps_logged(run: Path) -> int:
    f = run / "metrics.jsonl"
    return sum('"kind": "step"' in line for line in f.read_text().splitlines()) if f.exists() else 0


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _state(a)["model_state"], _state(b)["model_state"]
    assert wa.keys() == wb.keys()
    worst = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    assert worst <= 1e-6, worst


@pytest.fixture(scope="module")
def full_runs(cifar_small, tmp_path_factory):
    """The uninterrupted reference run of each data path, computed once."""
    cache = {}

    def get(path: str) -> Path:
        if path not in cache:
            out = tmp_path_factory.mktemp("full") / path
            r = _vitkit(_args(cifar_small, path, "--out", out))
            assert r.returncode == 0, r.stderr
            cache[path] = out
        return cache[path]
    return get


def test_checkpoint_every_parses_steps_and_times():
    assert parse_every("500") == Every(steps=500) and parse_every(500) == Every(steps=500)
    assert parse_every("10m") == Every(seconds=600.0) and parse_every("90s") == Every(seconds=90.0)
    assert parse_every("1.5h") == Every(seconds=5400.0) and parse_every(None) is None
    assert Every(steps=4).steps_due(8) and not Every(steps=4).steps_due(9) and not Every(steps=4).time_due(1e9)
    assert Every(seconds=60).time_due(61.0) and not Every(seconds=60).time_due(59.0)
    for bad in ("0", "-5m", "abc", "10 minutes", "2.5"):
        with pytest.raises(UsageError, match="checkpoint_every"):
            parse_every(bad)


def test_bad_checkpoint_every_is_refused_before_anything_is_written(cifar_small, tmp_path, capsys):
    rc = main(["train", "--data", str(cifar_small), "--out", str(tmp_path / "r"), "--checkpoint-every", "5x"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "checkpoint_every" in err and not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["folder", "tensor"])
def test_sigkill_mid_epoch_resumes_to_identical_weights(cifar_small, tmp_path, full_runs, path):
    """SIGKILL right after the first mid-epoch checkpoint; --resume skips the batches already
    trained and ends where the uninterrupted run ended (≤ 1e-6)."""
    run = tmp_path / "killed"
    proc = _start(_args(cifar_small, path, "--out", run, "--checkpoint-every", 2))
    _wait_for(lambda: (run / "last.pt").exists(), proc)
    proc.kill()
    proc.communicate()
    pos = _state(run)["position"]
    assert pos[0] == 0 and 0 < pos[1] < 9, f"not killed mid-epoch 1: {pos}; the test would prove nothing"
    r = _vitkit(_args(cifar_small, path, "--out", run, "--resume"))
    assert r.returncode == 0, r.stderr
    _assert_same_weights(full_runs(path), run)
    steps = [m["step"] for m in _metrics(run) if m["kind"] == "step"]
    assert steps == list(range(1, 28)), steps  # each step logged once, none skipped


@pytest.mark.slow
def test_sigterm_finishes_the_step_writes_last_and_exits_75(cifar_small, tmp_path, full_runs):
    run = tmp_path / "r"
    args = _args(cifar_small, "folder", "--out", run, "--resume", "auto")
    proc = _start(args)
    _wait_for(lambda: _steps_logged(run) >= 2, proc)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert time.time() - t0 < 10
    line = err.strip().splitlines()[-1]
    assert "SIGTERM" in line and "--resume auto" in line and "Traceback" not in err, err
    state = _state(run)
    assert state["step"] == _steps_logged(run) and state["position"][1] > 0  # mid-epoch, at the last step
    r = _vitkit(args)  # the requeued job: the same command
    assert r.returncode == 0, r.stderr
    _assert_same_weights(full_runs("folder"), run)


def _children(pid: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def _worker(agent: int, rank: int) -> int | None:
    for pid in _children(agent):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(env):
            return pid
    return None


def _torchrun(args, restarts: int) -> subprocess.Popen:
    """Two CPU workers with the static rendezvous on a free port (restarts also work with c10d
    since vitkit prefixes each attempt's store keys: train/distributed.py)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--max-restarts", str(restarts), "--master_addr", "127.0.0.1",
                             "--master_port", str(port), "-m", "vitkit", *args],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_torchrun_one_signalled_rank_stops_every_rank_at_the_same_step(cifar_small, tmp_path):
    """SIGUSR1 (SLURM's --signal) to rank 1 only: both ranks stop after the same step, rank 0
    writes last.pt, nothing hangs; `--resume auto` under torchrun then completes the run."""
    run = tmp_path / "r"
    args = _args(cifar_small, "tensor", "--out", run, "--resume", "auto", "--device", "cpu")
    proc = _torchrun(args, restarts=0)
    _wait_for(lambda: _steps_logged(run) >= 2, proc)
    worker = _worker(proc.pid, 1)
    assert worker is not None
    os.kill(worker, signal.SIGUSR1)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode != 0 and "SIGUSR1" in err, err[-2000:]
    # Rank 0 stops with the preemption code (torchrun then ends rank 1, which stopped with it).
    assert "stopped by SIGUSR1 in epoch 1" in err and "exitcode  : 75" in err, err[-2000:]
    state = _state(run)
    assert state["step"] == _steps_logged(run) and state["position"][1] > 0
    proc = _torchrun(args, restarts=0)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    assert [m["step"] for m in _metrics(run) if m["kind"] == "step"] == list(range(1, 28))


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_finishes_once(cifar_small, tmp_path):
    """torchrun --max-restarts 1, SIGKILL rank 1 after a mid-epoch checkpoint: the restarted
    workers resume from last.pt with no flag, and every step and epoch is recorded once."""
    run = tmp_path / "r"
    proc = _torchrun(_args(cifar_small, "tensor", "--out", run, "--checkpoint-every", 3, "--device", "cpu"), 1)
    _wait_for(lambda: (run / "last.pt").exists() and _steps_logged(run) >= 5, proc)
    killed_at = _state(run)["step"]
    os.kill(_worker(proc.pid, 1), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    m = _metrics(run)
    assert [r["resumed"] for r in m if r["kind"] == "start"] == [False, True], "no restart happened"
    assert [r["step"] for r in m if r["kind"] == "step"] == list(range(1, 28))
    assert [r["epoch"] for r in m if r["kind"] == "epoch"] == [1, 2, 3]
    assert _state(run)["step"] == 27 and 0 < killed_at < 27


def test_failed_checkpoint_write_keeps_last_and_best_and_exits_1(cifar_small, tmp_path, capsys, monkeypatch):
    """Disk full half-way through the 2nd epoch's last.pt: exit 1 with one line, last.pt and
    best.pt still the 1st epoch's (byte for byte, loadable), no temporary file left."""
    from vitkit.checkpoint import train_state as state_mod

    run = tmp_path / "r"
    argv = _args(cifar_small, "tensor", "--out", run, "--epochs", 2)
    real_save, calls = torch.save, []

    def save_then_fail(obj, f, *a, **kw):
        calls.append(Path(f).name)
        if len(calls) > 2:  # epoch 1 wrote best.pt and last.pt; the next write runs out of space
            Path(f).write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(state_mod.torch, "save", save_then_fail)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "No space left on device" in err and "--resume" in err, err
    assert len(calls) == 3
    for name in ("last.pt", "best.pt"):
        s = torch.load(run / name, weights_only=True)
        assert s["position"] == [1, 0] and s["step"] == 9
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.jsonl"]
    monkeypatch.setattr(state_mod.torch, "save", real_save)
    assert main(argv + ["--resume"]) == 0 and _state(run)["step"] == 18
