"""A CNN trains and teaches in channels-last memory (training/builders.conv_layout), a ViT stays as
it is, and neither layout changes what the model computes or what its checkpoint holds."""
import torch

import vitkit
from vitkit.checkpoint import load_model, save_model
from vitkit.training.builders import conv_layout


def _channels_last(t: torch.Tensor) -> bool:
    """NHWC and not also NCHW (a 1×1 kernel is both, so it tells nothing)."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def test_a_cnn_goes_channels_last_and_computes_the_same():
    torch.manual_seed(0)
    ref = vitkit.create_model("resnet18_cifar_w32", num_classes=10).eval()
    cnn = vitkit.create_model("resnet18_cifar_w32", num_classes=10).eval()
    cnn.load_state_dict(ref.state_dict())
    assert conv_layout(cnn) is cnn
    assert all(_channels_last(p) for p in cnn.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    x = torch.randn(4, 3, 32, 32)  # a contiguous (NCHW) batch, as the loaders give
    seen = []
    cnn.conv1.register_forward_hook(lambda m, i, out: seen.append(_channels_last(out)))
    with torch.no_grad():
        torch.testing.assert_close(cnn(x), ref(x), rtol=1e-4, atol=1e-4)
    assert seen == [True]  # the weight's layout is enough: no batch conversion needed


def test_a_vit_is_left_contiguous():
    vit = vitkit.create_model("vit_tiny_patch4_32", num_classes=10, depth=1, stem_channels=[8, 16])
    conv_layout(vit)
    assert all(p.is_contiguous() for p in vit.parameters())


def test_a_channels_last_cnn_saves_contiguous_weights_that_load_back(tmp_path):
    torch.manual_seed(0)
    cnn = conv_layout(vitkit.create_model("resnet18_cifar_w32", num_classes=10)).eval()
    save_model(cnn, tmp_path / "cnn")
    back = load_model(tmp_path / "cnn").eval()
    assert all(p.is_contiguous() for p in back.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), cnn(x), rtol=1e-4, atol=1e-4)


def test_training_a_cnn_runs_channels_last_and_resumes(cifar_small, tmp_path, monkeypatch):
    from vitkit.training import builders
    from vitkit.training.config import load_train_config
    from vitkit.training.loop import train

    layouts = []

    def spy(model):
        conv_layout(model)
        layouts.append(_channels_last(model.conv1.weight))
        return model

    monkeypatch.setattr(builders, "conv_layout", spy)

    common = [f"data.path={cifar_small}", "model.name=resnet18_cifar_w32", "data.workers=0", "run.progress=false",
              "optim.batch_size=50", f"run.out={tmp_path / 'run'}"]
    train(load_train_config(None, common + ["optim.epochs=1"]))
    train(load_train_config(None, common + ["optim.epochs=2", "run.resume=true"]))  # from channels-last tensors
    assert layouts == [True, True]  # the new model and the resumed one
    model = load_model(tmp_path / "run" / "last.pt")
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()
