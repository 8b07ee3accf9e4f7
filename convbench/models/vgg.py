"""VGG-BN for CIFAR (Simonyan & Zisserman, ICLR 2015), the baseline of CNN-MoD's Table 9.

The paper does not print the architecture; its Table 9 parameter counts (15.25 M for VGG16-BN and 20.57 M
for VGG19-BN on CIFAR-10) imply the common CIFAR recipe: the VGG conv stages with BatchNorm, global 1×1
features after five max-pools at 32×32 input, and a 512 -> 512 -> 512 -> classes classifier (this classifier
width is the one that reproduces both counts). Dropout in the classifier follows that recipe; it is the
identity at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from convbench.models.layers import CIFAR_INPUT
from convbench.models.registry import register_model

# Output channels of the convolutions in each of the five stages; every stage ends with a 2×2 max-pool.
VGG_STAGES: dict[int, list[list[int]]] = {
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        # Convs keep their bias, as in torchvision's VGG: only then do VGG16 and VGG19 both match Table 9.
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CifarVGG(nn.Module):
    """VGG-BN for 32×32 inputs; ``stages`` lists each stage's conv widths."""

    def __init__(self, stages: list[list[int]], num_classes: int = 10) -> None:
        super().__init__()
        in_channels = 3
        built = []
        for widths in stages:
            layers = []
            for width in widths:
                layers.append(conv_bn_relu(in_channels, width))
                in_channels = width
            built.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(built)
        self.pool = nn.MaxPool2d(2)
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(in_channels, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.pool(stage(x))
        return self.classifier(torch.flatten(x, 1))


def _register(depth: int, num_classes: int) -> None:
    def builder(num_classes: int = num_classes) -> nn.Module:
        return CifarVGG(VGG_STAGES[depth], num_classes=num_classes)

    builder.__doc__ = f"VGG{depth}-BN for CIFAR-{num_classes} (CNN-MoD Table 9 baseline)."
    register_model(
        f"vgg{depth}-bn-cifar{num_classes}",
        family="vgg",
        paper="cnn-mod",
        paper_convention="mac+",
        input_size=CIFAR_INPUT,
        num_classes=num_classes,
    )(builder)


for _depth in VGG_STAGES:
    for _classes in (10, 100):
        _register(_depth, _classes)
