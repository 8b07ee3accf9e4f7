"""CompConv (a reconstruction of Zhang et al., CVPRW 2021): channel bookkeeping, MAC ratios, depth rule."""

from __future__ import annotations

import logging

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from convbench.models import create_model, get_entry, list_models
from convbench.models.compconv import (
    CompConv2d,
    adaptive_depth,
    channel_shuffle,
    interleave_order,
    prim_channels,
    resnet_compconv,
)

logging.getLogger("fvcore").setLevel(logging.ERROR)

COMPCONV_MODELS = [
    "resnet18-compconv128",
    "resnet50-compconv64",
    "resnet50-compconv128",
    "resnet50-compconv256",
    "vgg16-bn-compconv128-cifar10",
]


def conv_macs(module: nn.Module, x: torch.Tensor) -> int:
    flops = FlopCountAnalysis(module, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return int(flops.by_operator().get("conv", 0))


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "depth"),
    [
        (67, 131, 1, None),
        (255, 255, 2, 3),
        (513, 1001, 2, None),
        (129, 17, 1, 2),
        (31, 33, 1, 1),
        (7, 9, 2, 0),
    ],
)
def test_output_shape_and_channels_for_odd_widths(cin: int, cout: int, stride: int, depth: int | None) -> None:
    m = CompConv2d(cin, cout, 3, stride, depth=depth, lam=32).eval()
    y = m(torch.randn(2, cin, 9, 9))
    assert y.shape == (2, cout, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    if m.depth:
        c = m.prim_channels
        assert c == prim_channels(cout, m.depth)
        # The tail absorbs the ceil surplus: the levels plus the tail add up to C_out exactly.
        assert sum(2**lvl * c for lvl in range(1, m.depth)) + 2 ** (m.depth - 1) * c + m.tail_channels == cout


def test_one_by_one_kernel_and_stride() -> None:
    m = CompConv2d(256, 512, 1, 2, padding=0, lam=128).eval()
    assert m(torch.randn(1, 256, 7, 7)).shape == (1, 512, 4, 4)


@pytest.mark.parametrize(("depth", "expected"), [(1, 0.75), (2, 1 / 3), (3, 0.194)])
def test_mac_ratio_against_plain_conv(depth: int, expected: float) -> None:
    c = 168  # divisible by 2, 6 and 14, so C_prim needs no rounding at any depth
    x = torch.randn(1, c, 8, 8)
    plain = conv_macs(nn.Conv2d(c, c, 3, padding=1, bias=False), x)
    ratio = conv_macs(CompConv2d(c, c, 3, depth=depth), x) / plain
    assert ratio == pytest.approx(expected, rel=0.02)


def test_tail_from_largest_costs_more() -> None:
    c = 168
    x = torch.randn(1, c, 8, 8)
    plain = conv_macs(nn.Conv2d(c, c, 3, padding=1, bias=False), x)
    ratio = conv_macs(CompConv2d(c, c, 3, depth=3, tail_from="largest"), x) / plain
    assert ratio == pytest.approx(0.255, rel=0.02)


# Reconstructed rule d = min(floor(log2(max(1, C_in // λ))) + 1, 3); the notes' table, rows λ, columns C_in.
DEPTH_TABLE = {
    32: [1, 1, 1, 2, 3, 3, 3, 3, 3],
    64: [1, 1, 1, 1, 2, 3, 3, 3, 3],
    128: [1, 1, 1, 1, 1, 2, 3, 3, 3],
    256: [1, 1, 1, 1, 1, 1, 2, 3, 3],
    512: [1, 1, 1, 1, 1, 1, 1, 2, 3],
}


@pytest.mark.parametrize("lam", sorted(DEPTH_TABLE))
def test_adaptive_depth_rule(lam: int) -> None:
    widths = [3, 16, 32, 64, 128, 256, 512, 1024, 2048]
    assert [adaptive_depth(w, lam) for w in widths] == DEPTH_TABLE[lam]
    assert [CompConv2d(w, w, lam=lam).depth for w in widths[1:]] == DEPTH_TABLE[lam][1:]


def test_depth_override_and_fallback() -> None:
    assert CompConv2d(512, 512, depth=1).depth == 1  # override beats the rule (which says 3)
    assert CompConv2d(512, 15, lam=32).depth == 2  # rule says 3, but C_out = 15 leaves no tail at d = 3
    with pytest.raises(ValueError):
        CompConv2d(512, 15, depth=3)
    with pytest.raises(ValueError):
        CompConv2d(64, 64, depth=4)


def test_identity_channels_are_copied_from_the_input() -> None:
    torch.manual_seed(0)
    m = CompConv2d(64, 64, 3, depth=3, shuffle_groups=1).eval()  # no shuffle: parts stay in order
    c = m.prim_channels
    x = torch.randn(1, 64, 6, 6)
    y = m(x)
    # P_1 = [x[:, :c], u_0] comes first, then P_2 = [x[:, c:3c], u_1].
    torch.testing.assert_close(y[:, :c], x[:, :c])
    torch.testing.assert_close(y[:, 2 * c : 4 * c], x[:, c : 3 * c])


def test_shuffle_permutations() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert interleave_order(6, 2).tolist() == [0, 3, 1, 4, 2, 5]
    assert interleave_order(7, 2).tolist() == [0, 4, 1, 5, 2, 6, 3]


def test_resnet_replaces_residual_convs_only() -> None:
    model = resnet_compconv("resnet50", 128, num_classes=10)
    assert isinstance(model.conv1, nn.Conv2d)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            assert all(isinstance(getattr(block, n), CompConv2d) for n in ("conv1", "conv2", "conv3"))
            if block.downsample is not None:
                assert isinstance(block.downsample[0], nn.Conv2d)
    replaced = resnet_compconv("resnet18", 128, replace_downsample=True)
    assert isinstance(replaced.layer2[0].downsample[0], CompConv2d)


def test_registered() -> None:
    assert set(COMPCONV_MODELS) <= set(list_models("*compconv*"))
    for name in COMPCONV_MODELS:
        entry = get_entry(name)
        assert entry.paper == "compconv" and entry.family == "compconv"
        assert "reconstruction" in entry.description
    assert get_entry("vgg16-bn-compconv128-cifar10").input_size == (3, 32, 32)


@pytest.mark.parametrize("name", COMPCONV_MODELS)
def test_model_forward(name: str) -> None:
    entry = get_entry(name)
    model = create_model(name, calibrate=False)
    res = 32 if entry.resolution == 32 else 64
    with torch.no_grad():
        y = model(torch.randn(1, 3, res, res))
    assert y.shape == (1, entry.num_classes)
    assert torch.isfinite(y).all()


def test_compression_orders_the_tradeoff_curve() -> None:
    params = {
        name: sum(p.numel() for p in create_model(name, calibrate=False).parameters())
        for name in ("resnet50-compconv64", "resnet50-compconv128", "resnet50-compconv256")
    }
    assert params["resnet50-compconv64"] < params["resnet50-compconv128"] < params["resnet50-compconv256"]
