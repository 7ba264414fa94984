"""forward_intermediates equals timm's on the same weights, for every argument combination that
changes the output; over a plain, an average-pooled and a distilled (two prefix tokens) model."""
import pytest
import torch

import vitkit

import timm

CASES = [
    ("vit_tiny_patch16_224", {}),
    ("vit_tiny_patch16_224", {"global_pool": "avg", "class_token": False}),
    ("deit_tiny_distilled_patch16_224", {}),
]


def _pair(tmp_path, name, kw):
    ref = timm.create_model(name, pretrained=False, dynamic_img_size=True, **kw).eval()
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    return vitkit.load_model(tmp_path / "w.pth").eval(), ref


def _flat(out):
    """Nested (tensor | tuple | list) → list of tensors, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


@pytest.mark.parametrize("name,kw", CASES, ids=["cls", "avg", "distilled"])
@pytest.mark.parametrize("args", [
    dict(),
    dict(indices=3, norm=True),
    dict(indices=[0, -1], output_fmt="NLC", return_prefix_tokens=True),
    dict(indices=[2, 5], stop_early=True, intermediates_only=True),
])
def test_forward_intermediates_equals_timm(tmp_path, name, kw, args):
    model, ref = _pair(tmp_path, name, kw)
    x = torch.randn(2, 3, 160, 224)  # non-square: a 10 × 14 grid
    with torch.no_grad():
        ours, theirs = model.forward_intermediates(x, **args), ref.forward_intermediates(x, **args)
    a, b = _flat(ours), _flat(theirs)
    assert len(a) == len(b) > 0
    for u, v in zip(a, b):
        assert u.shape == v.shape and (u - v).abs().max() < 1e-4, (u.shape, v.shape)
    if args.get("output_fmt", "NCHW") == "NCHW" and not args.get("return_prefix_tokens"):
        feats = ours if args.get("intermediates_only") else ours[1]
        assert feats[0].shape == (2, 192, 10, 14)


def test_forward_intermediates_rejects_bad_indices_and_format():
    model = vitkit.create_model("vit_tiny_patch4_32", depth=4).eval()
    x = torch.randn(1, 3, 32, 32)
    for bad in (0, 5, [4], [-5]):
        with pytest.raises(ValueError, match="out of range"):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")
