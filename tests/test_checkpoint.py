"""vitkit's own format, safety of loading, conversion round trips, and error messages."""
import json
import os
import pickle

import pytest
import torch

import vitkit
from vitkit.checkpoint import CheckpointError, convert


def _logits(model, size=(32, 32), seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, *size, generator=g))


def test_save_load_round_trip_is_exact(tmp_path):
    model = vitkit.create_model("deit_tiny_distilled_patch4_32", num_classes=10, layer_scale_init=1e-4)
    vitkit.save_model(model, tmp_path / "m", class_names=[f"c{i}" for i in range(10)])
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"]["distilled"] is True and cfg["model"]["num_classes"] == 10
    loaded = vitkit.load_model(tmp_path / "m")
    assert not loaded.training and loaded.cfg == model.cfg and loaded.class_names[3] == "c3"
    assert torch.equal(_logits(model), _logits(loaded))
    # the weights file alone also rebuilds its model (config in the safetensors header)
    assert torch.equal(_logits(model), _logits(vitkit.load_model(tmp_path / "m" / "model.safetensors")))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_loading_a_pickle_that_runs_code_does_not_run_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = vitkit.create_model("vit_tiny_patch4_32", depth=1)
    bad = {"state_dict": model.state_dict(), "evil": _Evil()}
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump(bad, f)
    torch.save(bad, tmp_path / "evil2.pth")
    for name in ("evil.pth", "evil2.pth"):
        with pytest.raises(CheckpointError, match="refused|not a readable"):
            vitkit.load_model(tmp_path / name)
    assert not (tmp_path / "PWNED").exists()


def test_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        vitkit.load_model(tmp_path / "missing.pth")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(CheckpointError, match="trunc.safetensors: not a readable safetensors"):
        vitkit.load_model(tmp_path / "trunc.safetensors")
    vitkit.save_model(vitkit.create_model("vit_tiny_patch4_32", depth=1), tmp_path / "ok")
    data = (tmp_path / "ok" / "model.safetensors").read_bytes()
    (tmp_path / "ok" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        vitkit.load_model(tmp_path / "ok")
    torch.save({"x": torch.zeros(1)}, tmp_path / "trunc.pth")
    (tmp_path / "trunc.pth").write_bytes((tmp_path / "trunc.pth").read_bytes()[:50])
    with pytest.raises(CheckpointError, match="trunc.pth: not a readable PyTorch file"):
        vitkit.load_model(tmp_path / "trunc.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pth"):
        vitkit.load_model(tmp_path / "text.pth")


def test_resnet_checkpoint_is_refused_with_a_clear_message(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"resnet18.pth: not a ViT checkpoint .*conv1.weight"):
        vitkit.load_model(tmp_path / "resnet18.pth")


def test_shape_mismatch_names_the_key(tmp_path):
    model = vitkit.create_model("vit_tiny_patch4_32", depth=1)
    sd = model.state_dict()
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(10, 192)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="blocks.0.mlp.fc1"):
        vitkit.load_model(tmp_path / "bad.pth")


def test_new_head_is_zero_initialised_and_old_kept_when_classes_match(tmp_path):
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10)
    vitkit.save_model(model, tmp_path / "m")
    same = vitkit.load_model(tmp_path / "m", num_classes=10)
    assert torch.equal(same.head.weight, model.head.weight)
    new = vitkit.load_model(tmp_path / "m", num_classes=5)
    assert new.head.weight.shape == (5, 192) and new.head.weight.abs().sum() == 0 and new.class_names is None
    assert torch.equal(new.blocks[3].mlp.fc1.weight, model.blocks[3].mlp.fc1.weight)


@pytest.mark.parametrize("name", ["vit_tiny_patch4_32", "deit_tiny_distilled_patch4_32"])
def test_round_trips_through_timm_and_hf_are_exact(tmp_path, name):
    model = vitkit.create_model(name, num_classes=10)
    vitkit.save_model(model, tmp_path / "src")
    ref = _logits(model)
    convert(tmp_path / "src", tmp_path / "t.safetensors", to="timm")
    convert(tmp_path / "t.safetensors", tmp_path / "back_timm", to="vitkit")
    assert torch.equal(_logits(vitkit.load_model(tmp_path / "back_timm")), ref)
    convert(tmp_path / "src", tmp_path / "hf", to="hf")
    convert(tmp_path / "hf", tmp_path / "back_hf", to="vitkit", norm_eps=1e-6, pos_embed_antialias=True)
    back = vitkit.load_model(tmp_path / "back_hf")
    assert torch.equal(_logits(back), ref)


def test_converted_files_load_in_timm_and_hf_without_missing_keys(tmp_path):
    import timm
    import transformers
    from conftest import perturb_

    model = perturb_(vitkit.create_model("deit_tiny_distilled_patch16_224", num_classes=10, img_size=64))
    vitkit.save_model(model, tmp_path / "src")
    convert(tmp_path / "src", tmp_path / "t.pth", to="timm")
    t = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=10, img_size=64).eval()
    result = t.load_state_dict(torch.load(tmp_path / "t.pth", weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    convert(tmp_path / "src", tmp_path / "hf", to="hf")
    hf, info = transformers.DeiTForImageClassificationWithTeacher.from_pretrained(
        tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.eval()(x)
        assert (t(x) - ref).abs().max() < 1e-4
        assert (hf.eval()(pixel_values=x).logits - ref).abs().max() < 1e-4


def test_formats_without_a_place_for_a_feature_are_refused(tmp_path):
    model = vitkit.create_model("vit_tiny_relpos_patch4_32")
    vitkit.save_model(model, tmp_path / "m")
    with pytest.raises(CheckpointError, match="rel_pos"):
        convert(tmp_path / "m", tmp_path / "x.pth", to="timm")
    with pytest.raises(CheckpointError, match="unknown output format"):
        convert(tmp_path / "m", tmp_path / "x", to="onnx")
