"""Every registered model: builds, runs forward and backward at its native size, no NaN."""
import pytest
import torch

import vitkit
from vitkit.models import build_model

# Published parameter counts (timm / the ViT and DeiT papers), 1000-class head at 224 px.
PUBLISHED_PARAMS_M = {"vit_tiny_patch16_224": 5.72, "vit_small_patch16_224": 22.05,
                      "vit_base_patch16_224": 86.57, "vit_large_patch16_224": 304.33,
                      "vit_huge_patch14_224": 632.05}


def _param_count(cfg) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg).parameters())


@pytest.mark.parametrize("name,expected", PUBLISHED_PARAMS_M.items())
def test_param_count_equals_published(name, expected):
    assert round(_param_count(vitkit.model_config(name)) / 1e6, 2) == expected


def test_registry_names_follow_timm():
    names = vitkit.list_models()
    for n in ["vit_tiny_patch16_224", "vit_base_patch32_384", "vit_huge_patch14_224", "vit_tiny_patch4_32",
              "vit_small_patch4_32", "deit_tiny_distilled_patch16_224", "deit_tiny_distilled_patch4_32"]:
        assert n in names
    assert vitkit.list_models("vit_small_patch16*") == ["vit_small_patch16_224", "vit_small_patch16_384"]


@pytest.mark.parametrize("name", vitkit.list_models())
def test_forward_backward_native_size(name):
    cfg = vitkit.model_config(name, num_classes=7)
    # Large and huge models keep their width, heads, patch and native size but run 2 blocks here:
    # a 24-32 block fp32 backward at 384 px would cost minutes on 2 cores; every block is the same code.
    if cfg.embed_dim >= 1024:
        cfg = cfg.replace(depth=2)
    model = build_model(cfg).train()
    x = torch.randn(2, cfg.in_chans, *cfg.img_size)
    out = model(x)
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        assert o.shape == (2, 7)
        assert torch.isfinite(o).all()
    sum(o.square().mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_overrides_apply():
    m = vitkit.create_model("vit_tiny_patch16_224", num_classes=3, img_size=(64, 96), in_chans=1,
                            pool="mean", class_token=False, pos_embed="sincos", drop_path_rate=0.1)
    assert m.cfg.grid_size == (4, 6) and m(torch.randn(1, 1, 64, 96)).shape == (1, 3)
    assert m.blocks[-1].drop_path1.p == pytest.approx(0.1) and m.blocks[0].drop_path1.p == 0.0


def test_unknown_model_and_bad_config_are_one_line_errors():
    with pytest.raises(KeyError, match="unknown model 'vit_gigantic'"):
        vitkit.create_model("vit_gigantic")
    with pytest.raises(ValueError, match="image size 225 is not a multiple of patch size 16"):
        vitkit.create_model("vit_tiny_patch16_224", img_size=225)
    with pytest.raises(ValueError, match="unknown model option"):
        vitkit.create_model("vit_tiny_patch16_224", colour="blue")
    m = vitkit.create_model("vit_tiny_patch16_224")
    with pytest.raises(ValueError, match="image size 100 is not a multiple of patch size 16"):
        m(torch.randn(1, 3, 100, 96))
