"""Dynamic convolutions that mix a bank of K kernels per sample: ODConv and DY-Conv.

* **ODConv** -- Li, Zhou, Yao, "Omni-Dimensional Dynamic Convolution", ICLR 2022 (arXiv 2209.07947), §3;
  official code OSVAI/ODConv ``modules/odconv.py``, ``models/od_resnet.py``, ``models/od_mobilenetv2.py``.
  Four attentions (input channel, output channel / filter, spatial, kernel) computed from one squeezed
  descriptor; ODConv(1×) is ``kernel_num=1``, ODConv(4×) is ``kernel_num=4``.
* **DY-Conv** -- Chen et al., "Dynamic Convolution: Attention over Convolution Kernels", CVPR 2020 (arXiv
  1912.03458), §3: K kernels aggregated by a softmax attention (squeeze-and-excitation branch whose first FC
  reduces the width by 4).

Both layers (and the KernelWarehouse layer in :mod:`convbench.models.kernelwarehouse`) build a per-sample
kernel and run **one grouped convolution with the batch folded into the groups**
(:func:`convbench.models.layers.batch_folded_conv2d`), so their ONNX graphs only run at the traced batch size
(convbench exports every model at the batch size being measured, so this costs nothing).

Operator structure (so that one fvcore rule counts KW, ODConv and DY-Conv alike):

* attention FCs are ``nn.Linear`` on the globally pooled descriptor (``aten::mean`` → ``aten::linear``);
* the kernel aggregation ``Σ_k a_bk · W_k`` is **one** ``torch.mm`` of the ``[B, K]`` attention with the ``[K,
  |W|]`` kernel bank (``aten::mm``), as in DY-Conv's reference code and KW's assembly;
* ODConv's channel / filter / spatial attentions are broadcast ``aten::mul``\\ s (on the input, the output and
  the aggregated kernel respectively);
* the convolution is ``aten::conv2d`` (``aten::_convolution`` in TorchScript) with ``groups = groups·B``.

Open choice made here (ODConv): the official code aggregates with a broadcast ``[B, K, Cout, Cin/g, k, k]``
multiply and a ``sum`` over K; we compute the mathematically identical ``spatial ⊙ (a @ W)`` (the spatial
attention does not depend on k), which needs no ``[B, K, ...]`` temporary and turns the aggregation into the
same ``aten::mm`` the other two layers use.

The two layers share :class:`KernelBankConv2d` (the constructor: geometry, temperature, the K-kernel bank and
its initialisation, the per-kernel bias; the batch-folded convolution); each adds its own attention branch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import mobilenet_v2
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from convbench.models.layers import (
    batch_folded_conv2d,
    conv_geometry,
    global_pool,
    init_attention_linears,
    pair,
)
from convbench.models.registry import register_model

__all__ = [
    "DynamicConv2d",
    "KernelBankConv2d",
    "ODConv2d",
    "dy_resnet",
    "od_mobilenetv2",
    "od_resnet",
    "set_dynamic_temperature",
]


def set_dynamic_temperature(model: nn.Module, temperature: float) -> nn.Module:
    """Set the attention temperature of every ODConv / DY-Conv layer of ``model`` (1.0 = inference)."""
    if temperature <= 0:
        raise ValueError(f"ODConv/DY-Conv temperatures divide the logits and must be > 0, got {temperature}")
    for module in model.modules():
        if isinstance(module, KernelBankConv2d):
            module.temperature = float(temperature)
    return model


def _tempered(logits: Tensor, temperature: float) -> Tensor:
    """``logits / temperature``; T = 1 (inference) skips the division, so the default graph has none."""
    return logits if temperature == 1.0 else logits / temperature


def _replace_convs(model: nn.Module, names: list[str], factory: type[nn.Module], **kwargs: object) -> None:
    """Swap each ``nn.Conv2d`` named in ``names`` for ``factory(**geometry, **kwargs)``."""
    for name in names:
        conv = model.get_submodule(name)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"{name} is {type(conv).__name__}, expected nn.Conv2d")
        model.set_submodule(name, factory(**conv_geometry(conv)._asdict(), **kwargs))


def _resnet_block_convs(model: ResNet, include_downsample: bool) -> list[str]:
    """Names of the convolutions inside the residual stages (never the stem), in module order."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d) or not name.startswith("layer"):
            continue
        if ".downsample." in name and not include_downsample:
            continue
        names.append(name)
    return names


# ------------------------------------------------------------------------------------------------------------
# the part ODConv and DY-Conv share
# ------------------------------------------------------------------------------------------------------------


class KernelBankConv2d(nn.Module):
    """A convolution whose kernel is mixed per sample from a bank of K kernels (ODConv and DY-Conv).

    Takes ``nn.Conv2d``'s arguments plus ``kernel_num`` and the attention ``temperature``; any further keyword
    arguments are the subclass's attention options, passed to its :meth:`_build_attention`. Holds the
    geometry, the temperature, the bank ``weight`` ``[K, Cout, Cin/g, kh, kw]`` (each kernel Kaiming-normal,
    ``fan_out``, ReLU gain, as in the official ODConv code; the DY-Conv paper gives no initialisation and gets
    the same, our choice) and, with ``bias``, one bias per kernel ``[K, Cout]``. The attention branch is built
    before the bank: that order fixes the order in which a seeded model draws its weights. :meth:`_convolve`
    runs the mixed kernels as one batch-folded grouped convolution.
    """

    weight: nn.Parameter
    bias: nn.Parameter | None
    #: Why a subclass refuses ``bias=True``; None where it takes a per-kernel bias.
    no_bias_reason: str | None = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        kernel_num: int = 4,
        temperature: float = 1.0,
        **attention: Any,
    ) -> None:
        if bias and self.no_bias_reason:
            raise ValueError(f"{type(self).__name__} has no bias ({self.no_bias_reason})")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size)
        self.stride, self.padding, self.dilation = pair(stride), pair(padding), pair(dilation)
        self.groups, self.kernel_num = groups, kernel_num
        self.temperature = float(temperature)
        self._build_attention(**attention)
        self._init_kernel_bank()
        self.bias = nn.Parameter(torch.zeros(kernel_num, out_channels)) if bias else None

    def _build_attention(self) -> None:
        """Build the attention branch from the geometry set so far (subclasses; their keyword options)."""
        raise NotImplementedError

    def _init_kernel_bank(self) -> None:
        """Create and initialise the bank ``weight`` (after the attention branch)."""
        self.weight = nn.Parameter(
            torch.empty(self.kernel_num, self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        )
        for k in range(self.kernel_num):
            nn.init.kaiming_normal_(self.weight.data[k], mode="fan_out", nonlinearity="relu")

    def _flat_bank(self) -> Tensor:
        """The bank as a ``[K, Cout·Cin/g·kh·kw]`` matrix (the right operand of the aggregation ``mm``)."""
        return self.weight.reshape(self.kernel_num, -1)

    def _convolve(self, x: Tensor, weight: Tensor) -> Tensor:
        """Convolve every sample of ``x`` with its own kernel; ``weight`` holds ``B·Cout·Cin/g·kh·kw`` values
        in sample-major order (e.g. ``[B, |W|]``)."""
        weight = weight.reshape(-1, self.in_channels // self.groups, *self.kernel_size)  # [B·Cout, ...]
        return batch_folded_conv2d(x, weight, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"groups={self.groups}, kernel_num={self.kernel_num}, temperature={self.temperature}"
        )


# ------------------------------------------------------------------------------------------------------------
# ODConv
# ------------------------------------------------------------------------------------------------------------


class ODAttention(nn.Module):
    """ODConv's attention branch (paper §3; official ``Attention`` in ``modules/odconv.py``).

    GAP → FC (``max(int(C·reduction), 16)`` hidden, no bias) → BN → ReLU → four heads. Heads that the layer
    geometry makes trivial are absent and return ``None``: the filter head for depthwise convs, the spatial
    head for 1×1 kernels, the kernel head when ``kernel_num == 1``.

    The official heads are 1×1 ``Conv2d`` + ``BatchNorm2d`` on a ``[B, C, 1, 1]`` map; on a pooled vector
    these are exactly ``Linear`` + ``BatchNorm1d`` (same parameters), which is what we use so that every
    attention FC in convbench is an ``aten::linear``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        groups: int,
        kernel_num: int,
        reduction: float = 0.0625,
        min_hidden: int = 16,
    ) -> None:
        super().__init__()
        hidden = max(int(in_channels * reduction), min_hidden)
        self.fc = nn.Linear(in_channels, hidden, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.channel_fc = nn.Linear(hidden, in_channels)
        depthwise = in_channels == groups == out_channels
        self.filter_fc = None if depthwise else nn.Linear(hidden, out_channels)
        num_positions = kernel_size[0] * kernel_size[1]
        self.spatial_fc = None if num_positions == 1 else nn.Linear(hidden, num_positions)
        self.kernel_fc = None if kernel_num == 1 else nn.Linear(hidden, kernel_num)
        init_attention_linears(self)

    def forward(self, x: Tensor, temperature: float) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """Channel ``[B, Cin]``, filter ``[B, Cout]``, spatial ``[B, kh·kw]`` and kernel ``[B, K]``
        attentions."""
        h = self.relu(self.bn(self.fc(global_pool(x))))

        def logits(head: nn.Linear) -> Tensor:
            return _tempered(head(h), temperature)

        channel = torch.sigmoid(logits(self.channel_fc))
        filt = None if self.filter_fc is None else torch.sigmoid(logits(self.filter_fc))
        spatial = None if self.spatial_fc is None else torch.sigmoid(logits(self.spatial_fc))
        kernel = None if self.kernel_fc is None else torch.softmax(logits(self.kernel_fc), dim=1)
        return channel, filt, spatial, kernel


class ODConv2d(KernelBankConv2d):
    """Omni-dimensional dynamic convolution (ODConv, ICLR 2022, §3).

    ``y = (α_f ⊙ conv(x ⊙ α_c, α_s ⊙ Σ_k α_wk W_k))``: the input-channel attention is applied to the input and
    the filter attention to the output (equivalent to applying them to the kernel, official code comment), the
    spatial and kernel attentions to the kernel bank ``weight`` ``[K, Cout, Cin/g, kh, kw]``.

    A 1×1 layer with ``kernel_num == 1`` has no per-sample kernel at all and takes the static fast path
    (official ``_forward_impl_pw1x``): ``conv(x ⊙ α_c, W) ⊙ α_f``, which works at any batch size.

    Arguments: :class:`KernelBankConv2d`'s, and ``reduction`` (the squeeze FC's width, see :class:`ODAttention`).
    """

    no_bias_reason = "the official layer has none; BN follows every ODConv"

    def _build_attention(self, reduction: float = 0.0625) -> None:
        self.attention = ODAttention(
            self.in_channels, self.out_channels, self.kernel_size, self.groups, self.kernel_num, reduction
        )

    @property
    def uses_fast_path(self) -> bool:
        return self.kernel_size == (1, 1) and self.kernel_num == 1

    def forward(self, x: Tensor) -> Tensor:
        if self.uses_fast_path:
            return self._forward_static(x)
        return self._forward_dynamic(x)

    def _forward_static(self, x: Tensor) -> Tensor:
        channel, filt, _, _ = self.attention(x, self.temperature)
        x = x * channel[:, :, None, None]
        out = F.conv2d(x, self.weight[0], None, self.stride, self.padding, self.dilation, self.groups)
        return out if filt is None else out * filt[:, :, None, None]

    def _forward_dynamic(self, x: Tensor) -> Tensor:
        """General path: per-sample kernel, batch folded into the conv groups (valid for every geometry)."""
        channel, filt, spatial, kernel = self.attention(x, self.temperature)
        batch = x.shape[0]
        bank = self._flat_bank()  # [K, Cout·Cin/g·kh·kw]
        if kernel is not None:
            weight = torch.mm(kernel, bank)  # Σ_k α_wk W_k for every sample: [B, |W|]
        else:
            weight = bank.expand(batch, -1)  # K = 1: the single kernel, shared
        if spatial is not None:
            positions = self.kernel_size[0] * self.kernel_size[1]
            weight = weight.reshape(batch, -1, positions) * spatial[:, None, :]
        out = self._convolve(x * channel[:, :, None, None], weight)
        return out if filt is None else out * filt[:, :, None, None]


def od_resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    kernel_num: int,
    reduction: float = 0.0625,
    num_classes: int = 1000,
    temperature: float = 1.0,
) -> ResNet:
    """ODConv ResNet (official ``models/od_resnet.py``): torchvision's ResNet with every conv of the residual
    blocks replaced by ODConv; the 7×7 stem, the 1×1 downsample shortcuts and the ``fc`` stay static.

    The official model has a ``Dropout(0.1)`` before ``fc``; it is the identity at inference and is omitted so
    the module tree stays torchvision's.
    """
    model = ResNet(block, layers, num_classes=num_classes)
    convs = _resnet_block_convs(model, include_downsample=False)
    _replace_convs(model, convs, ODConv2d, kernel_num=kernel_num, reduction=reduction, temperature=temperature)
    return model


def od_mobilenetv2(
    width_mult: float,
    kernel_num: int,
    reduction: float = 0.0625,
    num_classes: int = 1000,
    temperature: float = 1.0,
) -> nn.Module:
    """ODConv MobileNetV2 (official ``models/od_mobilenetv2.py``): torchvision's MobileNetV2 with every conv
    except the 3×3 stem replaced by ODConv (expansion pw, depthwise, pw-linear and the last 1×1 conv); the
    classifier (``Dropout(0.2)`` + ``Linear``) stays static, as in the official model."""
    model = mobilenet_v2(weights=None, width_mult=width_mult, num_classes=num_classes)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n != "features.0.0"]
    _replace_convs(model, convs, ODConv2d, kernel_num=kernel_num, reduction=reduction, temperature=temperature)
    return model


# ------------------------------------------------------------------------------------------------------------
# DY-Conv
# ------------------------------------------------------------------------------------------------------------


class DynamicConv2d(KernelBankConv2d):
    """Dynamic convolution (DY-Conv, CVPR 2020, §3).

    ``W(x) = Σ_k π_k(x) W_k`` with ``π = softmax(FC(ReLU(FC(GAP(x)))) / τ)``; ``π`` sums to one over the K
    kernels.

    Choices the paper leaves open, made here:
      * the squeeze FC has ``C // 4`` hidden units ("the first fully connected layer reduces the dimension by
        4"), no bias and no BatchNorm (the widely used reference code kaijieshi7/Dynamic-convolution-Pytorch,
        ``dynamic_conv.py``, uses ``int(C/4) + 1``; plain ``C // 4`` is what reproduces the 45.47 M quoted for
        DY-Conv(4×) ResNet18 in KernelWarehouse's Table 1 (Li & Yao, ICML 2024), the ``+1`` variant gives
        45.475 M);
      * the attention FCs keep PyTorch's default ``nn.Linear`` initialisation (the paper gives none);
      * inference temperature τ = 1 (training anneals 30 → 1; the reference code's ``temperature`` attribute
        starts at 34, so a freshly built reference model would evaluate at τ = 34).

    Arguments: :class:`KernelBankConv2d`'s, and ``squeeze_ratio`` (the squeeze FC's reduction, 4 in the paper).
    With ``bias``, each kernel has its own bias, aggregated with the same attention as the kernels (paper §3);
    the ResNets have none.
    """

    def _build_attention(self, squeeze_ratio: int = 4) -> None:
        hidden = max(self.in_channels // squeeze_ratio, 1)
        # The paper gives no initialisation for the attention FCs; ours keep PyTorch's nn.Linear default.
        self.fc1 = nn.Linear(self.in_channels, hidden, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, self.kernel_num)

    def kernel_attention(self, x: Tensor) -> Tensor:
        """``π`` ``[B, K]``: softmax over the K kernels (rows sum to 1)."""
        z = self.fc2(self.relu(self.fc1(global_pool(x))))
        return torch.softmax(_tempered(z, self.temperature), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        attention = self.kernel_attention(x)
        out = self._convolve(x, torch.mm(attention, self._flat_bank()))  # Σ_k π_k W_k: [B, |W|]
        if self.bias is not None:
            out = out + torch.mm(attention, self.bias)[:, :, None, None]
        return out


def dy_resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    kernel_num: int = 4,
    num_classes: int = 1000,
    temperature: float = 1.0,
) -> ResNet:
    """DY-Conv ResNet: dynamic convolution in every layer except the first (DY-Conv paper, DY-ResNet).

    torchvision's ResNet with every conv of the residual stages, **including the 1×1 downsample shortcuts**,
    replaced by :class:`DynamicConv2d`; the 7×7 stem and the ``fc`` stay static. The shortcut choice is not
    spelled out in the paper; it is the one that reproduces the 45.47 M that KernelWarehouse's Table 1 (Li &
    Yao, ICML 2024) quotes for DY-Conv(4×) ResNet18 (static shortcuts give 44.93 M).
    """
    model = ResNet(block, layers, num_classes=num_classes)
    convs = _resnet_block_convs(model, include_downsample=True)
    _replace_convs(model, convs, DynamicConv2d, kernel_num=kernel_num, temperature=temperature)
    return model


# ------------------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------------------

_OD_SOURCE = "params per ODConv README (OSVAI/ODConv)"


def _register_od_resnet(name: str, block: type[BasicBlock | Bottleneck], layers: list[int], k: int) -> None:
    def builder(num_classes: int = 1000, temperature: float = 1.0) -> nn.Module:
        return od_resnet(block, layers, kernel_num=k, num_classes=num_classes, temperature=temperature)

    depth = 18 if block is BasicBlock else 50
    builder.__doc__ = (
        f"ResNet{depth} with ODConv({k}×) (Li, Zhou, Yao, ICLR 2022; params per ODConv README; "
        "official models/od_resnet.py)."
    )
    register_model(
        name,
        family="odconv",
        paper="odconv",
        description=f"ResNet{depth} + ODConv ({k}×, kernel_num={k}); stem/downsample/fc static; {_OD_SOURCE}",
    )(builder)


def _register_od_mobilenetv2(name: str, k: int) -> None:
    def builder(num_classes: int = 1000, temperature: float = 1.0) -> nn.Module:
        return od_mobilenetv2(1.0, kernel_num=k, num_classes=num_classes, temperature=temperature)

    builder.__doc__ = (
        f"MobileNetV2 (1.0×) with ODConv({k}×) (Li, Zhou, Yao, ICLR 2022; params per ODConv README; official "
        "models/od_mobilenetv2.py)."
    )
    register_model(
        name,
        family="odconv",
        paper="odconv",
        description=f"MobileNetV2 1.0× + ODConv ({k}×, kernel_num={k}); stem/classifier static; {_OD_SOURCE}",
    )(builder)


for _name, _block, _layers, _k in (
    ("resnet18-odconv-1x", BasicBlock, [2, 2, 2, 2], 1),
    ("resnet18-odconv-4x", BasicBlock, [2, 2, 2, 2], 4),
    ("resnet50-odconv-1x", Bottleneck, [3, 4, 6, 3], 1),
    ("resnet50-odconv-4x", Bottleneck, [3, 4, 6, 3], 4),
):
    _register_od_resnet(_name, _block, _layers, _k)

for _name, _k in (("mobilenetv2-odconv-1x", 1), ("mobilenetv2-odconv-4x", 4)):
    _register_od_mobilenetv2(_name, _k)


@register_model(
    "resnet18-dyconv-4x",
    family="dyconv",
    paper="dyconv",
    description=("ResNet18 + DY-Conv (K=4, softmax τ=1, squeeze 1/4); stem/fc static; 45.47 M as quoted by ODConv/KW"),
)
def resnet18_dyconv_4x(num_classes: int = 1000, temperature: float = 1.0) -> nn.Module:
    """ResNet18 with DY-Conv (K = 4) (Chen et al., CVPR 2020, §3), the 4× baseline of the ODConv and KW
    papers' ResNet18 comparison (45.47 M)."""
    return dy_resnet(BasicBlock, [2, 2, 2, 2], kernel_num=4, num_classes=num_classes, temperature=temperature)
