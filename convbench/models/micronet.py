"""MicroNet (Li, Chen, Dai, Chen, Liu, Yuan, Liu, Zhang, Vasconcelos. MicroNet: Improving Image Recognition
with Extremely Low FLOPs. ICCV 2021, arXiv:2108.05894), models M0-M3.

Written from the paper's description (Micro-Factorized pointwise and depthwise convolution, Dynamic
Shift-Max, Micro-Blocks A/B/C, Fig. 4; Table 1: the architectures) and from a reading of the official
code's configurations (github.com/liyunsheng13/micronet, ``backbone/microconfig.py``, the ``scripts/``
settings), whose layer widths, groups and activation settings the tables below restate. The structure
reproduces the official implementation layer for layer (same parameter tensors, same channel
permutations, same Dynamic Shift-Max semantics), so parameter counts equal the 1.0 / 1.8 / 2.4 / 2.6 M of the
official README. No pretrained weights are available (the official download links are dead, repository
issue #29); weights are random, initialised as the official code does. ``convbench.models.create_model``
then calibrates the feature-map BatchNorm statistics on random data
(``convbench.models.calibration.calibrate_batchnorm``), which keeps the features at a trained network's scale.
The head's two BatchNorm1d keep unit statistics, and the official N(0, 0.01) init of the linear layers makes
the logits small: compare outputs across runtimes with a relative tolerance. Built without calibration
(``micronet()`` directly), eval-mode BatchNorm with unit statistics lets the activations shrink layer by
layer towards zero.

Where the official code and the paper's formulas differ, the code is followed and a comment says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops.misc import Conv2dNormActivation

from convbench.models.registry import register_model

DSM_ACT_MAX = 2.0  # coefficients lie in [-2, 2] before their offsets (ACT_MAX in the scripts)
DSM_REDUCTION = 8  # squeeze ratio of the coefficient branch, times the per-row multiplier r


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int] = 1,
    stride: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Conv2dNormActivation:
    """Convolution + BatchNorm without activation (torchvision's block)."""
    return Conv2dNormActivation(in_channels, out_channels, kernel_size, stride, groups=groups, activation_layer=None)


class ChannelShuffle(nn.Module):
    """One or more ShuffleNet channel shuffles applied in order (``view(g, C/g) → transpose``).

    The official blocks apply pairs of shuffles; we keep them literally so the channel order matches, but a
    sequence whose composition is the identity (e.g. shuffles by 2 and by C/2) is dropped.
    """

    def __init__(self, channels: int, groups: Sequence[int]) -> None:
        super().__init__()
        order = torch.arange(channels)
        for g in groups:
            if channels % g:
                raise ValueError(f"shuffle groups {g} do not divide {channels} channels")
            order = order.view(g, channels // g).t().reshape(-1)  # an index view of the same shuffle
        identity = bool(torch.equal(order, torch.arange(channels)))
        self.groups: tuple[int, ...] = () if identity else tuple(g for g in groups if g not in (1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape  # batch left as -1 so exported graphs keep a dynamic batch
        for g in self.groups:
            x = x.reshape(-1, g, c // g, h, w).transpose(1, 2).reshape(-1, c, h, w)
        return x

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class DynamicShiftMax(nn.Module):
    """Dynamic Shift-Max (the paper's Dynamic Shift-Max section), J = 2 and K ∈ {1, 2}.

    ``y = max_k (a_k ⊙ x + b_k ⊙ shift(x))`` over K = ``maxes`` branches (K = 1: no max, a dynamic linear
    mix). The 2·K·C coefficients come from an SE-like branch: global average pool → Linear(C, S) → ReLU →
    Linear(S, 2KC) → hard-sigmoid, mapped to ``[-act_max, act_max]`` and offset by ``init_a``/``init_b``.

    ``shift`` follows the official code, not the paper's formula ``x[(i + C/G) mod C]``: with the channels
    viewed as G groups of C/G, channel p of group g takes channel p+1 of group g+1 (both circular). It is
    written with ``roll`` so it exports to ONNX as Slice/Concat rather than a gather.
    """

    def __init__(
        self,
        channels: int,
        groups: int,
        maxes: Literal[1, 2] = 2,
        reduction: int = DSM_REDUCTION,
        act_max: float = DSM_ACT_MAX,
        init_a: tuple[float, float] = (1.0, 1.0),
        init_b: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__()
        if maxes not in (1, 2):
            raise ValueError(f"K (maxes) must be 1 or 2, got {maxes}")
        if channels % groups:
            raise ValueError(f"{groups} shift groups do not divide {channels} channels")
        self.channels, self.groups, self.maxes = channels, groups, maxes
        squeeze = max(4, _make_divisible(channels // reduction, 4))
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, 2 * maxes * channels)
        self.act_max = act_max
        # Coefficient layout is [a1, b1, a2, b2] (as in the official weights); offsets per block of C.
        offsets = [init_a[0], init_b[0], init_a[1], init_b[1]][: 2 * maxes]
        offset = torch.tensor(offsets).repeat_interleave(channels) - act_max
        self.register_buffer("offset", offset, persistent=False)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        x = x.reshape(-1, self.groups, c // self.groups, h, w)
        return x.roll(-1, dims=1).roll(-1, dims=2).reshape(-1, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(x, 1).flatten(1)
        y = self.fc2(F.relu(self.fc1(y)))
        coef = (F.hardsigmoid(y) * (2 * self.act_max) + self.offset).reshape(-1, 2 * self.maxes, self.channels, 1, 1)
        xs = self.shift(x)
        out = x * coef[:, 0] + xs * coef[:, 1]
        if self.maxes == 2:
            out = torch.maximum(out, x * coef[:, 2] + xs * coef[:, 3])
        return out

    def extra_repr(self) -> str:
        return f"{self.channels}, groups={self.groups}, K={self.maxes}, squeeze={self.fc1.out_features}"


def micro_depthwise(channels: int, kernel_size: int, stride: int, mult: tuple[int, int] = (1, 1)) -> nn.Sequential:
    """Micro-Factorized depthwise convolution: a k×1 then a 1×k depthwise conv, each with BN;
    each may multiply the channels (``mult``), which is how Micro-Block-A expands while filtering."""
    mid = channels * mult[0]
    return nn.Sequential(
        conv_bn(channels, mid, (kernel_size, 1), (stride, 1), groups=channels),
        conv_bn(mid, mid * mult[1], (1, kernel_size), (1, stride), groups=mid),
    )


# --------------------------------------------------------------------------------------------------------
# Architecture tables
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockSpec:
    """One row of a MicroNet table.

    ``acts`` are the activations after the expanding 1×1 conv, the depthwise conv and the squeezing 1×1
    conv: 0 = the plain alternative (ReLU6 after expand/depthwise, nothing after squeeze), 1 or 2 = Dynamic
    Shift-Max with K = 1 or 2. Lite (A) rows have no expanding conv, so their first entry is unused.
    ``expand_groups``/``squeeze_groups`` are (conv groups, shuffle/DSM groups) of the two 1×1 convs.
    """

    kind: Literal["A", "B", "C", "final"]
    stride: int
    out: int
    kernel: int = 3
    expansion: int = 1  # hidden = in·expansion for B/C; A rows expand 2×2 inside the depthwise conv
    expand_groups: tuple[int, int] = (1, 1)
    squeeze_groups: tuple[int, int] = (1, 1)
    acts: tuple[int, int, int] = (2, 2, 1)
    r: int = 1  # DSM reduction multiplier


def lite(
    stride: int, out: int, k: int, shuffle: int, squeeze: tuple[int, int], acts: tuple[int, int], r: int = 1
) -> BlockSpec:
    return BlockSpec("A", stride, out, k, 4, (0, shuffle), squeeze, (0, *acts), r)


def regular(
    kind: Literal["B", "C"],
    stride: int,
    out: int,
    k: int,
    expansion: int,
    expand: tuple[int, int],
    squeeze: tuple[int, int],
    acts: tuple[int, int, int],
    r: int = 1,
) -> BlockSpec:
    return BlockSpec(kind, stride, out, k, expansion, expand, squeeze, acts, r)


def final(out: int, groups: tuple[int, int], act: int, r: int) -> BlockSpec:
    return BlockSpec("final", 1, out, 1, 0, groups, (0, 0), (0, 0, act), r)


@dataclass(frozen=True)
class MicroNetSpec:
    stem_groups: tuple[int, int]  # stem: 3 → g1 (3×1 conv) → g1·g2 (1×3 conv, g1 groups)
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    dropout: float
    init_a: tuple[float, float]  # DSM offsets of the K = 2 activations
    init_b: tuple[float, float]
    madds: str  # published budget, for docstrings


# Paper Table 1 / official configs msnx_dy6_exp4_4M_221, msnx_dy6_exp6_6M_221, msnx_dy9_exp6_12M_221,
# msnx_dy12_exp6_20M_020 (liyunsheng13/micronet, commit ed89b26, ``backbone/microconfig.py``) and the
# per-model settings of ``scripts/{eval,train}_micronet_m{0..3}*.sh`` (stem groups, head width, dropout,
# DSM offsets INIT_A / INIT_B).
MICRONETS: dict[str, MicroNetSpec] = {
    "m0": MicroNetSpec(
        stem_groups=(2, 2),
        blocks=(
            lite(2, 8, 3, shuffle=4, squeeze=(2, 2), acts=(0, 1)),
            lite(2, 12, 3, shuffle=8, squeeze=(4, 4), acts=(2, 1)),
            lite(2, 16, 5, shuffle=12, squeeze=(4, 4), acts=(2, 1)),
            regular("B", 1, 32, 5, 4, expand=(4, 4), squeeze=(4, 4), acts=(2, 2, 1)),
            regular("C", 2, 64, 5, 4, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1)),
            regular("C", 1, 96, 3, 4, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1), r=2),
            final(384, groups=(12, 12), act=1, r=2),
        ),
        head_channels=640,
        dropout=0.05,
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        madds="4M",
    ),
    "m1": MicroNetSpec(
        stem_groups=(3, 2),
        blocks=(
            lite(2, 8, 3, shuffle=6, squeeze=(2, 2), acts=(0, 1)),
            lite(2, 16, 3, shuffle=8, squeeze=(4, 4), acts=(2, 1)),
            lite(2, 16, 5, shuffle=16, squeeze=(4, 4), acts=(2, 1)),
            regular("B", 1, 32, 5, 6, expand=(4, 4), squeeze=(4, 4), acts=(2, 2, 1)),
            regular("C", 2, 64, 5, 6, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1)),
            regular("C", 1, 96, 3, 6, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1), r=2),
            final(576, groups=(12, 12), act=1, r=2),
        ),
        head_channels=960,
        dropout=0.05,
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        madds="6M",
    ),
    "m2": MicroNetSpec(
        stem_groups=(4, 2),
        blocks=(
            lite(2, 12, 3, shuffle=8, squeeze=(4, 4), acts=(0, 1)),
            lite(2, 16, 3, shuffle=12, squeeze=(4, 4), acts=(2, 1)),
            lite(1, 24, 3, shuffle=16, squeeze=(4, 4), acts=(2, 1)),
            regular("B", 2, 32, 5, 6, expand=(6, 6), squeeze=(4, 4), acts=(2, 2, 1)),
            regular("C", 1, 32, 5, 6, expand=(8, 8), squeeze=(4, 4), acts=(2, 2, 1), r=2),
            regular("C", 1, 64, 5, 6, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1), r=2),
            regular("C", 2, 96, 5, 6, expand=(8, 8), squeeze=(8, 8), acts=(2, 2, 1), r=2),
            regular("C", 1, 128, 3, 6, expand=(12, 12), squeeze=(8, 8), acts=(2, 2, 1), r=2),
            final(768, groups=(16, 16), act=1, r=2),
        ),
        head_channels=1024,
        dropout=0.1,
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        madds="12M",
    ),
    # M3: ReLU6 after the expanding conv and no activation after the squeezing conv; only the depthwise
    # activation is a DSM (K = 2), with different offsets.
    "m3": MicroNetSpec(
        stem_groups=(4, 3),
        blocks=(
            lite(2, 16, 3, shuffle=12, squeeze=(4, 4), acts=(2, 0)),
            lite(2, 24, 3, shuffle=16, squeeze=(4, 4), acts=(2, 0)),
            lite(1, 24, 3, shuffle=24, squeeze=(4, 4), acts=(2, 0)),
            regular("B", 2, 32, 5, 6, expand=(6, 6), squeeze=(4, 4), acts=(0, 2, 0)),
            regular("C", 1, 32, 5, 6, expand=(8, 8), squeeze=(4, 4), acts=(0, 2, 0), r=2),
            regular("C", 1, 64, 5, 6, expand=(8, 8), squeeze=(8, 8), acts=(0, 2, 0), r=2),
            regular("C", 1, 80, 5, 6, expand=(8, 8), squeeze=(8, 8), acts=(0, 2, 0), r=2),
            regular("C", 1, 80, 5, 6, expand=(10, 10), squeeze=(8, 8), acts=(0, 2, 0), r=2),
            regular("C", 2, 120, 5, 6, expand=(10, 10), squeeze=(10, 10), acts=(0, 2, 0), r=2),
            regular("C", 1, 120, 5, 6, expand=(12, 12), squeeze=(10, 10), acts=(0, 2, 0), r=2),
            regular("C", 1, 144, 3, 6, expand=(12, 12), squeeze=(12, 12), acts=(0, 2, 0), r=2),
            final(864, groups=(12, 12), act=0, r=2),
        ),
        head_channels=1024,
        dropout=0.1,
        init_a=(1.0, 0.5),
        init_b=(0.0, 0.5),
        madds="21M",
    ),
}

# The DSM after a squeezing conv is K = 1 with offsets a = 1, b = 0 (INIT_A_BLOCK3 = 1.0, 0.0), i.e. it
# starts as the identity.
_SQUEEZE_INIT = {"init_a": (1.0, 0.0), "init_b": (0.0, 0.0)}


# --------------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------------


class MicroBlock(nn.Module):
    """Micro-Block A, B/C or the final 1×1 expansion (paper Fig. 4), built from a BlockSpec.

    * A ("lite" combination): micro-factorized depthwise conv that expands 4× (2× per 1-D conv), DSM (or
      ReLU6), shuffles, grouped 1×1 squeeze, DSM K = 1, shuffles.
    * B/C ("regular" combination): grouped 1×1 expand, DSM (or ReLU6), shuffle, micro-factorized depthwise
      conv, DSM, shuffle, grouped 1×1 squeeze, DSM K = 1 (or nothing), shuffles. B is the one block that
      links A and C; in the official code it is built exactly like C.
    * final: grouped 1×1 expansion (+ DSM K = 1).

    The grouped 1×1 squeeze of one block and the grouped 1×1 expand of the next, with the shuffle between
    them, form one Micro-Factorized pointwise convolution ``P Φ Qᵀ`` of the paper (author, issues #8/#15).
    Identity shortcut when stride = 1 and the width is kept.
    """

    def __init__(
        self,
        in_channels: int,
        spec: BlockSpec,
        init_a: tuple[float, float],
        init_b: tuple[float, float],
    ) -> None:
        super().__init__()
        s = spec
        self.use_shortcut = s.kind != "final" and s.stride == 1 and in_channels == s.out
        reduction = DSM_REDUCTION * s.r

        def dsm(channels: int, groups: int, k: int, red: int = reduction, **init: tuple[float, float]) -> nn.Module:
            return DynamicShiftMax(channels, groups, k, red, **(init or {"init_a": init_a, "init_b": init_b}))

        g_exp, shuffle_exp = s.expand_groups
        g_sq, shuffle_sq = s.squeeze_groups
        y1, y2, y3 = s.acts
        layers: list[nn.Module] = []
        if s.kind == "final":
            layers.append(conv_bn(in_channels, s.out, groups=g_exp))
            if y3:
                layers.append(dsm(s.out, shuffle_exp, y3, **_SQUEEZE_INIT))
            self.layers = nn.Sequential(*layers)
            return

        if s.kind == "A":
            hidden = in_channels * s.expansion
            layers.append(micro_depthwise(in_channels, s.kernel, s.stride, mult=(2, 2)))
            layers.append(dsm(hidden, shuffle_exp, y2) if y2 else nn.ReLU6())
            # Official order: shuffle by the DSM groups, then (after a DSM) by hidden/2.
            layers.append(ChannelShuffle(hidden, [shuffle_exp] + ([hidden // 2] if y2 else [])))
            squeeze_reduction = reduction // 2
        else:
            hidden = in_channels * s.expansion
            layers.append(conv_bn(in_channels, hidden, groups=g_exp))
            layers.append(dsm(hidden, shuffle_exp, y1) if y1 else nn.ReLU6())
            layers.append(ChannelShuffle(hidden, [shuffle_exp]))
            layers.append(micro_depthwise(hidden, s.kernel, s.stride))
            # After the depthwise conv the code shifts within groups of ``shuffle_exp`` channels, i.e.
            # hidden / shuffle_exp groups.
            layers.append(dsm(hidden, hidden // shuffle_exp if shuffle_exp != 1 else 1, y2) if y2 else nn.ReLU6())
            if y1 and y2:
                layers.append(ChannelShuffle(hidden, [hidden // 4]))
            elif y1 or y2:
                layers.append(ChannelShuffle(hidden, [hidden // 2]))
            squeeze_reduction = reduction // 2 if s.out < hidden else reduction
        layers.append(conv_bn(hidden, s.out, groups=g_sq))
        if y3:
            layers.append(dsm(s.out, shuffle_sq, y3, squeeze_reduction, **_SQUEEZE_INIT))
        # The second shuffle (by C/2) follows a DSM only; the official A block also needs an even width.
        post = [shuffle_sq] + ([s.out // 2] if y3 and s.out % 2 == 0 else [])
        layers.append(ChannelShuffle(s.out, post))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.use_shortcut else out


class SwishLinear(nn.Sequential):
    """Linear → BatchNorm1d → h-swish, the official head unit (also applied to the logits)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.Hardswish())


class MicroNet(nn.Module):
    """MicroNet (ICCV 2021). Stem (factorized 3×3 conv: 3×1 then grouped 1×3, shuffle, ReLU6),
    Micro-Blocks, then ReLU6 → global pool → h-swish → SwishLinear → dropout → SwishLinear(classes)."""

    def __init__(self, spec: MicroNetSpec, num_classes: int = 1000) -> None:
        super().__init__()
        g1, g2 = spec.stem_groups
        channels = g1 * g2
        stem = nn.Sequential(
            conv_bn(3, g1, (3, 1), (2, 1)),
            conv_bn(g1, channels, (1, 3), (1, 2), groups=g1),
            ChannelShuffle(channels, [g1]),
            nn.ReLU6(),
        )
        blocks: list[nn.Module] = [stem]
        for block in spec.blocks:
            blocks.append(MicroBlock(channels, block, spec.init_a, spec.init_b))
            channels = block.out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Hardswish(), nn.Flatten(1))
        self.classifier = nn.Sequential(
            SwishLinear(channels, spec.head_channels),
            nn.Dropout(spec.dropout),
            # Choice kept from the official code: the logits themselves pass through BN1d + h-swish.
            SwishLinear(spec.head_channels, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official code: conv N(0, sqrt(2 / (kh·kw·C_out))), BN (1, 0), linear N(0, 0.01) + zero bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


# --------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------


def micronet(variant: str = "m1", num_classes: int = 1000) -> MicroNet:
    """MicroNet-M0…M3 (``variant`` "m0"…"m3")."""
    return MicroNet(MICRONETS[variant], num_classes=num_classes)


def _register(variant: str) -> None:
    spec = MICRONETS[variant]

    def builder(num_classes: int = 1000) -> nn.Module:
        return micronet(variant, num_classes)

    builder.__doc__ = (
        f"MicroNet-{variant.upper()} (~{spec.madds} MAdds; Li et al., ICCV 2021, Table 1), "
        "structure as the official code; random weights."
    )
    register_model(f"micronet-{variant}", family="micronet", paper="micronet", paper_convention="micronet")(builder)


for _variant in MICRONETS:
    _register(_variant)
