"""ResNet baselines: torchvision's ImageNet ResNets and the CIFAR variant used by CNN-MoD (Table 9).

ImageNet models are torchvision's builders unchanged (He et al., CVPR 2016). CNN-MoD (Cakaj et al., ACCV
2024) does not print its CIFAR ResNets; the common CIFAR recipe is the one its Table 9 implies (11.17 M
parameters and 557 MMAC for ResNet18 on CIFAR-10 are what this variant counts): a 3×3 stride-1 stem without
max-pool, otherwise the same stages; at 32×32 input the last stage works on 4×4 maps.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from convbench.models.layers import CIFAR_INPUT
from convbench.models.registry import register_model


def cifar_stem(model: ResNet) -> ResNet:
    """Swap torchvision's 7×7/2 stem and max-pool for a 3×3/1 stem, as CIFAR ResNets do."""
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def build_resnet(
    block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000, cifar: bool = False
) -> ResNet:
    model = ResNet(block, layers, num_classes=num_classes)
    return cifar_stem(model) if cifar else model


def _register_imagenet(name: str, torchvision_builder) -> None:  # noqa: ANN001
    def builder(num_classes: int = 1000) -> nn.Module:
        return torchvision_builder(weights=None, num_classes=num_classes)

    builder.__doc__ = f"torchvision {name} (He et al., CVPR 2016), randomly initialised."
    register_model(name, family="resnet", paper="torchvision", paper_convention="mac+")(builder)


for _name, _fn in {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "resnet152": resnet.resnet152,
}.items():
    _register_imagenet(_name, _fn)

CIFAR_RESNETS: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


def _register_cifar(name: str, num_classes: int) -> None:
    block, layers = CIFAR_RESNETS[name]

    def builder(num_classes: int = num_classes) -> nn.Module:
        return build_resnet(block, layers, num_classes=num_classes, cifar=True)

    builder.__doc__ = f"{name} for CIFAR-{num_classes}: 3×3 stem, no max-pool (CNN-MoD Table 9 baseline)."
    register_model(
        f"{name}-cifar{num_classes}",
        family="resnet",
        paper="cnn-mod",
        paper_convention="mac+",
        input_size=CIFAR_INPUT,
        num_classes=num_classes,
    )(builder)


for _name in CIFAR_RESNETS:
    for _classes in (10, 100):
        _register_cifar(_name, _classes)
