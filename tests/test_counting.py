import pytest
import torch
from torch import nn

from convbench.counting.macs import CONVENTIONS, count, count_module, module_breakdown
from convbench.errors import UserInputError


def test_counts_a_plain_conv_exactly():
    conv = nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False)
    result = count_module(conv, (1, 8, 10, 10))
    assert result.macs == 16 * 8 * 9 * 10 * 10
    assert result.params == 16 * 8 * 9
    assert result.uncounted == {}


def test_resnet50_matches_fvcores_published_figure_and_lists_uncounted_ops():
    result = count("resnet50")
    assert result.gmacs == pytest.approx(4.1115, abs=1e-4)  # timm's published 4.11 GMACs (fvcore)
    assert result.params == 25_557_032
    assert result.uncounted == {"add_": 16, "max_pool2d": 1}


def test_mod_models_report_their_routing_ops_as_uncounted():
    result = count("resnet18-mod-cifar10")
    assert result.uncounted["topk"] == 4
    assert result.uncounted["sigmoid"] == 4


def test_mac_plus_adds_activations():
    module = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU())
    plain = count_module(module, (1, 3, 5, 5))
    plus = count_module(module, (1, 3, 5, 5), convention="mac+")
    assert plus.macs - plain.macs == 4 * 5 * 5
    assert "relu" not in plus.uncounted


def test_resolution_and_batch_scale_the_count():
    base = count("resnet18-cifar10")
    assert count("resnet18-cifar10", resolution=64).macs == pytest.approx(4 * base.macs, rel=0.01)
    assert count("resnet18-cifar10", batch_size=2).macs == 2 * base.macs


def test_by_module_breakdown_covers_the_stages():
    result = count("resnet50-mod-cifar10")
    rows = {name: macs for name, macs, _ in module_breakdown(result, max_depth=1)}
    assert {"layer1", "layer2", "layer3", "layer4", "fc"} <= set(rows)
    assert sum(rows.values()) == result.macs


def test_unknown_convention_is_a_user_error():
    with pytest.raises(UserInputError, match="unknown counting convention"):
        count_module(nn.Identity(), (1, 1, 2, 2), convention="nope")


def test_every_convention_is_described():
    for convention in CONVENTIONS.values():
        assert convention.description


def test_counting_needs_an_input_size_for_a_module():
    with pytest.raises(ValueError):
        count(nn.Identity())
    assert count(nn.Conv2d(1, 1, 1, bias=False), input_size=(1, 4, 4)).macs == 16
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("name", ["resnet18-kw-1x", "resnet18-odconv-4x", "resnet18-dyconv-4x"])
def test_dynamic_convs_share_the_convolution_macs_and_count_their_overhead(name):
    base = count("resnet18")
    result = count(name)
    # once the kernels exist, the convolutions cost what ResNet18's do (the stem and classifier are static)
    assert result.conv_macs == base.conv_macs
    # kernel assembly / aggregation are matrix products, counted by the same rule for all three
    assert result.by_operator["matmul" if "matmul" in result.by_operator else "mm"] > 0
    assert result.macs > base.macs


def test_odconv_attention_products_count_in_the_default_but_not_in_plain_fvcore():
    default = count("resnet18-odconv-4x")
    plain = count("resnet18-odconv-4x", convention="fvcore")
    assert default.by_operator["mul"] > 0
    assert default.macs == plain.macs + default.by_operator["mul"] + default.by_operator.get("mean", 0)
    assert "mul" in plain.uncounted and "mul" not in default.uncounted


def test_paper_convention_follows_the_family():
    assert count("micronet-m0", convention="paper").convention == "micronet"
    assert count("resnet18-mod-cifar10", convention="paper").convention == "mac+"
    assert count("resnet18-kw-0.25x", convention="paper").convention == "convbench"


def test_counts_are_cached_and_taken_in_the_familys_counting_formulation():
    from convbench.models.spec import ModelSpec

    first = count("resnet18-mod-cifar10", use_cache=False)
    again = count("resnet18-mod-cifar10")
    assert not first.cached and again.cached
    assert (again.macs, again.params, again.by_operator) == (first.macs, first.params, first.by_operator)
    # CNN-MoD declares counting_args impl=gather-concat: MACs are the paper's whatever implementation runs
    # (index-embed's one-hot 1×1 convolution only copies values).
    for impl in ("index-embed", "onehot-bmm"):
        assert count(ModelSpec("resnet18-mod-cifar10", (("impl", impl),))).macs == first.macs
    assert count("resnet18-mod-cifar10", convention="fvcore").macs < first.macs  # the convention is in the key
