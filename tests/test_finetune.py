"""Two-step training: --init, new heads, resampled positions, layer decay, freezing."""
import pytest
import torch

import vitkit
from vitkit.training.config import OptimOptions, load_train_config
from vitkit.training.loop import train
from vitkit.training.optim import build_optimizer, param_groups

BASE = ["data.train_crop=pad_crop", "data.workers=0", "run.progress=false", "optim.batch_size=50", "optim.epochs=1"]


def test_layer_decay_gives_each_block_its_lr():
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10)
    opt = build_optimizer(model, OptimOptions(lr=1.0, layer_decay=0.65))
    lr_of = {}
    for g in opt.param_groups:
        for p in g["params"]:
            lr_of[p] = g["lr"]
    depth = 12
    named = dict(model.named_parameters())
    assert lr_of[named["head.weight"]] == pytest.approx(1.0)
    assert lr_of[named["norm.weight"]] == pytest.approx(1.0)
    for i in range(depth):
        assert lr_of[named[f"blocks.{i}.attn.qkv.weight"]] == pytest.approx(0.65 ** (depth - i))
    for name in ("pos_embed", "cls_token", "patch_embed.proj.weight"):
        assert lr_of[named[name]] == pytest.approx(0.65 ** (depth + 1))


def test_no_weight_decay_on_norms_biases_tokens_positions():
    model = vitkit.create_model("vit_tiny_relpos_patch4_32", num_classes=10)
    decay = {n for g in param_groups(model, OptimOptions()) if g["weight_decay"] > 0 for n in g["names"]}
    assert "blocks.0.attn.qkv.weight" in decay and "head.weight" in decay
    for n in ("pos_embed", "cls_token", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.rel_pos.rel_h"):
        assert n not in decay


def test_freeze_backbone_trains_head_only(cifar_small, tmp_path):
    src = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2)
    vitkit.save_model(src, tmp_path / "src")
    train(load_train_config(None, BASE + [f"model.init={tmp_path / 'src'}", f"data.path={cifar_small}",
                                          f"run.out={tmp_path / 'r'}", "optim.freeze=backbone", "optim.lr=1e-2"]))
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)["model_state"]
    for k, v in src.state_dict().items():
        if k.startswith("head."):
            assert not torch.equal(v, state[k]), k
        else:
            assert torch.equal(v, state[k]), k


def test_init_keeps_matching_head_and_replaces_other(cifar_small, tmp_path):
    src = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2)
    vitkit.save_model(src, tmp_path / "ten")
    kept = vitkit.load_model(tmp_path / "ten", num_classes=10)
    assert torch.equal(kept.head.weight, src.head.weight)
    five = [c for c in ["airplane", "automobile", "bird", "cat", "deer"]]
    train(load_train_config(None, BASE + [f"model.init={tmp_path / 'ten'}", f"data.path={cifar_small}",
                                          f"run.out={tmp_path / 'r'}", f"data.classes={five}", "run.max_steps=1",
                                          "optim.lr=1e-9"]))
    model = vitkit.load_model(tmp_path / "r" / "last.pt")
    assert model.cfg.num_classes == 5 and model.class_names == five
    assert model.head.weight.abs().max() < 1e-6  # started at zero (ViT paper), one tiny step since


def test_same_class_count_other_names_gets_new_head(cifar_small, tmp_path):
    """5 classes -> 5 other classes: the stored names decide, not the count (the trap the
    two-step study fell into: a kept head maps dog to airplane and starts at loss 3.3, not ln 5)."""
    a, b = ["airplane", "automobile", "bird", "cat", "deer"], ["dog", "frog", "horse", "ship", "truck"]
    src = vitkit.create_model("vit_tiny_patch4_32", num_classes=5, depth=2)
    torch.nn.init.normal_(src.head.weight)
    vitkit.save_model(src, tmp_path / "a", class_names=a)
    common = BASE + [f"model.init={tmp_path / 'a'}", f"data.path={cifar_small}", "run.max_steps=1", "optim.lr=1e-9"]
    train(load_train_config(None, common + [f"run.out={tmp_path / 'b'}", f"data.classes={b}"]))
    assert vitkit.load_model(tmp_path / "b" / "last.pt").head.weight.abs().max() < 1e-6
    train(load_train_config(None, common + [f"run.out={tmp_path / 'a2'}", f"data.classes={a}"]))
    assert (vitkit.load_model(tmp_path / "a2" / "last.pt").head.weight - src.head.weight).abs().max() < 1e-6
    train(load_train_config(None, common + [f"run.out={tmp_path / 'k'}", f"data.classes={b}", "model.head=keep"]))
    assert (vitkit.load_model(tmp_path / "k" / "last.pt").head.weight - src.head.weight).abs().max() < 1e-6


@pytest.mark.parametrize("mode,ck_names,n_ck,want", [
    ("auto", None, 5, False), ("auto", ["x"] * 5, 5, True), ("auto", None, 3, True), ("new", None, 5, True),
    ("keep", ["x"] * 5, 5, False)])
def test_head_mode_rule(mode, ck_names, n_ck, want):
    from vitkit.training.builders import wants_new_head

    assert wants_new_head(mode, ck_names, n_ck, list("abcde")) is want


def test_head_keep_with_other_count_and_unknown_mode_are_errors():
    from vitkit.errors import UsageError
    from vitkit.training.builders import wants_new_head

    with pytest.raises(UsageError, match="checkpoint has 3 classes"):
        wants_new_head("keep", None, 3, list("abcde"))
    from vitkit.training.config import load_train_config

    # an unknown mode is refused where every option's choices are checked, naming them
    with pytest.raises(UsageError, match=r"model.head='fresh' is not a choice: choose one of auto, new, keep"):
        load_train_config(None, ["model.head=fresh"])


def test_finetune_from_timm_checkpoint_at_new_resolution(cifar_small, tmp_path):
    import timm
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4, depth=2,
                            num_classes=100)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "timm.pth")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "vitkit", "finetune", "--init", str(tmp_path / "timm.pth"),
                        "--data", str(cifar_small), "--img-size", "48", "--epochs", "2", "--batch-size", "50",
                        "--layer-decay", "0.65", "--out", str(tmp_path / "ft"), "--workers", "0", "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    model = vitkit.load_model(tmp_path / "ft")
    assert model.cfg.grid_size == (12, 12) and model.cfg.num_classes == 10 and model.class_names[0] == "airplane"
    # the blocks started from timm's weights (fine-tuned since, so close but not equal)
    start = ref.state_dict()["blocks.0.mlp.fc1.weight"]
    assert (model.blocks[0].mlp.fc1.weight - start).abs().max() < 0.05
    cfg = __import__("yaml").safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 1e-4 and cfg["optim"]["layer_decay"] == 0.65


def test_load_time_resample_equals_run_time(tmp_path):
    model = vitkit.create_model("vit_tiny_patch4_32", depth=2).eval()
    vitkit.save_model(model, tmp_path / "m")
    big = vitkit.load_model(tmp_path / "m", img_size=(48, 64))
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(big.pos_embed, model.pos_table((12, 16)))
        assert (big(x) - model(x)).abs().max() < 1e-5


def test_finetune_defaults_sit_under_the_recipe_and_flags_over_it(tmp_path):
    from vitkit.training.api import FINETUNE_DEFAULTS as _FINETUNE_DEFAULTS

    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  lr: 5.0e-4\n  epochs: 7\n")
    cfg = load_train_config(recipe, ["optim.epochs=9"], base=_FINETUNE_DEFAULTS)
    assert cfg.optim.lr == 5e-4 and cfg.optim.epochs == 9 and cfg.optim.warmup_epochs == 1
    assert load_train_config(None, [], base=_FINETUNE_DEFAULTS).optim.lr == 1e-4
    with pytest.raises(ValueError, match="unknown option optim.learning_rate"):
        load_train_config(None, ["optim.learning_rate=1"])
