"""CompConv (Zhang, Xu, Shen. CompConv: A Compact Convolution Module for Efficient Feature Learning.
CVPR Workshops 2021, arXiv:2106.10486) — a RECONSTRUCTION.

No code was ever released for CompConv and the paper's full text was not available to us; this module is
rebuilt from the paper's Eq. 2-7 as two secondary write-ups transcribe them (0809zheng/0809zheng.github.io
``_posts/paper/2021/2021-08-03-compconv.md``; ChaucerG/chaucerg-blog-resource
``source/_posts/CompConv卷积让模型不丢精度还可以提速.md``), and from the arithmetic the paper states (its headline:
≈ 20 % of a plain convolution's computation at d = 3). The structure below is the one that satisfies all of
it: it gives Eq. 4-5 exactly, the ≈ 20 % (19.4 %), and Eq. 7 when the transcription's last term is read as
``2^(d−1)·C_prim²`` (a lost square):

* Output channels are produced by a divide-and-conquer recursion of depth ``d`` (Eq. 2-3): every level ``ℓ``
  has width ``2^ℓ·C_prim``; half of it is an identity copy of input channels (X_A), the other half the result
  of the level below (X_B), and a convolution ``W_ℓ`` transforms that level for the next one.
* The smallest unit ``u_0`` is the only convolution that sees the whole input (``C_in → C_prim``).
* The "tailing channels" X_A0 are computed by a convolution rather than copied, and absorb the rounding
  surplus of ``C_prim = ceil(C_out / (2(2^d − 1)))`` (Eq. 4-5).
* All intermediate results are concatenated and channel-shuffled ("integrating recursive results").
* The depth follows a layer's ``C_in`` and a model constant ``λ = C_0`` (Eq. 6, reconstructed as
  ``d = min(floor(log2(max(1, C_in // λ))) + 1, 3)``); CompConv128 (λ = 128) is the recommended setting.

With ``C_in = C_out`` the MACs relative to a plain convolution are 0.75 / 0.333 / 0.194 for d = 1 / 2 / 3;
the last matches the paper's "≈ 20 %" headline, which only holds when the tail is computed from the smallest
unit (``tail_from="smallest"``, the default; ``"largest"`` is the other reading of the text, 0.255 at d = 3).

Registered models: ResNet-18/50 and CIFAR VGG16-BN with CompConv.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from convbench.models.layers import CIFAR_INPUT
from convbench.models.registry import register_model
from convbench.models.vgg import VGG_STAGES, CifarVGG

TailSource = Literal["smallest", "largest"]

MAX_DEPTH = 3  # the paper caps d at 3 so the smallest unit keeps enough capacity (Eq. 5)
RECOMMENDED_LAMBDA = 128  # "CompConv128", recommended for VGG and ResNet


def adaptive_depth(in_channels: int, lam: int = RECOMMENDED_LAMBDA) -> int:
    """Recursion depth from the layer's input width and the model constant λ (= C_0 of Eq. 6).

    The write-up transcribes Eq. 6 with an outer ``max`` that contradicts "d ≤ 3"; we read it as
    ``min(floor(log2(max(1, C_in // λ))) + 1, 3)`` (reconstruction; the flooring is our choice).
    """
    if in_channels < 1 or lam < 1:
        raise ValueError(f"in_channels and λ must be positive, got {in_channels} and {lam}")
    ratio = max(1, in_channels // lam)
    return min(ratio.bit_length(), MAX_DEPTH)  # bit_length() == floor(log2(ratio)) + 1


def prim_channels(out_channels: int, depth: int) -> int:
    """Width of the smallest computing unit, ``C_prim = ceil(C_out / (2(2^d − 1)))`` (Eq. 5)."""
    return math.ceil(out_channels / (2 * (2**depth - 1)))


def _layout(in_channels: int, out_channels: int, depth: int) -> tuple[int, int] | None:
    """``(C_prim, tail width)`` for a depth, or None when the depth does not fit these widths.

    A depth fits when the tail keeps at least one channel after absorbing the rounding surplus and the input
    has enough channels for the identity copies, ``(2^(d−1) − 1)·C_prim``.
    """
    c = prim_channels(out_channels, depth)
    tail = out_channels - (2**depth + 2 ** (depth - 1) - 2) * c
    if tail < 1 or (2 ** (depth - 1) - 1) * c > in_channels:
        return None
    return c, tail


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle; ``groups`` must divide the channel count."""
    _, c, h, w = x.shape  # batch left as -1 so exported graphs keep a dynamic batch
    return x.reshape(-1, groups, c // groups, h, w).transpose(1, 2).reshape(-1, c, h, w)


def interleave_order(channels: int, groups: int) -> torch.Tensor:
    """Channel order that deals near-equal contiguous chunks round-robin; equals channel_shuffle when
    ``groups`` divides ``channels``."""
    chunks = [ch.tolist() for ch in torch.arange(channels).tensor_split(groups)]
    return torch.tensor([ch[j] for j in range(len(chunks[0])) for ch in chunks if j < len(ch)])


class CompConv2d(nn.Module):
    """Drop-in replacement for ``nn.Conv2d(in_channels, out_channels, kernel_size, stride)`` (reconstruction).

    Args:
        lam: the model constant λ (C_0) of the adaptive depth rule; ignored when ``depth`` is given.
        depth: recursion depth override, 0…3. 0 means no compression (a plain convolution). Without an
            override the rule's depth is lowered until it fits the widths (see ``_layout``).
        tail_from: which tensor the tailing channels X_A0 are computed from — ``"smallest"`` (u_0, the
            default; reproduces the paper's ≈ 20 % at d = 3) or ``"largest"`` (u_{d−1}). The paper's text
            ("computed from X_B0") is ambiguous between the two.
        shuffle_groups: groups of the channel shuffle after the concatenation. Unspecified in the paper;
            2 (ShuffleNet style) by default. When it does not divide C_out the channels are interleaved
            with an index permutation instead.

    Choices the sources leave open, made here: no BN/ReLU between the internal convolutions (the replaced
    layer's own BN/ReLU follow the module); identity channels are consecutive input channels from channel 0;
    with stride s the identity part is taken from ``x[..., ::s, ::s]`` (matches "same"-padded convolutions).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        *,
        lam: int = RECOMMENDED_LAMBDA,
        depth: int | None = None,
        tail_from: TailSource = "smallest",
        shuffle_groups: int = 2,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if tail_from not in ("smallest", "largest"):
            raise ValueError(f"tail_from must be 'smallest' or 'largest', got {tail_from!r}")
        if kernel_size % 2 == 0:
            raise ValueError("CompConv2d needs an odd kernel so every level keeps the spatial size")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.tail_from = tail_from

        if depth is None:
            depth = adaptive_depth(in_channels, lam)
            while depth > 1 and _layout(in_channels, out_channels, depth) is None:
                depth -= 1  # our choice: fall back to a shallower recursion for narrow layers
        if not 0 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 0..{MAX_DEPTH}, got {depth}")
        self.depth = depth

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size, stride, self.padding, bias=bias)

        if depth == 0:  # no compression
            self.prim_channels, self.tail_channels = out_channels, 0
            self.levels = nn.ModuleList([conv(in_channels, out_channels, stride)])
            self.tail = None
            self.register_buffer("perm", None, persistent=False)
            return

        layout = _layout(in_channels, out_channels, depth)
        if layout is None:
            raise ValueError(
                f"depth {depth} does not fit {in_channels}→{out_channels} channels "
                f"(C_prim = {prim_channels(out_channels, depth)})"
            )
        c, tail = layout
        self.prim_channels, self.tail_channels = c, tail
        # levels[0] is u_0 (C_in → C_prim, carries the stride); levels[ℓ] is W_ℓ on 2^ℓ·C_prim channels.
        self.levels = nn.ModuleList(
            [conv(in_channels, c, stride)] + [conv(2**lvl * c, 2**lvl * c) for lvl in range(1, depth)]
        )
        tail_in = c if tail_from == "smallest" or depth == 1 else 2 ** (depth - 1) * c
        self.tail = conv(tail_in, tail)

        self.shuffle_groups = shuffle_groups
        if shuffle_groups > 1 and out_channels % shuffle_groups:
            # Interleave near-equal contiguous chunks round-robin (a ShuffleNet shuffle for uneven widths).
            self.register_buffer("perm", interleave_order(out_channels, shuffle_groups), persistent=False)
        else:
            self.register_buffer("perm", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Our choice for random weights (the paper gives no initialisation): keep the output's scale close to
        # a Kaiming-initialised plain conv. u_0 reads the (post-ReLU) module input and gets the ReLU gain; the
        # other convs read linear, zero-mean tensors and get unit gain. (The ReLU gain on every internal conv
        # would double the variance at each level of the recursion, and with uncalibrated eval-mode
        # BatchNorm that growth compounds over all CompConv layers of the network.)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                first = m is self.levels[0]
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu" if first else "linear")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depth == 0:
            return self.levels[0](x)
        c = self.prim_channels
        x_s = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        parts: list[torch.Tensor] = []
        u = self.levels[0](x)
        u0 = u
        start = 0
        for lvl in range(1, self.depth):
            width = 2 ** (lvl - 1) * c  # identity part X_A of level ℓ: the next input channels
            p = torch.cat([x_s[:, start : start + width], u], dim=1)
            start += width
            parts.append(p)
            u = self.levels[lvl](p)
        t = self.tail(u0 if self.tail_from == "smallest" else u)
        parts.append(torch.cat([t, u], dim=1))  # the two largest parts {X_A0, X_B0}
        y = torch.cat(parts, dim=1)
        if self.perm is not None:
            return y.index_select(1, self.perm)
        if self.shuffle_groups > 1:
            return channel_shuffle(y, self.shuffle_groups)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"depth={self.depth}, prim={self.prim_channels}, tail={self.tail_channels}, "
            f"tail_from={self.tail_from!r}"
        )


def compconv_like(conv: nn.Conv2d, bias: bool | None = None, **kwargs: object) -> CompConv2d:
    """A CompConv2d with the same widths, kernel, stride and padding as a square, ungrouped ``conv``;
    ``bias`` defaults to whether ``conv`` has one."""
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
        raise ValueError(f"CompConv replaces plain square convolutions, got {conv}")
    if conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
        raise ValueError(f"CompConv needs an isotropic stride and padding, got {conv}")
    return CompConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size[0],
        conv.stride[0],
        int(conv.padding[0]),
        bias=conv.bias is not None if bias is None else bias,
        **kwargs,  # type: ignore[arg-type]
    )


def replace_convs(module: nn.Module, *, skip: tuple[str, ...] = (), **kwargs: object) -> nn.Module:
    """Swap every ``nn.Conv2d`` under ``module`` for a CompConv2d, except submodules named in ``skip``."""
    for name, child in module.named_children():
        if name in skip:
            continue
        if isinstance(child, nn.Conv2d):
            setattr(module, name, compconv_like(child, **kwargs))
        else:
            replace_convs(child, skip=skip, **kwargs)
    return module


# --------------------------------------------------------------------------------------------------------
# ResNet with CompConv
# --------------------------------------------------------------------------------------------------------

RESNETS: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


def resnet_compconv(
    arch: str = "resnet50",
    lam: int = RECOMMENDED_LAMBDA,
    num_classes: int = 1000,
    tail_from: TailSource = "smallest",
    replace_downsample: bool = False,
) -> ResNet:
    """torchvision ResNet with CompConv in its residual branches (the paper's ImageNet ResNet experiments).

    Every 3×3 and 1×1 convolution of the residual branches in layer1-layer4 is replaced; the 7×7 stem and the
    classifier stay plain (the stem has 3 input channels, nothing to compress). Choice: the write-ups only say
    that ResNet-50's convolutions are replaced by CompConv, without exempting the 1×1 ones, so they are
    replaced too.
    Choice (the paper does not say): the 1×1 downsample projections on the shortcut stay plain by default —
    they are shape adapters on the identity path rather than feature-learning layers, and with CompConv they
    would pass strided input channels through the shortcut unchanged. ``replace_downsample=True`` replaces
    them too (the plain projections are about 9 % of ResNet-50's MACs).
    """
    block, layers = RESNETS[arch]
    model = ResNet(block, layers, num_classes=num_classes)
    skip = () if replace_downsample else ("downsample",)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        replace_convs(stage, skip=skip, lam=lam, tail_from=tail_from)
    return model


# --------------------------------------------------------------------------------------------------------
# CIFAR VGG16-BN with CompConv
# --------------------------------------------------------------------------------------------------------


def vgg_compconv_cifar(
    depth: int = 16, lam: int = RECOMMENDED_LAMBDA, num_classes: int = 10, tail_from: TailSource = "smallest"
) -> CifarVGG:
    """convbench's CIFAR VGG-BN baseline (``convbench.models.vgg``) with CompConv in every 3×3 conv but the
    first (3 input channels, kept plain like ResNet's stem); classifier 512→512→512→classes unchanged.

    Choice: the baseline's convs carry a bias (torchvision style); the CompConv modules do not, since a BN
    follows each of them and would cancel it.
    """
    model = CifarVGG(VGG_STAGES[depth], num_classes=num_classes)
    for stage in model.stages:
        for layer in stage:
            if layer[0].in_channels > 3:
                layer[0] = compconv_like(layer[0], bias=False, lam=lam, tail_from=tail_from)
    return model


# --------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------

_RECON = "reconstruction, no official code"

# name -> (arch, λ)
_RESNET_MODELS: dict[str, tuple[str, int]] = {
    "resnet18-compconv128": ("resnet18", 128),
    "resnet50-compconv64": ("resnet50", 64),
    "resnet50-compconv128": ("resnet50", 128),
    "resnet50-compconv256": ("resnet50", 256),
}


def _register_resnet(name: str, arch: str, lam: int) -> None:
    def builder(
        num_classes: int = 1000, tail_from: TailSource = "smallest", replace_downsample: bool = False
    ) -> nn.Module:
        return resnet_compconv(arch, lam, num_classes, tail_from, replace_downsample)

    builder.__doc__ = f"{arch} with CompConv{lam} in every residual-branch conv (Zhang et al., CVPRW 2021); {_RECON}."
    register_model(name, family="compconv", paper="compconv")(builder)


for _name, (_arch, _lam) in _RESNET_MODELS.items():
    _register_resnet(_name, _arch, _lam)


@register_model(
    "vgg16-bn-compconv128-cifar10",
    family="compconv",
    paper="compconv",
    input_size=CIFAR_INPUT,
    num_classes=10,
    description=f"CIFAR VGG16-BN with CompConv128 in all but the first conv (CVPRW 2021, Eq. 2-7); {_RECON}.",
)
def vgg16_bn_compconv128_cifar10(num_classes: int = 10, tail_from: TailSource = "smallest") -> nn.Module:
    """CIFAR VGG16-BN with CompConv128 (Zhang et al., CVPRW 2021, CIFAR experiments); reconstruction."""
    return vgg_compconv_cifar(16, RECOMMENDED_LAMBDA, num_classes, tail_from)
