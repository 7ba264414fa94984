"""RandAugment, TrivialAugment and random erasing on whole batches, for the fast data path.

    vitkit train --config recipes/cifar10_vit_cpu_60min.yaml --data DIR    # data.cache: memory
    # with data.auto_augment: trivialaugment | randaugment and data.random_erasing: 0.25

The folder path runs torchvision's transforms image by image in DataLoader workers; the tensor
path (data/cache.py) has no workers, so it needs the same augmentations as a few tensor ops per
batch. Each image still gets its own operation, magnitude and sign, drawn from the per-(seed,
epoch) table (`draw`), and each operation computes what torchvision's tensor kernel computes on
that uint8 image (tests/test_batch_augment.py compares them image by image): the batch holds
float32 values that are whole numbers in [0, 255], and every operation ends where torchvision
casts back to uint8 (floor for blends, round for resampling).

The augmentation spaces are torchvision's (`T.RandAugment`, `T.TrivialAugmentWide`, 31 bins),
translation included: TrivialAugmentWide moves by up to 32 pixels whatever the image size, which
blanks most of a 32-px image — as the folder path does; RandAugment scales it to the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from ..errors import UsageError

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
NUM_BINS = 31

# Augmentation spaces as data: op → (top of linspace(0, top, bins) or a rule name, signed).
# "translate_rel": 150/331 of the side (RandAugment); "posterize4"/"posterize6": bits from 8 down
# by 4 or 6 over the bins; "solarize": thresholds from 255 down to 0.
_COLOR = ("Brightness", "Color", "Contrast", "Sharpness")
SPACES: dict[str, dict[str, tuple[object, bool]]] = {
    "randaugment": {"Identity": (None, False), "ShearX": (0.3, True), "ShearY": (0.3, True),
                    "TranslateX": ("translate_rel", True), "TranslateY": ("translate_rel", True),
                    "Rotate": (30.0, True), **{op: (0.9, True) for op in _COLOR},
                    "Posterize": ("posterize4", False), "Solarize": ("solarize", False),
                    "AutoContrast": (None, False), "Equalize": (None, False)},
    "trivialaugment": {"Identity": (None, False), "ShearX": (0.99, True), "ShearY": (0.99, True),
                       "TranslateX": (32.0, True), "TranslateY": (32.0, True),
                       "Rotate": (135.0, True), **{op: (0.99, True) for op in _COLOR},
                       "Posterize": ("posterize6", False), "Solarize": ("solarize", False),
                       "AutoContrast": (None, False), "Equalize": (None, False)},
}


def magnitude_bins(kind: str, op: str, height: int, width: int) -> torch.Tensor | None:
    """The NUM_BINS magnitudes of `op` in space `kind` (None: the op takes no magnitude)."""
    top, _ = SPACES[kind][op]
    if top is None:
        return None
    if top == "translate_rel":
        top = 150.0 / 331.0 * (width if op == "TranslateX" else height)
    if top in ("posterize4", "posterize6"):
        steps = 4 if top == "posterize4" else 6
        return (8 - (torch.arange(NUM_BINS) / ((NUM_BINS - 1) / steps))).round().int()
    if top == "solarize":
        return torch.linspace(1.0, 0.0, NUM_BINS)
    return torch.linspace(0.0, float(top), NUM_BINS)


# ---- the operations: x (b, 3, H, W) float32 whole numbers in [0, 255], m (b,) float64 ----
def _per_factor(x: torch.Tensor, m: torch.Tensor, fn) -> torch.Tensor:
    """Apply fn(images, factor) to each group of images sharing a magnitude, with the factor
    1 + m as a Python float: torchvision's exact arithmetic (a per-image tensor of factors
    rounds differently and moves ~1% of pixels by one level). A space has at most 62 values."""
    out = torch.empty_like(x)
    for v in m.unique().tolist():
        sel = (m == v).nonzero().squeeze(1).to(x.device)
        out[sel] = fn(x[sel], 1.0 + v)
    return out


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: float) -> torch.Tensor:
    """torchvision's _blend on uint8: a·r + b·(1 − r), clamped, truncated by the uint8 cast."""
    return a.mul(ratio).add_(b, alpha=1.0 - ratio).clamp_(0, 255).floor_()


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()  # (b, 1, H, W)


def _brightness(x, m, interp):
    return _per_factor(x, m, lambda y, f: y.mul(f).clamp_(0, 255).floor_())


def _color(x, m, interp):
    return _per_factor(x, m, lambda y, f: _blend(y, _gray(y), f))


def _contrast(x, m, interp):
    return _per_factor(x, m, lambda y, f: _blend(y, _gray(y).mean(dim=(-3, -2, -1), keepdim=True), f))


def _sharpen(y: torch.Tensor, f: float) -> torch.Tensor:
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=y.dtype, device=y.device).expand(3, 1, 3, 3)
    blurred = F.conv2d(y, kernel, groups=3).round_()  # (b, 3, H − 2, W − 2): the border stays as it was
    out = y.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.add_(blurred.sub_(inner), alpha=1.0 - f)
    return out.clamp_(0, 255).floor_()


def _sharpness(x, m, interp):
    return _per_factor(x, m, _sharpen)


def _posterize(x, m, interp):
    step = torch.pow(2.0, 8 - m.to(x.device, x.dtype)).view(-1, 1, 1, 1)  # keep the top `bits` bits
    return torch.div(x, step, rounding_mode="floor") * step


def _solarize(x, m, interp):
    threshold = (255.0 * m).to(x.device, x.dtype).view(-1, 1, 1, 1)  # m stays on the CPU with the table
    return torch.where(x >= threshold, 255.0 - x, x)


def _autocontrast(x, m, interp):
    return TF.autocontrast(x.to(torch.uint8)).to(x.dtype)  # batched in torchvision already


def _equalize(x, m, interp):
    return TF.equalize(x.to(torch.uint8)).to(x.dtype)


def _inverse_affine(cx: float, cy: float, angle: float, tx: float, ty: float, shear_x: float,
                    shear_y: float) -> list[float]:
    """torchvision's inverse affine matrix (centre, rotation in degrees, translation, shear in
    degrees, scale 1): what F.affine and F.rotate sample the input with."""
    rot, sx, sy = math.radians(angle), math.radians(shear_x), math.radians(shear_y)
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    mat = [d, -b, 0.0, -c, a, 0.0]
    mat[2] += cx - mat[0] * (cx + tx) - mat[1] * (cy + ty)
    mat[5] += cy - mat[3] * (cx + tx) - mat[4] * (cy + ty)
    return mat


def _warp(x: torch.Tensor, mats: list[list[float]], interp: str) -> torch.Tensor:
    """Resample each image with its own inverse matrix, as torchvision's _affine_grid +
    grid_sample (zeros outside), rounded as its uint8 cast."""
    B, _, H, W = x.shape
    theta = torch.tensor(mats, dtype=x.dtype, device=x.device).view(B, 2, 3)
    base = torch.empty(1, H, W, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - W) * 0.5, (W - 1.0) * 0.5, steps=W, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - H) * 0.5, (H - 1.0) * 0.5, steps=H, device=x.device).unsqueeze(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div(torch.tensor([0.5 * W, 0.5 * H], dtype=x.dtype, device=x.device))  # (B, 3, 2)
    grid = base.view(1, H * W, 3).expand(B, -1, -1).bmm(scaled).view(B, H, W, 2)
    out = F.grid_sample(x, grid, mode=interp, padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0, 255)


def _shear(axis: int):
    def op(x, m, interp):
        H, W = x.shape[-2:]
        # torchvision shears about the top-left corner (centre [0, 0]), as PIL and the AutoAugment paper
        mats = []
        for v in m.tolist():
            deg = math.degrees(math.atan(v))
            mats.append(_inverse_affine(-W * 0.5, -H * 0.5, 0.0, 0.0, 0.0, deg if axis == 0 else 0.0,
                                        deg if axis == 1 else 0.0))
        return _warp(x, mats, interp)
    return op


def _translate(axis: int):
    def op(x, m, interp):
        # int(): torchvision truncates the magnitude to whole pixels
        mats = [_inverse_affine(0.0, 0.0, 0.0, float(int(v)) if axis == 0 else 0.0,
                                float(int(v)) if axis == 1 else 0.0, 0.0, 0.0) for v in m.tolist()]
        return _warp(x, mats, interp)
    return op


def _rotate(x, m, interp):
    out = x.clone()
    angles = m.tolist()
    # torchvision turns 0, 180 and (square images) 90 degrees by exact index shuffles
    special = {0.0: None, 180.0: 2, **({90.0: 1, 270.0: 3} if x.shape[-1] == x.shape[-2] else {})}
    warp_idx = [i for i, a in enumerate(angles) if a not in special]
    for i, a in enumerate(angles):
        if a in special and special[a] is not None:
            out[i] = torch.rot90(x[i], k=special[a], dims=(-2, -1))
    if warp_idx:
        mats = [_inverse_affine(0.0, 0.0, -angles[i], 0.0, 0.0, 0.0, 0.0) for i in warp_idx]
        out[warp_idx] = _warp(x[warp_idx], mats, interp)
    return out


_APPLY = {"ShearX": _shear(0), "ShearY": _shear(1), "TranslateX": _translate(0), "TranslateY": _translate(1),
          "Rotate": _rotate, "Brightness": _brightness, "Color": _color, "Contrast": _contrast,
          "Sharpness": _sharpness, "Posterize": _posterize, "Solarize": _solarize,
          "AutoContrast": _autocontrast, "Equalize": _equalize}


def apply_op_batch(x: torch.Tensor, ops: torch.Tensor, mags: torch.Tensor, interp: str = "nearest") -> torch.Tensor:
    """One operation per image: x (B, 3, H, W) float whole numbers in [0, 255]; ops (B,) indices
    into OPS; mags (B,) float64 signed magnitudes. Images sharing an operation go together."""
    out = x.clone()
    for k, name in enumerate(OPS):
        if name == "Identity":
            continue
        sel = (ops == k).nonzero().squeeze(1)
        if sel.numel():
            out[sel] = _APPLY[name](x[sel], mags[sel.cpu()], interp)
    return out


def erase(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Random erasing with value 0 (after normalisation, as the folder path's T.RandomErasing(value=0)).
    boxes: (B, 4) int (top, left, height, width); height 0 leaves the image unchanged."""
    H, W = x.shape[-2:]
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    b = boxes.to(x.device)
    top, left, h, w = (b[:, i].view(-1, 1, 1) for i in range(4))
    mask = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)  # (B, H, W)
    return x.masked_fill(mask.unsqueeze(1), 0.0)


@dataclass
class BatchAugment:
    """What the tensor path adds to crop and flip: `kind` ("none", "randaugment",
    "trivialaugment"), RandAugment's ops per image and magnitude bin, and erasing's probability."""
    kind: str = "none"
    num_ops: int = 2
    magnitude: int = 9
    erasing: float = 0.0
    interpolation: str = "nearest"  # grid_sample's mode for geometric ops; bicubic overshoot is clamped

    def __post_init__(self):
        if self.kind not in ("none", *SPACES):
            raise UsageError(f"data.auto_augment={self.kind!r}: choose none, randaugment or trivialaugment")
        if not 0 <= self.magnitude < NUM_BINS:
            raise UsageError(f"data.ra_magnitude must be in [0, {NUM_BINS - 1}], got {self.magnitude}")

    @property
    def active(self) -> bool:
        return self.kind != "none" or self.erasing > 0

    def draw(self, n: int, height: int, width: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-image random choices for one epoch (indexed by sample like the crop table)."""
        t: dict[str, torch.Tensor] = {}
        if self.kind != "none":
            k = self.num_ops if self.kind == "randaugment" else 1
            ops = torch.randint(0, len(OPS), (n, k), generator=g)
            bins = (torch.full((n, k), self.magnitude) if self.kind == "randaugment"
                    else torch.randint(0, NUM_BINS, (n, k), generator=g))
            negative = torch.rand(n, k, generator=g) < 0.5
            mags = torch.zeros(n, k, dtype=torch.float64)
            for j, name in enumerate(OPS):
                values = magnitude_bins(self.kind, name, height, width)
                if values is None:
                    continue
                sel = ops == j
                v = values.double()[bins[sel]]
                if SPACES[self.kind][name][1]:
                    v = torch.where(negative[sel], -v, v)
                mags[sel] = v
            t["ops"], t["mags"] = ops, mags
        if self.erasing > 0:
            t["boxes"] = erase_boxes(n, height, width, self.erasing, g)
        return t

    def before_normalise(self, x: torch.Tensor, t: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        if "ops" not in t:
            return x
        ops, mags = t["ops"][idx], t["mags"][idx]
        for j in range(ops.shape[1]):  # RandAugment's ops one after the other
            x = apply_op_batch(x, ops[:, j].to(x.device), mags[:, j], self.interpolation)
        return x

    def after_normalise(self, x: torch.Tensor, t: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        return erase(x, t["boxes"][idx]) if "boxes" in t else x


def erase_boxes(n: int, H: int, W: int, p: float, g: torch.Generator,
                scale=(0.02, 0.33), ratio=(0.3, 3.3), tries: int = 10) -> torch.Tensor:
    """(n, 4) boxes drawn as T.RandomErasing does: with probability p, up to `tries` (area,
    aspect) draws, the first that fits; none fits or not applied: height 0."""
    apply = torch.rand(n, generator=g) < p
    area = H * W * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=g, dtype=torch.float64))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * torch.rand(n, tries, generator=g, dtype=torch.float64))
    h = torch.sqrt(area * aspect).round().long()
    w = torch.sqrt(area / aspect).round().long()
    fits = (h < H) & (w < W)
    first = fits.long().argmax(dim=1, keepdim=True)  # (n, 1): the first fitting try (0 if none)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    ok = apply & fits.any(dim=1)
    top = (torch.rand(n, generator=g, dtype=torch.float64) * (H - h + 1)).floor().long()
    left = (torch.rand(n, generator=g, dtype=torch.float64) * (W - w + 1)).floor().long()
    zero = torch.zeros_like(h)
    return torch.stack([top, left, torch.where(ok, h, zero), torch.where(ok, w, zero)], dim=1)
