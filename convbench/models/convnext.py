"""ConvNeXt baseline from torchvision (Liu et al., CVPR 2022), randomly initialised."""

from __future__ import annotations

from torch import nn
from torchvision.models import convnext_tiny as tv_convnext_tiny

from convbench.models.registry import register_model


@register_model("convnext-tiny", family="convnext", paper="torchvision")
def convnext_tiny(num_classes: int = 1000) -> nn.Module:
    """torchvision ConvNeXt-Tiny (KernelWarehouse's ConvNeXt baseline)."""
    return tv_convnext_tiny(weights=None, num_classes=num_classes)
