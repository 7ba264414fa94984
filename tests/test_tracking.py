"""`--log-to tensorboard,mlflow,wandb`: each tool's own reader finds the scalars per step and per
evaluation, the hyperparameters and the attention pictures; a resumed run continues the same
tracked runs; a missing package is a one-line error before any work."""
import glob
import json
import os
import struct
from pathlib import Path

import pytest

from test_train import cli, read_metrics

ARGS = ["--model", "vit_tiny_patch4_32", "--set", "model.overrides={depth: 2}", "--set", "data.train_crop=pad_crop",
        "--workers", "0", "--cache", "none", "--batch-size", "100", "--no-progress", "--log-every", "1",
        "--lr", "2e-3", "--log-to", "tensorboard,mlflow,wandb"]


def _env(tmp_path: Path) -> dict:
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp_path / "wandb_dir"), "WANDB_SILENT": "true"}


def _run(tmp_path, *extra):
    import subprocess
    import sys

    from test_train import ENV

    return subprocess.run([sys.executable, "-m", "vitkit", "train", *map(str, extra)], capture_output=True,
                          text=True, env={**ENV, **_env(tmp_path)}, timeout=600, cwd=tmp_path)


def _wandb_records(path: Path) -> list:
    """W&B's offline transaction log (RUN.wandb): a ':W&B' header, then LevelDB-log records
    (crc 4, length 2, type 1 | data) in 32 KiB blocks; each record one wandb_internal Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, records, pending = path.read_bytes(), [], b""
    assert data[:4] == b":W&B"
    pos, block = 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(pending)
            records.append(rec)
            pending = b""
    return records


def _wandb_config(run_dir: Path) -> dict:
    config = {}
    for f in sorted(run_dir.parent.glob(f"offline-run-*-{run_dir.name.rsplit('-', 1)[-1]}/run-*.wandb")):
        for rec in _wandb_records(f):
            if rec.WhichOneof("record_type") == "config":
                config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.config.update})
    return config


def _wandb_history(run_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(run_dir.parent.glob(f"offline-run-*-{run_dir.name.rsplit('-', 1)[-1]}/run-*.wandb")):
        for rec in _wandb_records(f):
            if rec.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return rows


def test_three_trackers_read_back_and_resume_continues_them(cifar_small, tmp_path):
    run = tmp_path / "run"
    r = _run(tmp_path, "--data", cifar_small, "--out", run, "--epochs", 2, *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [m for m in read_metrics(run) if m["kind"] == "step"]
    evals = [m for m in read_metrics(run) if m["kind"] == "epoch"]
    assert len(steps) == 6 and len(evals) == 2

    # TensorBoard: its event reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    ea = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("train/loss")] == [s["step"] for s in steps]
    assert [round(e.value, 5) for e in ea.Scalars("train/loss")] == [round(s["loss"], 5) for s in steps]
    assert [round(e.value, 4) for e in ea.Scalars("eval/top1")] == [round(e["top1"], 4) for e in evals]
    assert {"attention/0", "attention/3"} <= set(ea.Tags()["images"]) and len(ea.Images("attention/0")) == 2
    content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hp["optim.lr"].number_value == pytest.approx(2e-3) and hp["model.name"].string_value == "vit_tiny_patch4_32"

    # MLflow: its client
    from mlflow.tracking import MlflowClient

    os.environ.update(_env(tmp_path))
    client = MlflowClient()
    (mrun,) = client.search_runs([client.get_experiment_by_name("vitkit").experiment_id])
    assert [m.step for m in client.get_metric_history(mrun.info.run_id, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [round(m.value, 4) for m in client.get_metric_history(mrun.info.run_id, "eval/top1")] == \
        [round(e["top1"], 4) for e in evals]
    assert mrun.data.params["optim.batch_size"] == "100" and mrun.info.status == "FINISHED"
    assert len(client.list_artifacts(mrun.info.run_id, "attention")) == 8  # 4 images × 2 evaluations

    # W&B: its offline transaction log
    (wandb_run,) = (tmp_path / "wandb_dir" / "wandb").glob("offline-run-*")
    history = _wandb_history(wandb_run)
    assert [h["train/loss"] for h in history if "train/loss" in h] == pytest.approx([s["loss"] for s in steps])
    assert [h["eval/top1"] for h in history if "eval/top1" in h] == pytest.approx([e["top1"] for e in evals])
    config = _wandb_config(wandb_run)
    assert config["optim.lr"] == pytest.approx(2e-3) and config["model.name"] == "vit_tiny_patch4_32"
    pictures = [h for h in history if h.get("attention/0/_type") == "image-file"]
    assert len(pictures) == 2 and all((wandb_run / "files" / p["attention/3/path"]).is_file() for p in pictures)

    # Resume: the same MLflow run and W&B id continue; TensorBoard's folder grows
    r = _run(tmp_path, "--out", run, "--resume", "--epochs", 3, "--no-progress", "--log-to", "tensorboard,mlflow,wandb")
    assert r.returncode == 0, r.stderr[-3000:]
    (again,) = client.search_runs([client.get_experiment_by_name("vitkit").experiment_id])
    assert again.info.run_id == mrun.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(mrun.info.run_id, "eval/top1")] == [3, 6, 9]
    runs = list((tmp_path / "wandb_dir" / "wandb").glob("offline-run-*"))
    assert {p.name.rsplit("-", 1)[-1] for p in runs} == {wandb_run.name.rsplit("-", 1)[-1]}  # one W&B id
    ea = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("eval/top1")] == [3, 6, 9]


def test_missing_tracker_package_is_one_line_naming_the_extra(cifar_small, tmp_path, monkeypatch):
    import importlib.util

    from vitkit.errors import UsageError
    from vitkit.training import tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda n: None if n == "wandb" else real(n))
    with pytest.raises(UsageError, match=r"--log-to wandb: the wandb package is not installed; pip install 'vitkit\[tracking\]'"):
        tracking.check_available(["tensorboard", "wandb"])
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", "--log-to", "tensorbord")
    assert r.returncode == 2 and "run.log_to: 'tensorbord' is not a choice: choose any of tensorboard, mlflow, wandb" in r.stderr
    assert not (tmp_path / "r").exists()
