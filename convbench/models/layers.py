"""Building blocks shared by several model families.

* :data:`CIFAR_INPUT`: the 3×32×32 input of the CIFAR models (ResNet / VGG baselines, CNN-MoD, CompConv).
* :func:`pair`, :class:`ConvGeometry`, :func:`conv_geometry`: a 2-D convolution's constructor arguments, to
  rebuild an ``nn.Conv2d`` as a dynamic layer (ODConv, DY-Conv, KernelWarehouse) that convolves the same way.
* :func:`batch_folded_conv2d`: one grouped convolution that applies a different kernel to every sample (the
  batch is folded into the groups), the convolution of ODConv, DY-Conv and KernelWarehouse.
* :func:`global_pool` and :func:`init_attention_linears`: the pooled descriptor and the FC initialisation of
  the attention branches of those layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CIFAR_INPUT",
    "ConvGeometry",
    "batch_folded_conv2d",
    "conv_geometry",
    "global_pool",
    "init_attention_linears",
    "pair",
]

CIFAR_INPUT = (3, 32, 32)


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    """``v`` as a ``(height, width)`` pair (``nn.Conv2d`` accepts an int or a tuple)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class ConvGeometry(NamedTuple):
    """The constructor arguments of a 2-D convolution (to rebuild it as a dynamic layer)."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool


def conv_geometry(conv: nn.Conv2d) -> ConvGeometry:
    """``conv``'s geometry; a dynamic layer built from ``**geometry._asdict()`` convolves the same way."""
    if isinstance(conv.padding, str):
        raise ValueError(f"string padding {conv.padding!r} is not supported")
    return ConvGeometry(
        conv.in_channels,
        conv.out_channels,
        pair(conv.kernel_size),
        pair(conv.stride),
        pair(conv.padding),
        pair(conv.dilation),
        conv.groups,
        conv.bias is not None,
    )


def batch_folded_conv2d(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> Tensor:
    """Convolve each sample of ``x`` ``[B, C, H, W]`` with its own kernel.

    ``weight`` is ``[B·Cout, C/groups, kh, kw]`` (sample-major). The batch is folded into the channels and the
    convolution runs once with ``groups·B`` groups; the group count is therefore tied to the batch size, and an
    exported ONNX graph only runs at the batch size it was traced with.
    """
    batch = x.shape[0]
    out = F.conv2d(x.reshape(1, -1, x.shape[2], x.shape[3]), weight, None, stride, padding, dilation, groups * batch)
    return out.reshape(batch, -1, out.shape[2], out.shape[3])


def global_pool(x: Tensor) -> Tensor:
    """Global average pool to ``[B, C]`` (one ``aten::mean``), the descriptor attention branches read."""
    return x.mean(dim=(2, 3))


def init_attention_linears(module: nn.Module) -> None:
    """Kaiming-normal (``fan_out``, ReLU gain) weights and zero biases for every ``nn.Linear`` under ``module``,
    the initialisation of the official ODConv and KernelWarehouse attention branches."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
