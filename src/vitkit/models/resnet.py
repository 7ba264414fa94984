"""CNN teachers for DeiT distillation: torchvision ResNets, plus CIFAR-stem variants.

    vitkit train --model resnet18_cifar --data DIR --out runs/teacher     # a 32-px teacher

The CIFAR stem replaces the 7×7 stride-2 conv and max-pool with one 3×3 stride-1 conv, so a
32×32 image keeps 32×32 resolution into the first stage (He et al. 2016, section 4.2 style).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import CNNConfig

def _rebuild(net, width: int, in_chans: int, num_classes: int) -> None:
    """torchvision's ResNet with `width` channels in the first stage (2×, 4×, 8× in the next):
    its own `_make_layer`, so blocks, init and state-dict keys stay torchvision's."""
    block = type(net.layer1[0])
    depths = [len(getattr(net, f"layer{i}")) for i in range(1, 5)]
    net.inplanes = width
    net.conv1 = nn.Conv2d(in_chans, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    for i, depth in enumerate(depths):
        setattr(net, f"layer{i + 1}", net._make_layer(block, width * 2 ** i, depth, stride=1 if i == 0 else 2))
    net.fc = nn.Linear(width * 8 * block.expansion, num_classes)
    for m in net.modules():  # torchvision's init, for the new modules
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class ResNet(nn.Module):
    """A torchvision ResNet behind a `cfg`, so it saves and loads like every vitkit model."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        import torchvision

        self.cfg = cfg
        # What a checkpoint knows beyond the weights (checkpoint/load.py fills them): the label of
        # each output, and the eval preprocessing a run recorded (data/transforms.preprocess_of).
        self.class_names: list[str] | None = None
        self.preprocess: dict | None = None
        net = getattr(torchvision.models, cfg.arch)(weights=None, num_classes=cfg.num_classes)
        if cfg.width != 64 or cfg.in_chans != 3:
            _rebuild(net, cfg.width, cfg.in_chans, cfg.num_classes)
        if cfg.cifar_stem:
            net.conv1 = nn.Conv2d(cfg.in_chans, cfg.width, kernel_size=3, stride=1, padding=1, bias=False)
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
