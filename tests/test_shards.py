"""WebDataset shards: written from an ImageFolder byte for byte, split across ranks and
DataLoader workers without overlap (each sample once per epoch), trained from like the folder,
under torchrun, resumed mid-epoch exactly, and bad input as one line."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vitkit.cli.main import main
from vitkit.data.shards import TAR_END, ShardLoader, ShardStream, expand_shards, sample_index, sample_tar_bytes

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
TINY = ["--set", "model.name=vit_tiny_patch4_32", "--set", "model.overrides={depth: 2}", "--set", "data.train_crop=pad_crop",
        "--set", "run.progress=false", "--set", "optim.warmup_epochs=1", "--set", "run.log_every=1",
        "--set", "data.cache=none", "--batch-size", "30", "--lr", "2e-3"]


def _sha(b: bytes) -> str:
    return hashlib.sha1(b).hexdigest()


@pytest.fixture(scope="module")
def shards(cifar_small, tmp_path_factory) -> Path:
    """The 300 training images as 4 shards of 75 (and the 100 test images)."""
    out = tmp_path_factory.mktemp("shards") / "s"
    # sorted sizes, heaviest quarter: a size that fits any 75 samples, and not 300 / 3 = 100 of the lightest
    costs = sorted(sample_tar_bytes(p.stat().st_size) for p in (cifar_small / "train").rglob("*.jpg"))
    size = sum(costs[-75:]) + TAR_END
    assert sum(costs[:100]) + TAR_END > size
    assert main(["shards", str(cifar_small), "--out", str(out), "--shard-size", f"{size}B"]) == 0
    for tar in out.glob("*.tar"):  # --shard-size bounds the tar files, headers included
        assert tar.stat().st_size <= size, (tar, tar.stat().st_size, size)
    return out


def test_shard_size_bounds_the_tar_files(cifar_small, tmp_path):
    out = tmp_path / "s"
    assert main(["shards", str(cifar_small), "--out", str(out), "--shard-size", "100KB"]) == 0
    tars = sorted(out.glob("train-*.tar"))
    assert len(tars) > 1 and all(t.stat().st_size <= 100_000 for t in tars), [t.stat().st_size for t in tars]
    assert json.loads((out / "dataset.json").read_text())["splits"]["train"]["samples"] == 300


def test_shards_hold_every_image_byte_for_byte_with_the_class_table(shards, cifar_small):
    m = json.loads((shards / "dataset.json").read_text())
    assert m["classes"] == sorted(p.name for p in (cifar_small / "train").iterdir())
    assert m["splits"]["train"] == {"samples": 300, "shards": 4, "pattern": "train-{000000..000003}.tar"}
    assert m["splits"]["test"]["samples"] == 100
    members = {}
    for tar in sorted(shards.glob("train-*.tar")):
        with tarfile.open(tar) as t:
            for f in t.getmembers():
                members[f.name] = t.extractfile(f).read()
    images = {k.rsplit(".", 1)[0]: v for k, v in members.items() if k.endswith(".jpg")}
    assert len(images) == 300 and len(members) == 600  # jpg + cls per sample
    source = {_sha(p.read_bytes()): p.parent.name for p in (cifar_small / "train").rglob("*.jpg")}
    for key, data in images.items():  # the bytes as they were, under the right class index
        assert m["classes"][int(members[key + ".cls"])] == source[_sha(data)]
    assert sorted(int(k) for k in images) == list(range(300))  # keys: the index in the split
    for tar in shards.glob("train-*.tar"):  # equal shards: the condition for exactly once
        with tarfile.open(tar) as t:
            assert sum(n.endswith(".jpg") for n in t.getnames()) == 75


def _index_only(sample, transform, aug_key):
    """The sample's index in its split instead of its pixels: which samples a rank saw."""
    return torch.tensor(sample_index(sample)), int(sample["cls"])


def _rank_epochs(rank: int, world: int, port: int, urls: list[str], out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    loader = ShardLoader(ShardStream(urls, None, seed=3, shuffle_buffer=50, decode=_index_only),
                         per_proc=15, batches=10, workers=2)
    seen = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen.append([int(i) for x, _, _ in loader for i in x])
    gathered = [None] * world
    dist.all_gather_object(gathered, seen)
    if rank == 0:
        Path(out).write_text(json.dumps(gathered))
    dist.destroy_process_group()


def test_two_gloo_ranks_with_two_workers_see_each_sample_once_per_epoch(shards, tmp_path):
    urls = expand_shards(str(shards / "train-{000000..000003}.tar"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_epochs, args=(2, port, urls, str(tmp_path / "seen.json")), nprocs=2, join=True)
    seen = json.loads((tmp_path / "seen.json").read_text())  # [rank][epoch] → indices
    for epoch in range(2):
        both = seen[0][epoch] + seen[1][epoch]
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 150  # the same steps on each rank
        assert sorted(both) == list(range(300)), "a sample was skipped or seen twice"
    assert seen[0][0] != seen[0][1]  # reshuffled each epoch


def _final(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def test_training_from_shards_learns_like_training_from_the_folder(shards, cifar_small, tmp_path):
    runs = {}
    for name, data in (("folder", str(cifar_small)), ("shards", str(shards / "train-{000000..000003}.tar"))):
        r = subprocess.run([sys.executable, "-m", "vitkit", "train", "--data", data, "--out", str(tmp_path / name),
                            "--epochs", "4", "--workers", "2", *TINY], capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = [x for x in rows if x["kind"] == "epoch"]
    for name, epochs in runs.items():
        assert len(epochs) == 4 and epochs[-1]["step"] == 40, name  # 300 // 30 steps per epoch
        assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.1, (name, epochs)
        assert epochs[-1]["top1"] > 15.0, (name, epochs[-1])  # 10% is chance; 100 test images
    assert abs(runs["folder"][-1]["top1"] - runs["shards"][-1]["top1"]) < 15.0, runs


@pytest.mark.slow
def test_sigkill_mid_epoch_over_shards_resumes_to_identical_weights(shards, tmp_path):
    args = ["train", "--data", str(shards / "train-{000000..000003}.tar"), "--val-data", str(shards),
            "--epochs", "2", "--deterministic", "--seed", "4", "--workers", "0", *TINY,
            "--set", "data.mixup=0.2", "--set", "data.auto_augment=randaugment"]
    r = subprocess.run([sys.executable, "-m", "vitkit", *args, "--out", str(tmp_path / "full")],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vitkit", *args, "--out", str(run), "--checkpoint-every", "3"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run / "last.pt").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pos = _final(run)["position"]
    assert pos[0] == 0 and 0 < pos[1] < 10, pos
    r = subprocess.run([sys.executable, "-m", "vitkit", *args, "--out", str(run), "--resume"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _final(tmp_path / "full")["model_state"], _final(run)["model_state"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


@pytest.mark.slow
def test_torchrun_two_processes_train_from_shards(shards, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                        "127.0.0.1", "--master_port", str(port), "-m", "vitkit", "train",
                        "--data", str(shards / "train-{000000..000003}.tar"), "--out", str(tmp_path / "r"),
                        "--epochs", "2", "--workers", "1", "--device", "cpu", *TINY],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if x["kind"] == "epoch"] == [10, 20]


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "SHARDS/train-{000000..000009}.tar", "--out", "OUT/r"], "shards do not exist"),
    (["train", "--data", "NOMANIFEST/x-{000000..000000}.tar", "--out", "OUT/r"], "manifest"),
    (["shards", "DATA", "--out", "OUT/s", "--shard-size", "0MB"], "--shard-size"),
    (["shards", "DATA", "--out", "OUT/s", "--shard-size", "lots"], "--shard-size"),
    (["shards", "DATA", "--out", "SHARDS"], "not empty"),
    (["shards", "DATA", "--out", "SHARDS/dataset.json"], "not a folder"),
    (["shards", "OUT/missing", "--out", "OUT/s"], "no such directory"),
])
def test_bad_shard_input_is_one_line_exit_2(argv, message, shards, cifar_small, tmp_path, capsys):
    (tmp_path / "nomanifest").mkdir()
    (tmp_path / "nomanifest" / "x-000000.tar").write_bytes((shards / "train-000000.tar").read_bytes())
    (tmp_path / "out").mkdir()
    sub = {"SHARDS": str(shards), "DATA": str(cifar_small), "NOMANIFEST": str(tmp_path / "nomanifest"),
           "OUT": str(tmp_path / "out")}
    argv = [next((a.replace(k, v) for k, v in sub.items() if a.startswith(k)), a) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert list((tmp_path / "out").iterdir()) == []
