"""`vitkit embed` and `vitkit eval --knn`: features equal the model's own (head input, any block,
cls or mean), files hold one row per readable image with its path, and the k-NN vote is right."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import vitkit
from vitkit.errors import UsageError
from vitkit.data.folders import ImageFolderSafe
from vitkit.inference.embed import embed_dataset, knn_classify
from vitkit.data.transforms import transform_for

from test_train import cli


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    model = vitkit.create_model("vit_tiny_patch4_32", depth=3, num_classes=10)
    vitkit.save_model(model, tmp_path / "m", preprocess={"img_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                                         "crop_pct": 1.0, "interpolation": "bilinear"})
    return tmp_path / "m"


def test_features_equal_the_models_own(cifar_small, tiny_model_dir):
    model = vitkit.load_model(tiny_model_dir)
    ds = ImageFolderSafe(Path(cifar_small) / "test", transform_for(model))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        head_input = model.forward_head(model.forward_features(x), pre_logits=True)
        mid = model.forward_intermediates(x, indices=[1], norm=True, output_fmt="NLC",
                                          return_prefix_tokens=True, intermediates_only=True)[0]
    for layer, pool, want in ((None, "auto", head_input), (1, "mean", mid[0].mean(1)), (-2, "cls", mid[1][:, 0])):
        got = embed_dataset(model, ds, layer, pool, batch_size=32, workers=0)
        assert got["features"].shape == (len(ds), 192) and got["paths"] == [p for p, _ in ds.samples]
        assert (got["features"] - want).abs().max() < 1e-4, (layer, pool)
        assert got["labels"].tolist() == [y for _, y in ds.samples]


@pytest.mark.parametrize("suffix", [".safetensors", ".npy"])
def test_embed_cli_writes_one_row_per_readable_image(cifar_small, tiny_model_dir, tmp_path, suffix):
    data = tmp_path / "d"
    shutil.copytree(Path(cifar_small) / "test", data)
    (data / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / f"f{suffix}"
    r = cli("embed", "--checkpoint", tiny_model_dir, "--data", data, "--out", out, "--layer", "-1", "--pool", "mean",
            "--workers", "0", check=True)
    assert "1 unreadable images skipped" in r.stdout
    if suffix == ".safetensors":
        with safe_open(str(out), "pt") as f:
            feats, labels, info = f.get_tensor("features"), f.get_tensor("labels"), json.loads(f.metadata()["vitkit_embed"])
    else:
        feats, info = torch.from_numpy(np.load(out)), json.loads(out.with_suffix(".json").read_text())
        labels = torch.tensor(info["labels"])
    assert feats.shape == (100, 192) and len(info["paths"]) == len(labels) == 100
    assert info["skipped"] == [str(data / "cat" / "broken.jpg")] and info["classes"][0] == "airplane"


def test_knn_votes_by_cosine_neighbours():
    torch.manual_seed(0)
    centers = torch.randn(3, 16) * 5
    mem_y = torch.arange(3).repeat_interleave(20)
    mem = centers[mem_y] + torch.randn(60, 16)
    q_y = torch.tensor([0, 1, 2, 2, 1, 0])
    q = centers[q_y] + torch.randn(6, 16)
    assert knn_classify(mem, mem_y, q, k=5, num_classes=3).argmax(1).tolist() == q_y.tolist()
    with pytest.raises(UsageError, match="--knn 61"):
        knn_classify(mem, mem_y, q, k=61, num_classes=3)


@pytest.mark.parametrize("argv, message", [
    (["embed", "--out", "OUT/f.txt"], "choose a .npy or .safetensors file"),
    (["embed", "--out", "OUT/f.npy", "--layer", "7"], "--layer 7 is out of range for 3 blocks"),
    (["eval", "--knn", "0"], "K must be at least 1"),
])
def test_bad_embed_and_knn_options_are_one_line_errors(cifar_small, tiny_model_dir, tmp_path, argv, message):
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in argv]
    r = cli(*argv, "--checkpoint", tiny_model_dir, "--data", cifar_small)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
