"""Hugging Face ViT / DeiT checkpoints (written with save_pretrained) give HF's logits, with every
weight perturbed first; and vitkit → HF conversions load back into transformers."""
import pytest
import torch

import vitkit

import transformers
from conftest import perturb_
from vitkit.checkpoint import convert


def _small(cls_cfg, **kw):
    return cls_cfg(hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=384,
                   image_size=64, patch_size=8, num_labels=7, **kw)


@pytest.fixture
def hf_vit(tmp_path):
    torch.manual_seed(0)
    m = perturb_(transformers.ViTForImageClassification(_small(transformers.ViTConfig))).eval()
    m.save_pretrained(tmp_path / "hf_vit")
    return m, tmp_path / "hf_vit"


@pytest.fixture
def hf_deit(tmp_path):
    torch.manual_seed(0)
    m = perturb_(transformers.DeiTForImageClassificationWithTeacher(_small(transformers.DeiTConfig))).eval()
    m.save_pretrained(tmp_path / "hf_deit")
    return m, tmp_path / "hf_deit"


def _check(hf_model, model, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = hf_model(pixel_values=x, interpolate_pos_encoding=size != (64, 64)).logits
        ours = model(x)
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (48, 80)])
def test_vit_for_image_classification(hf_vit, size):
    hf_model, path = hf_vit
    model = vitkit.load_model(path)
    assert model.cfg.norm_eps == 1e-12 and model.cfg.num_heads == 4  # carried over, not defaulted
    assert model.cfg.pos_embed_antialias is False  # HF resamples without antialias
    _check(hf_model, model, size)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (32, 48)])
def test_deit_with_teacher(hf_deit, size):
    hf_model, path = hf_deit
    model = vitkit.load_model(path)
    assert model.cfg.distilled
    _check(hf_model, model, size)


def test_vit_model_without_head_and_tanh_gelu(tmp_path):
    cfg = _small(transformers.ViTConfig, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    hf_model = transformers.ViTModel(cfg).eval()
    hf_model.save_pretrained(tmp_path / "m")
    model = vitkit.load_model(tmp_path / "m")
    assert model.cfg.act == "gelu_tanh" and model.cfg.num_classes == 0
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = hf_model(pixel_values=x).last_hidden_state
        assert (model.forward_features(x) - ref).abs().max() < 1e-4


def test_img_size_override_resamples_like_hf(hf_vit):
    hf_model, path = hf_vit
    model = vitkit.load_model(path, img_size=96)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = hf_model(pixel_values=x, interpolate_pos_encoding=True).logits
        assert (model(x) - ref).abs().max() < 1e-4


def test_plain_vit_converted_to_hf_loads_in_transformers_with_the_same_logits(tmp_path):
    model = perturb_(vitkit.create_model("vit_tiny_patch16_224", num_classes=7, img_size=64, depth=3)).eval()
    vitkit.save_model(model, tmp_path / "src")
    convert(tmp_path / "src", tmp_path / "hf", to="hf")
    hf, info = transformers.ViTForImageClassification.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (hf.eval()(pixel_values=x).logits - model(x)).abs().max() < 1e-4
