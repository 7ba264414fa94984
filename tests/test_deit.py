"""DeiT: distilled model outputs, distillation losses against hand values, frozen teacher, and a
short distillation run on real CIFAR-10 that raises agreement with the teacher."""
import math

import pytest
import torch
import torch.nn.functional as F

import vitkit
from vitkit.layers import resample_pos_embed
from vitkit.training.losses import DistillationLoss


def test_distilled_outputs_train_tuple_eval_mean():
    model = vitkit.create_model("deit_tiny_distilled_patch4_32", num_classes=10, depth=2)
    x = torch.randn(2, 3, 32, 32)
    cls, dist = model.train()(x)
    assert cls.shape == dist.shape == (2, 10) and not torch.allclose(cls, dist)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        expected = (model.head(feats[:, 0]) + model.head_dist(feats[:, 1])) / 2
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_two_prefix_tokens_kept_when_resampling():
    model = vitkit.create_model("deit_tiny_distilled_patch4_32", depth=1).eval()
    table = model.pos_table((6, 10))
    assert table.shape == (1, 2 + 60, 192)
    assert torch.equal(table[:, :2], model.pos_embed[:, :2])
    assert torch.equal(table, resample_pos_embed(model.pos_embed, (6, 10), (8, 8), 2))


class FixedTeacher(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.logits * self.w


def test_loss_values_match_hand_computation():
    torch.manual_seed(0)
    cls, dist, t = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    teacher = FixedTeacher(t)
    x = torch.zeros(4, 3, 8, 8)
    ce = lambda logits, target: -F.log_softmax(logits, 1)[range(4), target].mean()

    hard = DistillationLoss("hard", teacher, alpha=0.5)((cls, dist), y, x)
    assert hard.item() == pytest.approx(0.5 * ce(cls, y).item() + 0.5 * ce(dist, t.argmax(1)).item(), rel=1e-6)

    alpha, tau = 0.3, 2.0
    soft = DistillationLoss("soft", teacher, alpha=alpha, tau=tau)((cls, dist), y, x)
    pt, ps = F.softmax(t / tau, 1), F.softmax(dist / tau, 1)
    kl = (pt * (pt.log() - ps.log())).sum() / dist.numel()  # DeiT: summed KL ÷ (B·C)
    assert soft.item() == pytest.approx((1 - alpha) * ce(cls, y).item() + alpha * tau * tau * kl.item(), rel=1e-5)

    none = DistillationLoss("none")((cls, dist), y, x)
    assert none.item() == pytest.approx(0.5 * (ce(cls, y) + ce(dist, y)).item(), rel=1e-6)
    plain_vit = DistillationLoss("hard", teacher, alpha=0.5)(cls, y, x)  # no token: class head takes both
    assert plain_vit.item() == pytest.approx(0.5 * ce(cls, y).item() + 0.5 * ce(cls, t.argmax(1)).item(), rel=1e-6)
    soft_targets = F.one_hot(y, 5).float() * 0.8 + 0.04  # MixUp-style probabilities
    assert math.isfinite(DistillationLoss("hard", teacher)((cls, dist), soft_targets, x).item())


def test_teacher_never_receives_gradients():
    teacher = vitkit.create_model("resnet18_cifar", num_classes=10)
    loss_fn = DistillationLoss("soft", teacher, alpha=0.5, tau=3.0).train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    student = vitkit.create_model("deit_tiny_distilled_patch4_32", num_classes=10, depth=1).train()
    x = torch.randn(4, 3, 32, 32)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn(student(x), torch.tensor([1, 2, 3, 4]), x).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN stats untouched
    assert student.head_dist.weight.grad is not None


def _agreement(student, teacher, x):
    with torch.no_grad():
        return (student.eval()(x).argmax(1) == teacher.eval()(x).argmax(1)).float().mean().item()


def test_distillation_run_raises_agreement_with_teacher(cifar_small, tmp_path):
    from vitkit.training.config import load_train_config
    from vitkit.data.folders import ImageFolderSafe
    from vitkit.data.transforms import eval_transform
    from vitkit.training.loop import train

    common = [f"data.path={cifar_small}", "data.train_crop=pad_crop", "data.workers=0", "run.progress=false",
              "optim.batch_size=50", "optim.warmup_epochs=0.5"]
    # a half-width teacher (resnet18_cifar_w32, a quarter of the FLOPs): any trained CNN will do,
    # the test asks whether the distillation token learns the teacher's argmax
    train(load_train_config(None, common + ["model.name=resnet18_cifar_w32", f"run.out={tmp_path / 'teacher'}",
                                            "optim.epochs=3", "optim.lr=2e-3"]))
    teacher = vitkit.load_model(tmp_path / "teacher")
    ds = ImageFolderSafe(cifar_small / "test", eval_transform(32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    torch.manual_seed(0)
    student_cfg = ["model.name=deit_tiny_distilled_patch4_32", "model.overrides={depth: 2}", "model.drop_path_rate=0",
                   "run.seed=1"]
    train(load_train_config(None, common + student_cfg + [f"run.out={tmp_path / 'init'}", "run.max_steps=1",
                                                          "optim.epochs=1", "optim.lr=1e-9"]))
    before = _agreement(vitkit.load_model(tmp_path / "init" / "last.pt"), teacher, x)
    train(load_train_config(None, common + student_cfg + [f"run.out={tmp_path / 'student'}", "optim.epochs=6",
                                                          "optim.lr=2e-3", "distill.kind=hard",
                                                          f"distill.teacher={tmp_path / 'teacher'}"]))
    after = _agreement(vitkit.load_model(tmp_path / "student" / "last.pt"), teacher, x)
    assert after > before + 0.1, (before, after)


@pytest.mark.parametrize("width", [32, 64])
def test_cifar_resnet_width_keeps_torchvision_keys_and_round_trips(tmp_path, width):
    """`CNNConfig.width` scales every stage (w, 2w, 4w, 8w) with torchvision's blocks and keys;
    64 is torchvision's ResNet-18 itself."""
    import torchvision

    name = "resnet18_cifar" if width == 64 else f"resnet18_cifar_w{width}"
    model = vitkit.create_model(name, num_classes=10).eval()
    ref = torchvision.models.resnet18(num_classes=10).state_dict()
    got = model.state_dict()
    assert list(got) == list(ref)
    assert [got[f"layer{i}.0.conv1.weight"].shape[0] for i in range(1, 5)] == [width, 2 * width, 4 * width, 8 * width]
    assert got["conv1.weight"].shape == (width, 3, 3, 3) and got["fc.weight"].shape == (10, 8 * width)
    vitkit.save_model(model, tmp_path / "cnn")
    loaded = vitkit.load_model(tmp_path / "cnn")
    x = torch.randn(2, 3, 32, 32)
    assert loaded.cfg.width == width and torch.equal(loaded(x), model(x))
