"""The conv stem (ViTConfig.stem_channels, the ViT paper's hybrid input): the same network as
timm's hybrid ViT with a ConvStem backbone, read and written in timm's names, saved in vitkit's
format, trained through the fast path, refused by formats that have no place for it."""
import functools

import pytest
import torch

import timm
import vitkit
from conftest import perturb_
from timm.layers import HybridEmbed
from timm.models.vision_transformer_hybrid import ConvStem
from vitkit.checkpoint.load import convert
from vitkit.errors import CheckpointError, ConfigError

STEM = (24, 48)


def _timm_hybrid(D=192, depth=2, heads=3, **kw):
    """timm's ViT whose embedding is ConvStem (two 3×3 stride-2 ConvNormAct, then a 1×1 conv)."""
    backbone = ConvStem(in_chans=3, depth=3, channels=(*STEM, D), kernel_size=(3, 3, 1), stride=(2, 2, 1),
                        padding=(1, 1, 0))
    return timm.models.VisionTransformer(
        img_size=32, patch_size=1, num_classes=10, embed_dim=D, depth=depth, num_heads=heads,
        embed_layer=functools.partial(HybridEmbed, backbone=backbone, proj=False), dynamic_img_size=True, **kw)


def _perturb_all_(model):
    """Parameters and BatchNorm statistics off their initial values (a swapped mean/var shows)."""
    perturb_(model)
    g = torch.Generator().manual_seed(1)
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.add_(torch.randn(b.shape, generator=g) * 0.2)
        elif name.endswith("running_var"):
            b.mul_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("kw", [{}, {"global_pool": "avg", "class_token": False}], ids=["cls", "avg"])
def test_timm_hybrid_weights_give_same_logits(tmp_path, kw):
    ref = _perturb_all_(_timm_hybrid(**kw))
    torch.save(ref.state_dict(), tmp_path / "hybrid.pth")
    model = vitkit.load_model(tmp_path / "hybrid.pth")  # architecture from the tensors alone
    assert model.cfg.stem_channels == STEM and model.cfg.patch_size == 4 and model.cfg.img_size == (32, 32)
    for size in ((32, 32), (48, 64)):  # native grid, then interpolated positions
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            assert (model(x) - ref(x)).abs().max() < 1e-4, size


def test_stem_model_converts_to_timm_and_back(tmp_path):
    model = _perturb_all_(vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2,
                                              stem_channels=list(STEM)))
    vitkit.save_model(model, tmp_path / "m")
    out = convert(tmp_path / "m", tmp_path / "t.safetensors", to="timm")
    from safetensors.torch import load_file
    ref = _timm_hybrid().eval()
    ref.load_state_dict(load_file(str(out)), strict=True)  # every key has its place in timm's model
    back = vitkit.load_model(tmp_path / "m")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert (ref(x) - model(x)).abs().max() < 1e-4
        assert torch.equal(back(x), model(x))  # vitkit format: the config (stem included) is in the file
    assert back.cfg.stem_channels == STEM


@pytest.mark.parametrize("to", ["hf", "jax"])
def test_formats_without_a_stem_refuse_it(tmp_path, to):
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=1, stem_channels=list(STEM))
    vitkit.save_model(model, tmp_path / "m")
    with pytest.raises(CheckpointError, match="stem"):
        convert(tmp_path / "m", tmp_path / "out", to=to)


@pytest.mark.parametrize("bad", [[32], [16, 32, 64], [0, 8]])
def test_stem_widths_must_match_the_patch(bad):
    with pytest.raises(ConfigError, match="stem_channels"):
        vitkit.create_model("vit_tiny_patch4_32", stem_channels=bad)


def test_stem_config_round_trips_through_json():
    cfg = vitkit.model_config("vit_tiny_patch4_32", stem_channels=[16, 32])
    d = cfg.to_dict()
    assert d["stem_channels"] == [16, 32]
    assert type(cfg).from_dict(d) == cfg


def test_stem_model_trains_and_resumes_its_batchnorm(tmp_path, cifar_small):
    """A few fast-path steps: BatchNorm statistics move and are saved with the weights."""
    run = vitkit.train("recipes/quickstart.yaml", data=cifar_small, out=tmp_path / "run", max_steps=3,
                       set={"model.overrides": {"depth": 1, "stem_channels": [8, 16]}, "data.cache": "memory"},
                       batch_size=16, no_progress=True)
    model = vitkit.load_model(tmp_path / "run")
    bn = model.patch_embed.stem[1]
    assert model.cfg.stem_channels == (8, 16)
    assert bn.num_batches_tracked.item() == 3 and bn.running_mean.abs().sum() > 0


def test_stem_model_exports_to_onnx_with_the_same_logits(tmp_path):
    from vitkit.deploy import OnnxClassifier, export_onnx

    model = _perturb_all_(vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2,
                                              stem_channels=list(STEM)))
    export_onnx(model, tmp_path / "m.onnx")
    clf = OnnxClassifier(tmp_path / "m.onnx")
    for shape in ((1, 3, 32, 32), (3, 3, 48, 40)):  # batch and size are dynamic
        x = torch.randn(*shape)
        with torch.no_grad():
            assert (clf(x) - model(x)).abs().max().item() <= 1e-4, shape
