"""The bundled CIFAR-10 model: loads by name everywhere a checkpoint is taken, classifies the
bundled sample well above chance, and fine-tuning from it beats training from scratch."""
import json

import torch

import vitkit
from vitkit.pretrained import list_bundled

from test_train import cli


def test_bundled_model_is_in_the_package_and_loads_by_name():
    assert "cifar10_vit_tiny" in list_bundled()
    model = vitkit.load_model("cifar10_vit_tiny")
    assert model.cfg.num_classes == 10 and model.class_names[:2] == ["airplane", "automobile"]
    assert model.preprocess["img_size"] == 32
    assert all(p.dtype == torch.float32 for p in model.parameters())  # stored fp16, computes fp32


def test_bundled_model_classifies_the_sample():
    r = cli("eval", "--checkpoint", "cifar10_vit_tiny", "--data", "sample", "--json", check=True)
    m = json.loads(r.stdout)
    assert m["images"] == 200 and m["top1"] > 60.0, m  # 10% is chance; the card gives the full test set
    r = cli("predict", "--checkpoint", "cifar10_vit_tiny", "--json",
            *sorted(str(p) for p in (vitkit.pretrained.HERE.parent / "sample_data").rglob("test/cat/*.jpg"))[:5],
            check=True)
    assert len(json.loads(r.stdout)) == 5


def test_finetune_from_the_bundled_model_beats_scratch(cifar_small, tmp_path):
    common = ["--data", cifar_small, "--epochs", 1, "--max-steps", 4, "--batch-size", 32, "--no-progress",
              "--set", "data.workers=0", "--set", "optim.warmup_epochs=0.1"]
    cli("finetune", "--init", "cifar10_vit_tiny", "--out", tmp_path / "ft", *common, check=True)
    cli("train", "--config", "recipes/cifar10_speedrun_cpu.yaml", "--out", tmp_path / "scratch", *common,
        "--set", "optim.budget_minutes=null", check=True)
    top1 = {}
    for run in ("ft", "scratch"):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        top1[run] = [json.loads(x) for x in lines if json.loads(x)["kind"] == "epoch"][-1]["top1"]
    assert top1["ft"] > top1["scratch"] + 20, top1
