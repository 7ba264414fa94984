"""Batched RandAugment / TrivialAugment / random erasing (data/batch_augment.py) against
torchvision's tensor kernels, image by image, on real CIFAR-10 images; the spaces against
torchvision's own tables; and the draws' distribution."""
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from vitkit.data.batch_augment import (NUM_BINS, OPS, SPACES, BatchAugment, apply_op_batch, erase, erase_boxes,
                                       magnitude_bins)

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "vitkit" / "sample_data" / "cifar10_sample" / "train"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """48 real CIFAR-10 training images, (48, 3, 32, 32) uint8."""
    paths = sorted(SAMPLE.glob("*/*.jpg"))[::5][:48]
    return torch.stack([TF.pil_to_tensor(Image.open(p).convert("RGB")) for p in paths])


def reference(img: torch.Tensor, op: str, m: float, interp) -> torch.Tensor:
    """What torchvision's AutoAugment family does with one uint8 image (its dispatch, by public ops)."""
    if op == "Identity":
        return img
    if op in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(m))
        return TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0, interpolation=interp, center=[0, 0],
                         shear=[deg, 0.0] if op == "ShearX" else [0.0, deg])
    if op in ("TranslateX", "TranslateY"):
        return TF.affine(img, angle=0.0, translate=[int(m), 0] if op == "TranslateX" else [0, int(m)],
                         scale=1.0, shear=[0.0, 0.0], interpolation=interp)
    if op == "Rotate":
        return TF.rotate(img, angle=m, interpolation=interp)
    if op == "Brightness":
        return TF.adjust_brightness(img, 1.0 + m)
    if op == "Color":
        return TF.adjust_saturation(img, 1.0 + m)
    if op == "Contrast":
        return TF.adjust_contrast(img, 1.0 + m)
    if op == "Sharpness":
        return TF.adjust_sharpness(img, 1.0 + m)
    if op == "Posterize":
        return TF.posterize(img, bits=int(m))
    if op == "Solarize":
        return TF.solarize(img, threshold=255.0 * m)
    if op == "AutoContrast":
        return TF.autocontrast(img)
    return TF.equalize(img)


@pytest.mark.parametrize("kind", sorted(SPACES))
def test_spaces_are_torchvisions(kind):
    ref = (T.RandAugment if kind == "randaugment" else T.TrivialAugmentWide)._AUGMENTATION_SPACE
    assert set(ref) - {"Invert"} == set(OPS)
    for op in OPS:
        fn, signed = ref[op]
        want = fn(NUM_BINS, 32, 32)
        got = magnitude_bins(kind, op, 32, 32)
        assert SPACES[kind][op][1] == signed, op
        assert (got is None) == (want is None), op
        if want is not None:
            assert torch.equal(got.to(want.dtype), want), op


GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
# Colour ops take no interpolation: once; geometric ones with both modes torchvision's tensors allow.
CASES = [(op, "nearest") for op in OPS if op != "Identity"] + [(op, "bilinear") for op in GEOMETRIC]


@pytest.mark.parametrize("op,interp", CASES)
def test_each_op_matches_torchvision_image_by_image(images, op, interp):
    """Every image with its own signed magnitude from TrivialAugmentWide's bins (RandAugment's
    spaces use the same kernels); values equal, rare ±1 where a float product lands on an integer."""
    n = images.shape[0]
    g = torch.Generator().manual_seed(OPS.index(op))
    values = magnitude_bins("trivialaugment", op, 32, 32)
    if values is None:
        mags = torch.zeros(n, dtype=torch.float64)
    else:
        mags = values.double()[torch.randint(0, NUM_BINS, (n,), generator=g)]
        if SPACES["trivialaugment"][op][1]:
            mags = torch.where(torch.rand(n, generator=g) < 0.5, -mags, mags)
    if op == "Rotate":
        mags[:3] = torch.tensor([90.0, 0.0, -90.0], dtype=torch.float64)  # torchvision's exact turns
    ops = torch.full((n,), OPS.index(op))
    got = apply_op_batch(images.float(), ops, mags, interp)
    want = torch.stack([reference(images[i], op, mags[i].item(), getattr(TF.InterpolationMode, interp.upper()))
                        for i in range(n)]).float()
    diff = (got - want).abs()
    assert diff.max() <= 1, (op, diff.max())
    assert (diff == 0).float().mean() > 0.999, (op, (diff == 0).float().mean())
    assert torch.equal(got, got.round()) and got.min() >= 0 and got.max() <= 255


def test_mixed_ops_in_one_batch_go_to_their_images(images):
    n = images.shape[0]
    ops = torch.arange(n) % len(OPS)
    mags = torch.linspace(-0.5, 0.5, n, dtype=torch.float64)
    mags[ops == OPS.index("Posterize")] = 4.0
    mags[ops == OPS.index("Solarize")] = 0.5
    mags[ops == OPS.index("Rotate")] = 20.0
    got = apply_op_batch(images.float(), ops, mags, "nearest")
    for i in range(n):
        want = reference(images[i], OPS[ops[i]], mags[i].item(), TF.InterpolationMode.NEAREST).float()
        assert (got[i] - want).abs().max() <= 1, (i, OPS[ops[i]])


def test_erase_boxes_follow_random_erasing():
    g = torch.Generator().manual_seed(0)
    boxes = erase_boxes(20000, 32, 32, 0.25, g)
    erased = boxes[:, 2] > 0
    assert abs(erased.float().mean().item() - 0.25) < 0.015
    top, left, h, w = boxes[erased].unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).float() / 1024
    # torchvision draws the area from U(0.02, 0.33) before rounding h and w
    assert 0.015 < area.min() and area.max() < 0.36 and abs(area.mean().item() - 0.175) < 0.02


def test_erase_zeroes_exactly_the_box():
    x = torch.randn(2, 3, 8, 8)
    boxes = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]])
    out = erase(x, boxes)
    want = x.clone()
    want[0, :, 1:4, 2:6] = 0
    assert torch.equal(out, want)
    assert torch.equal(TF.erase(x[0], 1, 2, 3, 4, torch.zeros(3, 1, 1)), out[0])


@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment"])
def test_draws_cover_every_op_and_sign(kind):
    aug = BatchAugment(kind, num_ops=2, magnitude=9)
    t = aug.draw(14000, 32, 32, torch.Generator().manual_seed(1))
    ops, mags = t["ops"], t["mags"]
    assert ops.shape == (14000, 2 if kind == "randaugment" else 1)
    counts = torch.bincount(ops.flatten(), minlength=len(OPS)).float() / ops.numel()
    assert (counts - 1 / len(OPS)).abs().max() < 0.01
    rot = mags[ops == OPS.index("Rotate")]
    if kind == "randaugment":  # a fixed bin: |magnitude| is bin 9 of linspace(0, 30)
        assert torch.allclose(rot.abs(), torch.full_like(rot, 9.0), atol=1e-5)
    else:
        assert rot.abs().max() == 135.0 and len(rot.abs().unique()) == NUM_BINS
    assert 0.45 < (rot < 0).float().mean() < 0.55
    assert (mags[ops == OPS.index("Solarize")] >= 0).all()  # unsigned ops stay positive


def test_bad_magnitude_is_a_usage_error():
    from vitkit.errors import UsageError

    with pytest.raises(UsageError, match="ra_magnitude"):
        BatchAugment("randaugment", magnitude=31)


def test_tensor_loader_augments_each_sample_the_same_in_any_batch(images):
    """The choices are indexed by sample, so a 2-process run (every other sample, other batch
    sizes) augments each image exactly as a 1-process run: world size and resume change nothing."""
    from vitkit.data.cache import TensorLoader, TensorSet
    from vitkit.data.samplers import RankSampler

    ts = TensorSet(images, torch.arange(images.shape[0]) % 10, 0)
    aug = BatchAugment("trivialaugment", erasing=0.5)

    def batches(rank, world, per_proc):
        sampler = RankSampler(len(ts), rank, world, 16, seed=3)
        sampler.set_epoch(2)
        loader = TensorLoader(ts, per_proc, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, sampler=sampler, pad=4,
                              hflip=0.5, seed=3, augment=aug)
        keys = [k for k, _ in sampler]
        x = torch.cat([b for b, _, _ in loader])
        return dict(zip(keys, x))

    one = batches(0, 1, 16)
    two = {**batches(0, 2, 8), **batches(1, 2, 8)}
    assert one.keys() == two.keys() and len(one) == 48
    for k in one:
        assert torch.equal(one[k], two[k]), k
    erased = sum(bool((v == 0).all(dim=0).any()) for v in one.values())
    assert 10 < erased < 40  # about half the images carry a zeroed box
    plain = TensorLoader(ts, 16, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, sampler=RankSampler(len(ts), 0, 1, 16, 3),
                         pad=4, hflip=0.5, seed=3)
    plain.sampler.set_epoch(2)
    assert not torch.equal(torch.cat([b for b, _, _ in plain]), torch.stack(list(one.values())))
