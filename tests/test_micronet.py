"""MicroNet (Li et al., ICCV 2021): parameter counts, Dynamic Shift-Max semantics, shapes, tracing."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from convbench.counting.macs import count
from convbench.models import create_model, get_entry
from convbench.models.micronet import MICRONETS, ChannelShuffle, DynamicShiftMax

# Exact counts of the official code's models (1000 classes), recomputed layer by layer from its definitions;
# the README prints 1.0M / 1.8M / 2.4M / 2.6M.
OFFICIAL_PARAMS = {"m0": 1_019_590, "m1": 1_777_587, "m2": 2_393_876, "m3": 2_622_960}
README_PARAMS_M = {"m0": 1.0, "m1": 1.8, "m2": 2.4, "m3": 2.6}
README_MADDS_M = {"m0": 4, "m1": 6, "m2": 12, "m3": 21}
# Dynamic Shift-Max layers (all / with K = 2) per model, from the official configurations.
DSM_LAYERS = {"m0": (15, 8), "m1": (15, 8), "m2": (21, 12), "m3": (11, 11)}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {v: create_model(f"micronet-{v}", calibrate=False) for v in MICRONETS}


@pytest.mark.parametrize("variant", sorted(MICRONETS))
def test_parameter_counts(models: dict[str, nn.Module], variant: str) -> None:
    n = sum(p.numel() for p in models[variant].parameters())
    assert n == OFFICIAL_PARAMS[variant]
    assert round(n / 1e6, 1) == README_PARAMS_M[variant]


@pytest.mark.parametrize("variant", sorted(MICRONETS))
def test_dsm_layer_counts(models: dict[str, nn.Module], variant: str) -> None:
    dsms = [m for m in models[variant].modules() if isinstance(m, DynamicShiftMax)]
    assert (len(dsms), sum(m.maxes == 2 for m in dsms)) == DSM_LAYERS[variant]


@pytest.mark.parametrize(
    ("channels", "groups", "expected"),
    [
        (4, 2, [3, 2, 1, 0]),
        (6, 3, [3, 2, 5, 4, 1, 0]),  # channel p of group g takes channel p+1 of group g+1 (circular)
        (6, 2, [4, 5, 3, 1, 2, 0]),
        (4, 1, [1, 2, 3, 0]),
    ],
)
def test_dsm_shift_offsets(channels: int, groups: int, expected: list[int]) -> None:
    dsm = DynamicShiftMax(channels, groups)
    x = torch.arange(float(channels)).view(1, channels, 1, 1).expand(1, channels, 2, 2)
    assert dsm.shift(x)[0, :, 0, 0].tolist() == [float(i) for i in expected]


def _constant_coefficients(dsm: DynamicShiftMax, pre_activation: float) -> None:
    nn.init.zeros_(dsm.fc2.weight)
    nn.init.constant_(dsm.fc2.bias, pre_activation)


def test_dsm_max_over_two_branches() -> None:
    # Zero hyper-function output → hard-sigmoid 0.5 → every coefficient equals its offset:
    # a1 = 1, b1 = 0 (branch 1 = x), a2 = 0, b2 = 1 (branch 2 = shift(x)); y = max(x, shift(x)).
    dsm = DynamicShiftMax(4, 2, maxes=2, init_a=(1.0, 0.0), init_b=(0.0, 1.0)).eval()
    _constant_coefficients(dsm, 0.0)
    x = torch.tensor([5.0, -1.0, 2.0, 0.5]).view(1, 4, 1, 1)
    y = dsm(x).flatten().tolist()
    shifted = [0.5, 2.0, -1.0, 5.0]  # channels [3, 2, 1, 0]
    assert y == [max(a, b) for a, b in zip([5.0, -1.0, 2.0, 0.5], shifted, strict=True)]


def test_dsm_coefficient_range_and_single_branch() -> None:
    # Pre-activation 3 → hard-sigmoid 1 → coefficients at the top of [-2, 2] plus the offsets (1, 0):
    # a1 = 3, b1 = 2, so K = 1 gives y = 3·x + 2·shift(x).
    dsm = DynamicShiftMax(4, 2, maxes=1, init_a=(1.0, 0.0), init_b=(0.0, 0.0)).eval()
    _constant_coefficients(dsm, 3.0)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(dsm(x), 3 * x + 2 * x[:, [3, 2, 1, 0]])
    # Very negative pre-activation → coefficients at -2 + offsets: y = -1·x - 2·shift(x).
    _constant_coefficients(dsm, -10.0)
    torch.testing.assert_close(dsm(x), -x - 2 * x[:, [3, 2, 1, 0]])


def test_dsm_squeeze_width() -> None:
    # S = make_divisible(C // reduction, 4), at least 4.
    assert DynamicShiftMax(32, 8, reduction=8).fc1.out_features == 4
    assert DynamicShiftMax(384, 12, maxes=1, reduction=16).fc1.out_features == 24
    assert DynamicShiftMax(8, 2, maxes=1, reduction=4).fc2.out_features == 16


def test_channel_shuffle_pairs() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert ChannelShuffle(8, [2]).groups == (2,)
    assert ChannelShuffle(8, [2, 4]).groups == ()  # shuffling by 2 then by C/2 is the identity
    assert ChannelShuffle(8, [2])(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("variant", sorted(MICRONETS))
def test_forward_shape(models: dict[str, nn.Module], variant: str) -> None:
    entry = get_entry(f"micronet-{variant}")
    assert (entry.family, entry.paper, entry.input_size) == ("micronet", "micronet", (3, 224, 224))
    with torch.no_grad():
        y = models[variant](torch.randn(1, 3, 224, 224))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


@pytest.mark.parametrize("variant", sorted(MICRONETS))
def test_paper_convention_madds(variant: str) -> None:
    # conv + linear + DSM element-wise (4 per output element for K = 2, 2 for K = 1), no BN. The README
    # prints whole millions; M2 comes out 6% above its "12M" (see the model docs).
    result = count(f"micronet-{variant}", convention="paper")
    assert result.convention == "micronet"
    assert "batch_norm" not in {k for k, v in result.by_operator.items() if v}
    assert result.macs / 1e6 == pytest.approx(README_MADDS_M[variant], rel=0.07)


def test_paper_convention_counts_dsm_mixing_by_hand() -> None:
    # M0 by hand: DSM K=2 outputs 116,032 elements (4 MAdds each), K=1 outputs 70,560 (2 each) = 605,248;
    # the coefficient branch's scaling adds a few thousand products on (B, 4C) tensors.
    result = count("micronet-m0", convention="micronet")
    assert 605_248 <= result.by_operator["mul"] <= 605_248 * 1.01


@pytest.mark.slow
def test_jit_trace(models: dict[str, nn.Module]) -> None:
    x = torch.randn(1, 3, 224, 224)
    for variant in ("m1", "m3"):  # K = 1 and K = 2 squeeze activations; M3's ReLU6 / no-activation slots
        model = models[variant]
        with torch.no_grad():
            traced = torch.jit.trace(model, x, check_trace=False)
            expected = model(x)
            torch.testing.assert_close(traced(x), expected, rtol=1e-5, atol=1e-6 * expected.abs().max().item())


def test_dsm_onnx_export() -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    dsm = DynamicShiftMax(24, 3).eval()
    x = torch.randn(1, 24, 5, 5)
    buf = io.BytesIO()
    torch.onnx.export(dsm, (x,), buf, dynamo=False, opset_version=17, input_names=["x"])
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), dsm(x).detach(), rtol=1e-5, atol=1e-6)
