"""The accuracy-per-minute features: the tensor data path, PatchDropout, progressive resizing,
the linear schedule, flip TTA, precision and attention choice, and their one-line errors."""
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

import vitkit
from vitkit import hardware
from vitkit.config import ConfigError
from vitkit.errors import UsageError
from vitkit.data.options import DataOptions
from vitkit.training.config import load_train_config
from vitkit.training.loop import train
from vitkit.training.optim import lr_at
from vitkit.training.progressive import check_progressive, patch_dropout_at, size_at
from vitkit.data.cache import pad_crop_flip, use_tensor_path

from test_train import TINY, cli, kill_resume_and_compare, read_metrics


# ---- batched augmentation equals torchvision's per-image ops ----
def test_pad_crop_flip_equals_torchvision_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 8, 10), generator=g).float()
    offsets = torch.tensor([[0, 0], [4, 4], [2, 3], [8, 8], [1, 7], [5, 0]])
    flips = torch.tensor([False, True, False, True, True, False])
    out = pad_crop_flip(x, offsets, flips, pad=4)
    for i in range(6):
        padded = TF.pad(x[i], [4, 4, 4, 4], padding_mode="reflect")
        ref = TF.crop(padded, int(offsets[i, 0]), int(offsets[i, 1]), 8, 10)
        if flips[i]:
            ref = TF.horizontal_flip(ref)
        assert torch.equal(out[i], ref), i
    # the loader crops and flips the cached uint8 images: the same pixels
    assert torch.equal(pad_crop_flip(x.to(torch.uint8), offsets, flips, pad=4).float(), out)
    assert torch.equal(pad_crop_flip(x, None, flips, pad=4), torch.where(flips[:, None, None, None], x.flip(-1), x))
    assert torch.equal(pad_crop_flip(x, offsets, None, pad=0), x)
    with pytest.raises(UsageError, match="data.pad=8 needs images larger"):
        pad_crop_flip(x, offsets, flips, pad=8)


# ---- choosing the path ----
def test_cache_mode_decisions():
    o = DataOptions(train_crop="pad_crop")
    assert use_tensor_path(o, 1000, 32)
    assert not use_tensor_path(DataOptions(train_crop="random_resized"), 1000, 32, is_main=False)
    # RandAugment / TrivialAugment / erasing run on batches now (data/batch_augment.py)
    assert use_tensor_path(DataOptions(train_crop="pad_crop", auto_augment="randaugment", random_erasing=0.25),
                           1000, 32, False)
    with pytest.raises(UsageError, match="cannot apply data.train_crop='random_resized'"):
        use_tensor_path(DataOptions(train_crop="random_resized", cache="memory"), 10, 32)
    with pytest.raises(UsageError, match="over the .* budget"):
        use_tensor_path(DataOptions(train_crop="pad_crop", cache="memory", cache_max_gb=0.001), 10**6, 32)
    assert not use_tensor_path(DataOptions(train_crop="pad_crop", cache_max_gb=0.001), 10**6, 32, False)
    assert not use_tensor_path(DataOptions(train_crop="pad_crop", cache="none"), 10, 32)


# ---- training on the tensor path ----
def test_tensor_path_learns_and_matches_cli_eval(cifar_small, tmp_path):
    cfg = load_train_config(None, TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}", "optim.epochs=6",
                                          "optim.lr=2e-3", "model.drop_path_rate=0", "data.cache=memory",
                                          "run.precision=fp32"])
    last = train(cfg)
    steps = [r for r in read_metrics(tmp_path / "r") if r["kind"] == "step"]
    assert last["train_loss"] < sum(s["loss"] for s in steps[:3]) / 3 - 0.15
    assert last["top1"] > 10.0
    r = cli("eval", "--checkpoint", tmp_path / "r", "--data", cifar_small, "--json", "--precision", "fp32", check=True)
    # Same images, same preprocessing (decoded cache vs per-image transform): same accuracy.
    ev = json.loads(r.stdout)
    ref = cli("eval", "--checkpoint", tmp_path / "r", "--data", cifar_small, "--json", "--precision", "fp32", "--tta", "flip",
              check=True)
    assert ev["images"] == 100 and json.loads(ref.stdout)["tta"] == "flip"
    # Training evaluated in fp32 too (pinned, so this runs on every CPU kind), and the run
    # directory loads best.pt: the CLI's figure must be the best epoch's, exactly.
    assert abs(ev["top1"] - last["best_top1"]) < 1e-9, (ev["top1"], last["best_top1"])


def test_disk_cache_is_written_reused_and_invalidated(cifar_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_small, data)
    base = TINY + [f"data.path={data}", "optim.epochs=1", "run.max_steps=2", "data.cache=memory",
                   "data.cache_dir=auto"]
    train(load_train_config(None, base + [f"run.out={tmp_path / 'a'}"]))
    files = sorted((data / ".vitkit-cache").glob("*.safetensors"))
    assert [f.name.split("-")[0] for f in files] == ["train", "val"]
    stamp = {f: f.stat().st_mtime_ns for f in files}
    train(load_train_config(None, base + [f"run.out={tmp_path / 'b'}"]))
    assert {f: f.stat().st_mtime_ns for f in files} == stamp  # reused, not rewritten
    victim = next((data / "train" / "cat").iterdir())
    shutil.copy(next((data / "train" / "dog").iterdir()), victim)  # a changed file → a new train cache
    train(load_train_config(None, base + [f"run.out={tmp_path / 'c'}"]))
    assert len(list((data / ".vitkit-cache").glob("train-*.safetensors"))) == 2


def test_tensor_path_skips_unreadable_images(cifar_small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_small, data)
    (data / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "train" / "dog" / "empty.jpg").write_bytes(b"")
    r = cli("train", "--data", data, "--out", tmp_path / "r", "--epochs", 1, "--batch-size", 100, "--cache", "memory",
            *[a for s in TINY[:5] for a in ("--set", s)], check=True)
    epoch = [m for m in read_metrics(tmp_path / "r") if m["kind"] == "epoch"][0]
    assert epoch["skipped_images"] == 2 and "2 unreadable images skipped" in r.stdout
    assert "300 train / 100 val images decoded" in r.stdout


def test_tensor_path_killed_run_resumes_to_identical_weights(cifar_small, tmp_path):
    """SIGKILL after the first checkpoint, --resume: the same weights as a run never killed, with
    the cache, PatchDropout, progressive resizing and MixUp all on."""
    args = ["train", "--data", cifar_small, "--epochs", 4, "--lr", "1e-3", "--deterministic", "--seed", 3,
            "--cache", "memory", "--patch-dropout", "0.25", *[a for s in TINY for a in ("--set", s)],
            "--set", "data.progressive=[16, 32]", "--set", "data.mixup=0.2"]
    kill_resume_and_compare(args, tmp_path)


# ---- PatchDropout ----
def test_patch_dropout_trains_on_fewer_tokens_and_evaluates_on_all():
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2, patch_dropout=0.5)
    plain = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    model.eval(), plain.eval()
    assert torch.equal(model(x), plain(x))  # eval: every token, identical to no PatchDropout
    model.train()
    tokens, _ = model.embed(x)
    assert tokens.shape == (3, 1 + 32, 192)  # [class] + half of 64 patches
    full, _ = plain.train().embed(x)
    assert torch.equal(tokens[:, 0], full[:, 0])  # the prefix token is always kept
    # every kept token is one of the image's own (position-embedded) patch tokens
    for b in range(3):
        d = torch.cdist(tokens[b, 1:], full[b, 1:], compute_mode="donot_use_mm_for_euclid_dist")
        assert d.min(dim=1).values.max() < 1e-5
    model(x).sum().backward()  # trains


def test_patch_dropout_bad_values():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="patch_dropout must be in"):
            vitkit.create_model("vit_tiny_patch4_32", patch_dropout=p)
    with pytest.raises(ConfigError, match="rel_pos"):
        vitkit.create_model("vit_tiny_relpos_patch4_32", patch_dropout=0.25)


def test_patch_dropout_can_be_lowered_without_touching_the_saved_config():
    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2, patch_dropout=0.5).train()
    x = torch.randn(2, 3, 32, 32)
    assert model.embed(x)[0].shape[1] == 1 + 32
    model.set_patch_dropout(0.0)
    assert model.embed(x)[0].shape[1] == 1 + 64  # every token, in training mode too
    assert model.cfg.patch_dropout == 0.5  # what a checkpoint saves
    assert [patch_dropout_at(0.5, 0.75, p) for p in (0.0, 0.74, 0.75, 1.0)] == [0.5, 0.5, 0.0, 0.0]


def test_patch_dropout_end_stops_it_for_the_last_steps(cifar_small, tmp_path, monkeypatch):
    from vitkit.models.vit import VisionTransformer

    rates, tokens = [], []
    original = VisionTransformer.set_patch_dropout

    def record(self, rate):
        rates.append(rate)
        original(self, rate)

    monkeypatch.setattr(VisionTransformer, "set_patch_dropout", record)
    real_embed = VisionTransformer.embed

    def embed(self, x):
        out = real_embed(self, x)
        if self.training:
            tokens.append(out[0].shape[1])
        return out

    monkeypatch.setattr(VisionTransformer, "embed", embed)
    cfg = load_train_config(None, TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}", "optim.epochs=2",
                                          "model.patch_dropout=0.5", "model.patch_dropout_end=0.5"])
    train(cfg)
    total = len(rates)
    steps = [r for r in read_metrics(tmp_path / "r") if r["kind"] == "step"]
    assert total == len(steps) >= 4
    # progress = step / total: PatchDropout while step < total / 2, every token after
    first = -(-total // 2)
    assert rates == [0.5] * first + [0.0] * (total - first)
    assert tokens == [1 + 32] * first + [1 + 64] * (total - first)  # [class] + half or all of 64 patches
    assert vitkit.load_model(str(tmp_path / "r" / "last.pt")).cfg.patch_dropout == 0.5  # saved as configured


def test_patch_dropout_end_refuses_a_cnn(cifar_small, tmp_path):
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r",
            *[a for s in TINY + ["model.name=resnet18_cifar", "model.overrides={}", "model.patch_dropout_end=0.5"]
              for a in ("--set", s)])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "has no PatchDropout" in r.stderr, r.stderr
    assert not (tmp_path / "r" / "last.pt").exists()


# ---- progressive resizing, schedule ----
def test_progressive_sizes_and_errors():
    assert [size_at([24, 32], 0.5, p, 32) for p in (0.0, 0.49, 0.5, 0.9)] == [24, 24, 32, 32]
    assert [size_at([16, 24, 32], 0.6, p, 32) for p in (0.0, 0.29, 0.3, 0.59, 0.6)] == [16, 16, 24, 24, 32]
    assert size_at(None, 0.5, 0.1, 32) == 32
    with pytest.raises(UsageError, match="size 30 is not a positive multiple of the patch size 4"):
        check_progressive([30, 32], 0.5, 32, 4)
    with pytest.raises(UsageError, match="must end at the training size 32"):
        check_progressive([24, 28], 0.5, 32, 4)
    with pytest.raises(UsageError, match="progressive_end"):
        check_progressive([24, 32], 1.5, 32, 4)


def test_progressive_training_logs_both_sizes(cifar_small, tmp_path):
    cfg = load_train_config(None, TINY + [f"data.path={cifar_small}", f"run.out={tmp_path / 'r'}", "optim.epochs=2",
                                          "data.progressive=[16, 32]", "data.progressive_end=0.5"])
    train(cfg)
    sizes = [r["size"] for r in read_metrics(tmp_path / "r") if r["kind"] == "step"]
    assert sizes[0] == 16 and sizes[-1] == 32 and sorted(set(sizes)) == [16, 32]


def test_linear_schedule():
    assert lr_at(0, 100, 10, 1.0, 0.0, "linear") == pytest.approx(0.1)
    assert lr_at(10, 100, 10, 1.0, 0.0, "linear") == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.0, "linear") == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0, 0.0, "linear") == pytest.approx(0.0)
    assert lr_at(55, 100, 10, 1.0, 0.0, "cosine") == pytest.approx(0.5)


# ---- TTA, precision, attention ----
def test_flip_tta_averages_logits_of_image_and_mirror(cifar_small):
    from vitkit.parallel import distributed as dist_utils
    from vitkit.inference.evaluate import evaluate

    model = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    d = dist_utils.Dist()
    m = evaluate(model, [(x, y, 0)], d, 10, precision="fp32", tta="flip")
    with torch.no_grad():
        logits = (model(x) + model(x.flip(-1))) / 2
    assert m["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert m["top1"] == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item())


def test_precision_and_attention_follow_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert hardware.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert hardware.resolve_precision("auto", cpu) == "fp32"
    assert "AVX2" in hardware.describe_cpu() and "AVX512-BF16" not in hardware.describe_cpu()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert hardware.resolve_precision("auto", cpu) == "bf16"
    assert hardware.resolve_precision("fp32", cpu) == "fp32"
    assert hardware.resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    with pytest.raises(UsageError, match="choose auto, fp32, bf16"):
        hardware.resolve_precision("fp8", cpu)
    assert hardware.resolve_attention("auto", cpu) is False
    assert hardware.resolve_attention("auto", torch.device("cuda", 0)) is True
    assert hardware.resolve_attention("sdpa", cpu) is True


def test_an_isa_cap_turns_native_bf16_off_and_is_printed(monkeypatch):
    # benchmarks/as_avx2.sh caps oneDNN at AVX2 on an AVX-512 BF16 machine: /proc/cpuinfo still
    # lists avx512_bf16, but oneDNN would emulate bf16, so "auto" must pick fp32 and say why.
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}))
    for var in hardware._ISA_CAPS:
        monkeypatch.delenv(var, raising=False)
    assert hardware.resolve_precision("auto", cpu) == "bf16" and "capped" not in hardware.describe_cpu()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert hardware.resolve_precision("auto", cpu) == "fp32"
    assert "| capped: ONEDNN_MAX_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 |" in hardware.describe_cpu()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # bf16 dot products still allowed
    assert hardware.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")  # oneDNN's "no cap"
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")  # the older name counts too, when alone
    assert hardware.resolve_precision("auto", cpu) == "bf16"  # ONEDNN_ wins over DNNL_, as in oneDNN
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert hardware.resolve_precision("auto", cpu) == "fp32"


def test_explicit_and_sdpa_attention_train_alike():
    torch.manual_seed(0)
    a = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2, pool="mean", class_token=False,
                            pos_embed="sincos")
    b = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=2, pool="mean", class_token=False,
                            pos_embed="sincos")
    b.load_state_dict(a.state_dict())
    b.set_attention_impl(False)
    x = torch.randn(4, 3, 32, 32)
    a(x).square().sum().backward()
    b(x).square().sum().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), n


# ---- one-line errors, exit 2, nothing written ----
@pytest.mark.parametrize("sets, message", [
    (["model.patch_dropout=1.0"], "patch_dropout must be in [0, 1)"),
    (["model.patch_dropout=-0.2"], "patch_dropout must be in [0, 1)"),
    (["model.patch_dropout_end=0"], "model.patch_dropout_end must be in (0, 1], got 0"),
    (["data.progressive=[30, 32]"], "size 30 is not a positive multiple of the patch size 4"),
    (["data.progressive=[24, 28]"], "must end at the training size 32"),
    (["data.cache=memory", "data.cache_max_gb=0.000001"], "over the"),
    (["data.cache=memory", "data.train_crop=random_resized"], "cannot apply"),
    (["data.cache=disk"], "data.cache='disk' is not a choice: choose one of auto, memory, none"),
    (["optim.schedule=step"], "optim.schedule='step' is not a choice: choose one of cosine, linear"),
    (["run.eval_tta=ten_crop"], "run.eval_tta='ten_crop' is not a choice: choose one of none, flip"),
    (["run.precision=fp16"], "run.precision='fp16' is not a choice: choose one of auto, fp32, bf16"),
])
def test_bad_fast_path_settings_are_one_line_errors(cifar_small, tmp_path, sets, message):
    r = cli("train", "--data", cifar_small, "--out", tmp_path / "r", *[a for s in TINY + sets for a in ("--set", s)])
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_curves_against_minutes_overlay_a_peer_run(tmp_path):
    """`viz curves --x minutes` reads vitkit runs and the peer loop's metrics.jsonl alike."""
    for name, accs in (("timm_loop", [40.0, 50.0]), ("vitkit", [45.0, 60.0, 65.0])):
        run = tmp_path / name
        run.mkdir()
        rows = [{"kind": "start", "time": 1000.0}] + [
            {"kind": "epoch", "epoch": i + 1, "step": 10 * (i + 1), "top1": a, "loss": None, "time": 1000.0 + 300 * (i + 1)}
            for i, a in enumerate(accs)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("viz", "curves", "--x", "minutes", tmp_path / "timm_loop", tmp_path / "vitkit", "--out", tmp_path / "c.png",
            check=True)
    assert Path(r.stdout.strip()) == tmp_path / "c.png" and (tmp_path / "c.png").stat().st_size > 10_000
