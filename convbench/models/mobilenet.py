"""MobileNet baselines from torchvision: MobileNetV2 (Sandler et al., CVPR 2018) and MobileNetV3-Small
(Howard et al., ICCV 2019) at several width multipliers, randomly initialised."""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v2, mobilenet_v3_small

from convbench.models.registry import register_model


def _register_v2(name: str, width: float) -> None:
    def builder(num_classes: int = 1000) -> nn.Module:
        return mobilenet_v2(weights=None, width_mult=width, num_classes=num_classes)

    builder.__doc__ = f"torchvision MobileNetV2, width {width}×."
    register_model(name, family="mobilenetv2", paper="torchvision", paper_convention="mac+")(builder)


def _register_v3_small(name: str, width: float) -> None:
    def builder(num_classes: int = 1000) -> nn.Module:
        return mobilenet_v3_small(weights=None, width_mult=width, num_classes=num_classes)

    builder.__doc__ = f"torchvision MobileNetV3-Small, width {width}× (MicroNet's baseline)."
    register_model(name, family="mobilenetv3", paper="torchvision", paper_convention="micronet")(builder)


_register_v2("mobilenetv2", 1.0)
_register_v2("mobilenetv2-050", 0.5)
for _name, _width in {
    "mobilenetv3-small-100": 1.0,
    "mobilenetv3-small-075": 0.75,
    "mobilenetv3-small-050": 0.5,
    "mobilenetv3-small-035": 0.35,
}.items():
    _register_v3_small(_name, _width)
