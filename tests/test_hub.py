"""Weights by name from the Hugging Face Hub, offline, from a cache this test builds in the Hub's
real on-disk layout (models--ORG--REPO/{blobs,refs,snapshots}): timm's and transformers' repo
layouts give the source's logits and preprocessing; `create_model(pretrained=True)` maps to
timm's default tag; offline and not cached is one line, exit 2. No network, no mock."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train import ENV

import timm
import transformers
from safetensors.torch import save_file  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_cache(hf_home: Path, repo: str, files: dict[str, Path]) -> None:
    """Store files as huggingface_hub does: content-addressed blobs, a snapshot of symlinks, refs/main."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / COMMIT
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, src in files.items():
        blob = root / "blobs" / hashlib.sha256(src.read_bytes()).hexdigest()
        shutil.copyfile(src, blob)
        (snap / name).symlink_to(os.path.relpath(blob, snap))


def logits_offline(hf_home: Path, tmp: Path, code: str, x: torch.Tensor):
    """Run `code` (which sets `model`) in a fresh process, offline against `hf_home`."""
    torch.save(x, tmp / "x.pt")
    script = (f"import torch, vitkit\n{code}\n"
              f"torch.save({{'y': model(torch.load({str(tmp / 'x.pt')!r})), 'pre': model.preprocess, "
              f"'names': model.class_names}}, {str(tmp / 'y.pt')!r})")
    env = {**ENV, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return torch.load(tmp / "y.pt", weights_only=True)


def test_timm_layout_by_name_and_pretrained_true(tmp_path):
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3).eval()
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"))
    cfg = {"architecture": "vit_tiny_patch16_224", "num_classes": 3, "global_pool": "token",
           "label_names": ["cat", "dog", "eel"],
           "pretrained_cfg": {"tag": "augreg_in21k_ft_in1k", "input_size": [3, 224, 224], "interpolation": "bicubic",
                              "crop_pct": 0.9, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 3}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    hf_home = tmp_path / "hf"
    put_in_cache(hf_home, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
                 {"config.json": tmp_path / "config.json", "model.safetensors": tmp_path / "model.safetensors"})
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = ref(x)
    for code in ("model = vitkit.load_model('hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k')",
                 f"model = vitkit.load_model('hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k@{COMMIT}')",
                 "model = vitkit.create_model('vit_tiny_patch16_224', pretrained=True)"):
        got = logits_offline(hf_home, tmp_path, code + "\nmodel.eval().requires_grad_(False)", x)
        assert (got["y"] - want).abs().max() < 1e-4, code
        assert got["pre"]["crop_pct"] == 0.9 and got["pre"]["mean"] == [0.5, 0.5, 0.5], got["pre"]
        assert got["names"] == ["cat", "dog", "eel"]


def test_transformers_layout_by_name(tmp_path):
    torch.manual_seed(0)
    hf_cfg = transformers.ViTConfig(hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                                    intermediate_size=384, image_size=64, patch_size=8, num_labels=4)
    ref = transformers.ViTForImageClassification(hf_cfg).eval()
    ref.save_pretrained(tmp_path / "src")
    pre = {"do_resize": True, "size": {"height": 64, "width": 64}, "resample": 2, "image_mean": [0.5] * 3,
           "image_std": [0.5] * 3, "image_processor_type": "ViTImageProcessor"}
    (tmp_path / "src" / "preprocessor_config.json").write_text(json.dumps(pre))
    hf_home = tmp_path / "hf"
    put_in_cache(hf_home, "google/vit-test-tiny", {f.name: f for f in (tmp_path / "src").iterdir()})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = ref(pixel_values=x).logits
    got = logits_offline(hf_home, tmp_path, "model = vitkit.load_model('hf-hub:google/vit-test-tiny')\n"
                                            "model.requires_grad_(False)", x)
    assert (got["y"] - want).abs().max() < 1e-4
    assert got["pre"]["img_size"] == 64 and got["pre"]["interpolation"] == "bilinear"


@pytest.mark.parametrize("argv", [
    ["eval", "--checkpoint", "hf-hub:nobody/not-cached", "--data", "DATA"],
    ["predict", "--checkpoint", "hf-hub:nobody/not-cached", "IMG"],
    ["convert", "hf-hub:nobody/not-cached", "OUT"],
])
def test_offline_and_not_cached_is_one_line_exit_2(tmp_path, cifar_small, argv):
    img = next(Path(cifar_small).rglob("*.jpg"))
    argv = [str({"DATA": cifar_small, "IMG": img, "OUT": tmp_path / "out"}.get(a, a)) for a in argv]
    env = {**ENV, "HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "vitkit", *argv], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "not in the Hugging Face cache" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_pretrained_for_a_name_without_published_weights_is_one_line():
    import vitkit
    from vitkit.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no published weights are known for 'vit_tiny_patch4_32'"):
        vitkit.create_model("vit_tiny_patch4_32", pretrained=True)
