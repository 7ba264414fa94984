"""Original JAX .npz layout: timm's own loader and vitkit give the same logits from one file."""
import numpy as np
import pytest
import torch

import vitkit
from vitkit.checkpoint.jax_format import vitkit_to_jax
from vitkit.checkpoint.native import model_state_dict

import timm


@pytest.fixture
def npz_file(tmp_path):
    source = vitkit.create_model("vit_tiny_patch16_224", num_classes=11, img_size=64)
    with torch.no_grad():  # non-trivial biases / norms so a mapping slip cannot hide
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path / "ViT-Ti_16.npz"
    np.savez(path, **vitkit_to_jax(model_state_dict(source), source.cfg))
    return path, source


def test_npz_matches_timm_loader(npz_file):
    path, source = npz_file
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=11, img_size=64).eval()
    ref.load_pretrained(str(path))
    model = vitkit.load_model(path)
    assert model.cfg.num_heads == 3 and model.cfg.act == "gelu"  # heads from kernel shapes; erf GELU as timm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-4
        assert (model(x) - source.eval()(x)).abs().max() < 1e-5  # the mapping is an exact inverse


def test_npz_resized_at_load_like_timm(npz_file):
    path, _ = npz_file
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=11, img_size=96).eval()
    ref.load_pretrained(str(path))  # timm resamples bilinearly without antialias here
    model = vitkit.load_model(path, img_size=96)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-4


def test_npz_with_tanh_gelu_override(npz_file):
    path, _ = npz_file
    assert vitkit.load_model(path, act="gelu_tanh").cfg.act == "gelu_tanh"
