"""Every MoD implementation (``MOD_IMPLS``) computes the same function as the reference "gather-concat".

The implementations differ only in the graph they trace to, so on the same weights and inputs their outputs
must agree to float tolerance, for every architecture, fusion slot, channel order and batch size, and each
must export with the dynamo exporter and pass the export's parity check against PyTorch.
"""

import pytest
import torch
from torchvision.models.resnet import Bottleneck

from convbench.errors import UserInputError
from convbench.export import export_onnx
from convbench.models import create_model
from convbench.models.mod import MOD_IMPLS, MoDBlock, gather_channels, mod_resnet
from convbench.models.spec import ModelSpec, resolve_model

REFERENCE = "gather-concat"
OTHERS = [name for name in MOD_IMPLS if name != REFERENCE]

# case -> (builder taking ``impl``, input size). Small inputs and models keep the file fast; the -lk variant
# ("resnet50-mod-lk") is built as a shallower Bottleneck MoD-ResNet with the same fusion, fuse_to="last".
CASES = {
    "resnet": (lambda impl: create_model("resnet18-mod-cifar10", impl=impl, calibrate=False), 32),
    "resnet-channel-order-branch": (
        lambda impl: create_model(
            "resnet18-mod-cifar10", impl=impl, order="channel", shortcut="branch", calibrate=False
        ),
        32,
    ),
    "resnet-bottleneck": (lambda impl: mod_resnet(Bottleneck, [2, 2, 2, 2], num_classes=10, cifar=True, impl=impl), 32),
    "resnet-bottleneck-lk": (
        lambda impl: mod_resnet(Bottleneck, [2, 2, 2, 2], num_classes=10, cifar=True, fuse_to="last", impl=impl),
        32,
    ),
    "mobilenetv2": (lambda impl: create_model("mobilenetv2-mod", impl=impl, calibrate=False), 64),
    "mobilenetv2-lk-channel-order": (
        lambda impl: create_model("mobilenetv2-mod", impl=impl, fuse_to="last", order="channel", calibrate=False),
        64,
    ),
    "vgg": (lambda impl: create_model("vgg16-bn-mod-cifar10", impl=impl, calibrate=False), 32),
    "vgg-lk": (lambda impl: create_model("vgg16-bn-mod-cifar10", impl=impl, fuse_to="last", calibrate=False), 32),
}


def _randomize_batchnorm(model: torch.nn.Module) -> None:
    # Non-trivial BN statistics, so that the blocks' outputs (and the selection) are far from degenerate.
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny; a second intra-op thread only waits for a core another process may be using.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def references():
    built = {}
    for case, (build, _size) in CASES.items():
        torch.manual_seed(0)
        model = build(REFERENCE).eval()
        _randomize_batchnorm(model)
        built[case] = model
    return built


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("case", CASES)
def test_implementation_matches_reference(references, case, impl):
    build, size = CASES[case]
    reference = references[case]
    model = build(impl).eval()
    model.load_state_dict(reference.state_dict())
    assert any(isinstance(m, MoDBlock) and m.impl == impl for m in model.modules())
    generator = torch.Generator().manual_seed(2)
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            expected, got = reference(x), model(x)
        assert got.shape == expected.shape
        scale = float(expected.abs().max())
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("impl", OTHERS)
@pytest.mark.parametrize("fuse_to", ["first", "last"])
def test_single_block_matches_reference_per_sample(impl, fuse_to):
    # A block on its own, batch 2: each sample selects its own channels, and results do not mix across samples.
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
    reference = MoDBlock(32, 4, inner, fuse_to=fuse_to, impl=REFERENCE).eval()
    block = MoDBlock(32, 4, inner, fuse_to=fuse_to, impl=impl).eval()
    block.load_state_dict(reference.state_dict())
    x = torch.randn(2, 32, 6, 6)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), reference(x), rtol=0, atol=1e-5)
        _, idx = reference.select(x)
        assert not torch.equal(idx[0], idx[1])  # the test means something only if the samples differ
        for i in range(2):
            torch.testing.assert_close(block(x[i : i + 1]), reference(x)[i : i + 1], rtol=0, atol=1e-5)


def test_gather_channels_per_sample():
    x = torch.randn(3, 10, 2, 2)
    idx = torch.tensor([[9, 0, 4], [1, 1, 2], [5, 3, 7]])
    for batch in (1, 3):
        got = gather_channels(x[:batch], idx[:batch])
        expected = torch.stack([x[i, idx[i]] for i in range(batch)])
        assert torch.equal(got, expected)


def test_parameters_do_not_depend_on_the_implementation():
    models = {impl: create_model("resnet18-mod-cifar10", impl=impl, calibrate=False) for impl in MOD_IMPLS}
    counts = {impl: sum(p.numel() for p in m.parameters()) for impl, m in models.items()}
    assert len(set(counts.values())) == 1, counts
    assert len({tuple(m.state_dict()) for m in models.values()}) == 1


def test_an_unknown_implementation_is_refused_before_anything_is_built():
    with pytest.raises(UserInputError, match="unknown MoD implementation 'nope'; choose from gather-concat"):
        resolve_model(ModelSpec("resnet18-mod-cifar10", (("impl", "nope"),))).build(calibrate=False)


@pytest.mark.slow
@pytest.mark.parametrize("impl", list(MOD_IMPLS))
def test_exports_with_dynamo_and_parity(impl):
    spec = ModelSpec("resnet18-mod-cifar10", (("impl", impl),))
    result = export_onnx(spec)  # raises if ONNX Runtime and PyTorch disagree
    assert result.max_abs_diff <= result.tolerance


@pytest.mark.slow
def test_each_implementation_exports_its_own_graph():
    # The export cache is keyed by the builder arguments: each implementation gets its own, different graph.
    import onnx

    results = {impl: export_onnx(ModelSpec("resnet18-mod-cifar10", (("impl", impl),))) for impl in MOD_IMPLS}
    assert len({r.path for r in results.values()}) == len(MOD_IMPLS)
    # The key is the arguments the model is built with: naming the default implementation changes nothing.
    assert export_onnx("resnet18-mod-cifar10").path == results["index-embed"].path
    ops = {impl: sorted(n.op_type for n in onnx.load(str(r.path)).graph.node) for impl, r in results.items()}
    # inplace-addcmul differs from inplace only in PyTorch's kernels: the exporter decomposes addcmul_ into the
    # same Mul and Add. Every other implementation is a graph of its own.
    assert ops.pop("inplace-addcmul") == ops["inplace"]
    assert len({tuple(o) for o in ops.values()}) == len(ops), ops


# The in-place fusion ("inplace", "inplace-addcmul") writes its result into its input. That is safe only where
# nothing else reads the input afterwards; these tests fail if it ever damages a tensor still in use.

INPLACE = [name for name in MOD_IMPLS if name.startswith("inplace")]


@pytest.mark.parametrize("impl", INPLACE)
@pytest.mark.parametrize("case", CASES)
def test_inplace_leaves_the_model_input_unchanged(references, case, impl):
    """Fails if a builder lets a block own the model's input, or the block writes into a tensor it does not own."""
    build, size = CASES[case]
    model = build(impl).eval()
    model.load_state_dict(references[case].state_dict())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    kept = x.clone()
    with torch.inference_mode():
        model(x)
    assert torch.equal(x, kept)


@pytest.mark.parametrize("case", CASES)
def test_inplace_is_the_reference_to_the_bit(references, case):
    """Fails if the in-place fusion computes anything differently from gather-concat (inputs cloned for each)."""
    build, size = CASES[case]
    model = build("inplace").eval()
    model.load_state_dict(references[case].state_dict())
    generator = torch.Generator().manual_seed(4)
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            assert torch.equal(model(x.clone()), references[case](x.clone()))


class _Residual(torch.nn.Module):
    """``x + block(x)``: the block's input is read again after the block, as a residual branch reads it."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _blocks(impl: str, owns_input: bool, fuse_to: str = "first") -> tuple[MoDBlock, MoDBlock]:
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
    reference = MoDBlock(32, 4, inner, fuse_to=fuse_to, impl=REFERENCE).eval()
    block = MoDBlock(32, 4, inner, fuse_to=fuse_to, impl=impl, owns_input=owns_input).eval()
    block.load_state_dict(reference.state_dict())
    return reference, block


@pytest.mark.parametrize("impl", INPLACE)
@pytest.mark.parametrize("fuse_to", ["first", "last"])
def test_inplace_block_keeps_an_input_that_a_residual_reads_again(impl, fuse_to):
    """A block that does not own its input (the default) must leave it intact for the residual add after it."""
    reference, block = _blocks(impl, owns_input=False, fuse_to=fuse_to)
    x = torch.randn(2, 32, 6, 6)
    kept = x.clone()
    with torch.inference_mode():
        got = _Residual(block)(x)
        expected = _Residual(reference)(x.clone())
    assert torch.equal(x, kept)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_an_owned_input_is_written_in_place_so_the_residual_test_can_fail():
    """The control for the test above: owning the input does write into it (so that test sees real damage), and
    only the k fused channels change."""
    reference, block = _blocks("inplace", owns_input=True)
    x = torch.randn(2, 32, 6, 6)
    kept = x.clone()
    with torch.inference_mode():
        out = block(x)
        expected = reference(kept.clone())
    assert out.data_ptr() == x.data_ptr()
    assert not torch.equal(x[:, :4], kept[:, :4]) and torch.equal(x[:, 4:], kept[:, 4:])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("impl", INPLACE)
def test_inplace_trains_like_the_reference(impl):
    """With autograd on, writing into the input would corrupt what backward needs (or raise): the block must write
    a copy then, and its gradients must be the reference's."""
    grads = {}
    for name in (REFERENCE, impl):
        torch.manual_seed(0)
        model = mod_resnet(Bottleneck, [2, 2, 2, 2], num_classes=10, cifar=True, impl=name).eval()
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5), requires_grad=True)
        model(x).square().sum().backward()
        grads[name] = (x.grad, [p.grad for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(grads[impl][0], grads[REFERENCE][0], rtol=1e-5, atol=1e-6)
    assert len(grads[impl][1]) == len(grads[REFERENCE][1])
    for got, expected in zip(grads[impl][1], grads[REFERENCE][1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_channel_order_selects_the_same_channels_as_sorting_the_top_k():
    """``order="channel"`` skips top-k's own sort; it must still pick the top-k channels, in index order, with
    each channel's own score."""
    torch.manual_seed(0)
    block = MoDBlock(64, 8, torch.nn.Identity(), order="channel").eval()
    x = torch.randn(3, 64, 5, 5)
    with torch.inference_mode():
        scores, idx = block.select(x)
        logits = block.selector(x)
    top_logits, top_idx = torch.topk(logits, 8, dim=1)
    order = torch.argsort(top_idx, dim=1)
    assert torch.equal(idx, torch.gather(top_idx, 1, order))
    assert torch.equal(scores, torch.sigmoid(torch.gather(top_logits, 1, order)))
