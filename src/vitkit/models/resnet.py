"""CNN teachers for DeiT distillation: torchvision ResNets, plus CIFAR-stem variants.

    vitkit train --model resnet18_cifar --data DIR --out runs/teacher     # a 32-px teacher

The CIFAR stem replaces the 7×7 stride-2 conv and max-pool with one 3×3 stride-1 conv, so a
32×32 image keeps 32×32 resolution into the first stage (He et al. 2016, section 4.2 style).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50")


@dataclass
class CNNConfig:
    arch: str = "resnet18"
    num_classes: int = 1000
    cifar_stem: bool = False
    img_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        from ..config import ConfigError

        if self.arch not in ARCHS:
            raise ConfigError(f"unknown CNN arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        self.img_size = (self.img_size, self.img_size) if isinstance(self.img_size, int) else tuple(self.img_size)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d

    def replace(self, **overrides) -> "CNNConfig":
        from ..config import ConfigError

        known = {f.name for f in dataclasses.fields(self)}
        bad = sorted(k for k in overrides if k not in known and k not in _VIT_ONLY)
        if bad:
            raise ConfigError(f"unknown CNN option(s): {', '.join(bad)}")
        # ViT-only options (drop_path_rate, ...) mean nothing to a CNN: they are ignored, not fatal.
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if k in known})


_VIT_ONLY = ("drop_path_rate", "drop_rate", "pos_embed_interp", "pos_embed_antialias", "patch_dropout")


class ResNet(nn.Module):
    """A torchvision ResNet behind a `cfg`, so it saves and loads like every vitkit model."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        import torchvision

        self.cfg = cfg
        net = getattr(torchvision.models, cfg.arch)(weights=None, num_classes=cfg.num_classes)
        if cfg.cifar_stem:
            net.conv1 = nn.Conv2d(cfg.in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        # Flatten torchvision's modules into this one so state-dict keys stay torchvision's (conv1.weight, fc.bias).
        for name, module in net.named_children():
            self.add_module(name, module)

    def heads(self) -> list[nn.Linear]:
        return [self.fc]

    def no_weight_decay(self) -> set[str]:
        return set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


CNN_MODELS = {**{a: {"arch": a} for a in ARCHS},
              **{f"{a}_cifar": {"arch": a, "cifar_stem": True, "img_size": 32} for a in ARCHS}}
