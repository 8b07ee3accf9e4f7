"""ODConv and DY-Conv layers and models (convbench.models.dynamic_conv)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from batch_folding import check_batch_folding
from torch import nn

from convbench.models import create_model, get_entry, list_models
from convbench.models.dynamic_conv import DynamicConv2d, ODConv2d, set_dynamic_temperature

# Published parameter counts in millions (2 decimals).
# ODConv rows: Omni-Dimensional Dynamic Convolution (Li et al., ICLR 2022), Table 1, and the official README
# (OSVAI/ODConv), reproduced by instantiating the official code.
# DY-Conv(4×) ResNet18: KernelWarehouse (Li & Yao, ICML 2024) Table 1 and ODConv Table 2 (45.47 M).
PUBLISHED_M: dict[str, float] = {
    "resnet18-odconv-1x": 11.94,
    "resnet18-odconv-4x": 44.90,
    "resnet50-odconv-1x": 28.64,
    "resnet50-odconv-4x": 90.67,
    "mobilenetv2-odconv-1x": 4.94,
    "mobilenetv2-odconv-4x": 11.51,
    "resnet18-dyconv-4x": 45.47,
}


def test_registry_entries() -> None:
    assert sorted(list_models("*-odconv-*") + list_models("*-dyconv-*")) == sorted(PUBLISHED_M)
    for name in PUBLISHED_M:
        entry = get_entry(name)
        assert entry.family == entry.paper == ("dyconv" if "dyconv" in name else "odconv")
        assert entry.input_size == (3, 224, 224) and "temperature" in entry.parameters


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_parameter_count_matches_published(name: str) -> None:
    model = create_model(name, calibrate=False)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == PUBLISHED_M[name]


def test_static_layers_follow_the_official_models() -> None:
    od = create_model("resnet18-odconv-4x", calibrate=False)
    assert type(od.conv1) is nn.Conv2d and type(od.layer2[0].downsample[0]) is nn.Conv2d
    assert isinstance(od.layer2[0].conv1, ODConv2d) and od.layer2[0].conv1.kernel_num == 4
    dy = create_model("resnet18-dyconv-4x", calibrate=False)
    assert type(dy.conv1) is nn.Conv2d and type(dy.fc) is nn.Linear
    assert isinstance(dy.layer2[0].downsample[0], DynamicConv2d)  # DY-Conv: every conv but the stem
    mb = create_model("mobilenetv2-odconv-1x", calibrate=False)
    assert type(mb.features[0][0]) is nn.Conv2d
    assert isinstance(mb.features[18][0], ODConv2d)  # the last 1×1 conv is dynamic
    assert type(mb.classifier[1]) is nn.Linear


@pytest.mark.parametrize("name", ["resnet18-odconv-1x", "resnet18-odconv-4x", "resnet18-dyconv-4x"])
def test_forward_shape_and_batch_folding(name: str) -> None:
    # Uncalibrated weights: this checks the folding logic, and deep random ODConv nets with calibrated
    # statistics amplify float re-association differences beyond any fixed tolerance.
    model = create_model(name, num_classes=10, calibrate=False)
    out = check_batch_folding(model, (2, 3, 64, 64))
    assert out.shape == (2, 10)


@pytest.mark.parametrize(
    "layer",
    [
        ODConv2d(24, 24, 3, padding=1, groups=24, kernel_num=4),  # depthwise: no filter attention
        ODConv2d(24, 24, 3, padding=1, groups=24, kernel_num=1),  # 1×: spatial attention only on the kernel
        ODConv2d(16, 32, 1, kernel_num=4),  # pointwise 4×: no spatial attention
        ODConv2d(16, 32, 3, stride=2, padding=1, kernel_num=4),
        DynamicConv2d(16, 32, 3, padding=1, groups=2, bias=True, kernel_num=4),
    ],
    ids=["od-dw-4x", "od-dw-1x", "od-pw-4x", "od-3x3-4x", "dy-grouped-bias"],
)
def test_layers_fold_the_batch(layer: nn.Module) -> None:
    check_batch_folding(layer.eval(), (2, layer.in_channels, 9, 9))


def test_odconv_matches_per_sample_reference() -> None:
    """y_b = α_f,b ⊙ conv(x_b ⊙ α_c,b, α_s,b ⊙ Σ_k α_w,bk W_k) (ODConv Eq. 2), computed sample by sample."""
    torch.manual_seed(0)
    layer = ODConv2d(8, 12, 3, padding=1, kernel_num=4).eval()
    x = torch.randn(3, 8, 7, 7)
    with torch.no_grad():
        channel, filt, spatial, kernel = layer.attention(x, 1.0)
        assert spatial is not None and kernel is not None and filt is not None
        expected = []
        for b in range(3):
            w = (kernel[b][:, None, None, None, None] * layer.weight).sum(0) * spatial[b].reshape(1, 1, 3, 3)
            y = F.conv2d(x[b : b + 1] * channel[b][None, :, None, None], w, padding=1)
            expected.append(y * filt[b][None, :, None, None])
        torch.testing.assert_close(layer(x), torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_odconv_attention_heads_follow_the_geometry() -> None:
    dw = ODConv2d(24, 24, 3, padding=1, groups=24, kernel_num=1).attention
    assert dw.filter_fc is None and dw.kernel_fc is None and dw.spatial_fc is not None
    pw = ODConv2d(16, 32, 1, kernel_num=4).attention
    assert pw.spatial_fc is None and pw.kernel_fc is not None and pw.filter_fc is not None
    assert pw.fc.out_features == 16  # max(int(16/16), 16)
    assert ODConv2d(512, 512, 3, kernel_num=4).attention.fc.out_features == 32


def test_each_layer_gets_its_own_attention_option_and_no_other() -> None:
    """Catches the shared constructor dropping a layer's attention option (``reduction``, ``squeeze_ratio``)
    or silently accepting the other layer's, and ODConv taking a bias the official layer does not have."""
    assert ODConv2d(1024, 64, 3, reduction=0.125).attention.fc.out_features == 128
    assert DynamicConv2d(64, 64, 3, squeeze_ratio=8).fc1.out_features == 8
    with pytest.raises(TypeError, match="squeeze_ratio"):
        ODConv2d(64, 64, 3, squeeze_ratio=8)
    with pytest.raises(TypeError, match="reduction"):
        DynamicConv2d(64, 64, 3, reduction=0.125)
    with pytest.raises(ValueError, match="ODConv2d has no bias"):
        ODConv2d(64, 64, 3, bias=True)
    assert DynamicConv2d(8, 12, 3, bias=True, kernel_num=4).bias.shape == (4, 12)  # one bias per kernel


def test_odconv_pointwise_fast_path_equals_general_path() -> None:
    torch.manual_seed(0)
    layer = ODConv2d(16, 32, 1, kernel_num=1).eval()
    assert layer.uses_fast_path
    x = torch.randn(3, 16, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer._forward_dynamic(x), rtol=1e-5, atol=1e-6)
    assert not ODConv2d(16, 32, 1, kernel_num=4).uses_fast_path
    assert not ODConv2d(16, 32, 3, kernel_num=1).uses_fast_path


def test_dyconv_attention_sums_to_one_over_k() -> None:
    torch.manual_seed(0)
    layer = DynamicConv2d(32, 32, 3, padding=1, kernel_num=4).eval()
    x = torch.randn(5, 32, 6, 6)
    with torch.no_grad():
        attention = layer.kernel_attention(x)
        assert attention.shape == (5, 4)
        torch.testing.assert_close(attention.sum(dim=1), torch.ones(5))
        assert (attention > 0).all()
        layer.temperature = 30.0  # the start of training: near-uniform
        flat = layer.kernel_attention(x)
        assert (flat - 0.25).abs().max() < (attention - 0.25).abs().max()
    assert layer.fc1.out_features == 8  # squeeze by 4


def test_dyconv_matches_per_sample_reference() -> None:
    torch.manual_seed(0)
    layer = DynamicConv2d(8, 12, 3, padding=1, bias=True, kernel_num=4).eval()
    with torch.no_grad():
        layer.bias.normal_()
        x = torch.randn(3, 8, 7, 7)
        pi = layer.kernel_attention(x)
        expected = torch.cat(
            [
                F.conv2d(
                    x[b : b + 1],
                    (pi[b][:, None, None, None, None] * layer.weight).sum(0),
                    pi[b] @ layer.bias,
                    padding=1,
                )
                for b in range(3)
            ]
        )
        torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_temperature_override() -> None:
    model = create_model("resnet18-odconv-4x", temperature=2.0, calibrate=False)
    assert {m.temperature for m in model.modules() if isinstance(m, ODConv2d)} == {2.0}
    set_dynamic_temperature(model, 1.0)
    assert {m.temperature for m in model.modules() if isinstance(m, ODConv2d)} == {1.0}
    with pytest.raises(ValueError):
        set_dynamic_temperature(model, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18-odconv-4x", "resnet18-dyconv-4x"])
def test_jit_trace(name: str) -> None:
    model = create_model(name, calibrate=False)
    x = torch.randn(1, 3, 64, 64)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x)
        torch.testing.assert_close(traced(x), model(x))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert {"aten::mm", "aten::_convolution", "aten::linear", "aten::softmax"} <= kinds
