"""Same weights in timm and vitkit give the same logits (native and non-square sizes). Every
weight is perturbed first (conftest.perturb_), so a swapped pair of same-shaped tensors shows."""
import pytest
import torch

import vitkit

import timm
from conftest import perturb_

CASES = [
    ("vit_tiny_patch16_224", {}, (160, 256)),
    ("vit_small_patch32_384", {}, (192, 320)),
    ("vit_base_patch16_224", {"global_pool": "avg", "class_token": False}, (160, 256)),
    ("deit_tiny_distilled_patch16_224", {}, (160, 256)),
]


def _timm_model(name, kw):
    m = timm.create_model(name, pretrained=False, dynamic_img_size=True, **kw).eval()
    if "distilled" in name:
        m.set_distilled_training(False)
    return perturb_(m)


@pytest.mark.parametrize("name,kw,other", CASES, ids=[c[0] + ("_avg" if c[1] else "") for c in CASES])
def test_timm_weights_give_same_logits(tmp_path, name, kw, other):
    ref = _timm_model(name, kw)
    path = tmp_path / "timm.pth"
    torch.save(ref.state_dict(), path)
    model = vitkit.load_model(path)  # architecture read from the tensors alone
    assert model.cfg.pool == ("mean" if kw else "cls")
    for size in (model.cfg.img_size, other):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            diff = (model(x) - ref(x)).abs().max().item()
        assert diff < 1e-4, (size, diff)


def test_native_model_runs_in_timm_unchanged():
    """vitkit's parameter names are timm's: a vitkit state dict loads strictly into timm."""
    model = perturb_(vitkit.create_model("vit_small_patch16_224")).eval()
    ref = timm.create_model("vit_small_patch16_224", pretrained=False, dynamic_img_size=True).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-5
        x = torch.randn(1, 3, 160, 256)
        assert (model(x) - ref(x)).abs().max() < 1e-5


@pytest.mark.parametrize("wrap", ["module.", "_orig_mod.", "model.", "dict_model", "dict_state_dict"])
def test_wrappers_and_prefixes_are_stripped(tmp_path, wrap):
    ref = _timm_model("vit_tiny_patch16_224", {})
    sd = ref.state_dict()
    if wrap.startswith("dict_"):
        obj = {wrap[5:]: sd, "epoch": 3}
    else:
        obj = {wrap + k: v for k, v in sd.items()}
    torch.save(obj, tmp_path / "w.pth")
    model = vitkit.load_model(tmp_path / "w.pth")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-5


def test_img_size_override_resamples_like_timm(tmp_path):
    ref = _timm_model("vit_tiny_patch16_224", {})
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    model = vitkit.load_model(tmp_path / "w.pth", img_size=(128, 192))
    assert model.cfg.grid_size == (8, 12) and model.pos_embed.shape == (1, 1 + 96, 192)
    x = torch.randn(1, 3, 128, 192)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-4  # load-time resample == timm's run-time one
