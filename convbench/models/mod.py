"""CNN Mixture-of-Depths (Cakaj, Mehnert, Yang, ACCV 2024, arXiv:2409.17016).

The MoD block (paper §3, Figs. 1-2) routes only the k most important channels of its input through a
shrunk copy of the architecture's own block and adds the result onto a fixed slot of k channels:

    s      = sigmoid(fc2(relu(fc1(avgpool(x)))))         channel selector, fc: C -> C/16 -> C, no bias
    v, idx = topk(s, k)                                  k = floor(C / c)
    y      = block_k(x[:, idx]) * v                      the block shrunk to k channels, scaled by the scores
    out    = x;  out[:, :k] += y                         fusion onto the first k channels, nothing after it

Architectures (paper §3; stage lists in Appendix A.2 Table 5 for ResNet and A.3 Table 6 for MobileNetV2; VGG
in Table 9): in every stage the first block is standard and every second block (0-indexed odd) is a MoD
block, so MoD blocks never carry a stride or a downsample. c = 64 for ResNet and VGG, c = 16 for MobileNetV2
(§3). The paper does not say whether the selector's FCs have biases; ours have none, because only then do
the parameter counts it prints come out exactly (with biases ResNet34-MoD of Table 7 and ResNet75/86-MoD of
Table 1 come out 0.01 M too high). The paper calls the selector SE-like without naming the activation
between its FCs; ours is ReLU, as in Squeeze-and-Excitation.

Choices the paper leaves open, made here and selectable per model (builder keyword arguments):

- ``shortcut``: whether the shrunk block keeps its own identity shortcut and final activation. Default
  ``"block"`` (the architecture's full block, as the paper says the block is "adapted from existing
  architectures"); ``"branch"`` runs only the residual branch, so the fusion add is the only residual.
  VGG has no shortcut, so the option does not apply there.
- ``order``: the order in which the selected channels meet the shrunk block's kernels. Default
  ``"score"`` (``torch.topk``'s descending-score order, which is what ``topk`` returns); ``"channel"``
  sorts the selected indices so channels keep their original order.
- ``fuse_to``: ``"first"`` (the paper's default) or ``"last"`` (the "-lk" variant of Table 8).
- ``selection``: ``"learned"`` (the selector above) or ``"random"`` (the paper's "MoD50 rand." control of
  Table 1: uniformly random channels with random scales and no selector parameters; see ``RandomSelector``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from convbench.errors import UserInputError
from convbench.models.layers import CIFAR_INPUT
from convbench.models.registry import register_model
from convbench.models.resnet import build_resnet
from convbench.models.vgg import VGG_STAGES, CifarVGG, conv_bn_relu

Shortcut = Literal["block", "branch"]
Order = Literal["score", "channel"]
FuseTo = Literal["first", "last"]
Selection = Literal["learned", "random"]
Pooling = Literal["adaptive", "mean", "window"]

RESNET_CAPACITY = 64
MOBILENET_CAPACITY = 16
SELECTOR_REDUCTION = 16


def global_avg_pool(x: torch.Tensor, pool: Pooling = "adaptive") -> torch.Tensor:
    """Mean over H×W, shaped (B, C); the same math written three ways, which export to different ONNX ops.

    ``"adaptive"``: ``adaptive_avg_pool2d(x, 1)`` -> ReduceMean + Reshape (ONNX Runtime's blocked NCHWc
    layout has no ReduceMean, so its input is reordered to NCHW first). ``"mean"``: ``x.mean((2, 3))`` ->
    one ReduceMean without the Reshape. ``"window"``: ``avg_pool2d`` with the whole map as its window ->
    AveragePool, which ONNX Runtime runs in NCHWc directly on the producing convolution's output.
    """
    if pool == "adaptive":
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
    if pool == "mean":
        return x.mean((2, 3))
    return F.avg_pool2d(x, tuple(x.shape[-2:])).flatten(1)


class ChannelSelector(nn.Module):
    """SE-style scorer (paper §3.1): global average pool, C -> C/16 -> C without biases; returns the logits.

    The paper's scores are ``sigmoid(logits)``. ``MoDBlock.select`` takes the top k of the logits and applies
    the sigmoid to the k it keeps: the same channels and scores (the sigmoid is monotonic), but in float32
    the sigmoid saturates to exactly 1.0 for logits above ~17, which deep networks reach, and top-k among
    exact ties is arbitrary: PyTorch and ONNX Runtime could then pick different channels.

    Exact ties among the logits themselves happen too with random weights: where C/16 rounds to a single hidden
    unit (MobileNetV2's 16- and 24-channel stages), its ReLU is zero for about half the inputs and every logit
    is then exactly 0. The paper is silent on ties (a trained selector does not produce them); we add a fixed
    ramp of at most 1e-6 (``tie_break``: lower channel index first, like a stable sort) so that every runtime
    resolves them alike. It changes which channels are chosen only among logits closer than 1e-6, whose order
    float32 rounding decides anyway, and it is a buffer: parameters and checkpoints are unchanged.
    """

    def __init__(self, channels: int, reduction: int = SELECTOR_REDUCTION) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)
        self.register_buffer("tie_break", -1e-6 * torch.arange(channels) / channels, persistent=False)

    def forward(self, x: torch.Tensor, pool: Pooling = "adaptive") -> torch.Tensor:
        hidden = F.relu(self.fc1(global_avg_pool(x, pool)))
        if torch.is_autocast_enabled(x.device.type):
            # A half-precision product would round the 1e-6 ramp away if it were its bias; added after it, the
            # sum is promoted to float32 and the ramp still breaks the ties that fp16 logits have often.
            return self.fc2(hidden) + self.tie_break
        # In float32 the ramp is fc2's bias: one GEMM with a bias (ONNX Gemm with C) instead of a GEMM and an add,
        # the same value (the product is rounded, then the bias added, as by a separate add; bit-equal on the CPU).
        return F.linear(hidden, self.fc2.weight, self.tie_break)


class RandomSelector(nn.Module):
    """The paper's random-selection control: random channels, no parameters.

    The paper does not say how the random channels are scaled; the logits are standard normal, so the scores
    ``sigmoid(logits)`` spread over (0, 1) like a selector's.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, pool: Pooling = "adaptive") -> torch.Tensor:
        return torch.randn(x.shape[0], self.channels, dtype=x.dtype, device=x.device)


class ResidualBranch(nn.Module):
    """A torchvision block without its identity shortcut and final activation (``shortcut="branch"``)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        if isinstance(b, Bottleneck):
            out = b.relu(b.bn1(b.conv1(x)))
            out = b.relu(b.bn2(b.conv2(out)))
            return b.bn3(b.conv3(out))
        if isinstance(b, BasicBlock):
            return b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))))
        if isinstance(b, InvertedResidual):
            return b.conv(x)
        raise TypeError(f"no residual branch known for {type(b).__name__}")


class MoDBlock(nn.Module):
    """One Mixture-of-Depths block: select k channels, process them, scale, and add onto k fixed channels.

    ``inner`` is any module mapping k channels to k channels at the same spatial size.
    """

    def __init__(
        self,
        channels: int,
        k: int,
        inner: nn.Module,
        *,
        order: Order = "score",
        fuse_to: FuseTo = "first",
        selection: Selection = "learned",
        impl: str = "gather-concat",
        owns_input: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= k <= channels:
            raise ValueError(f"k must be in [1, {channels}], got {k}")
        check_impl(impl)
        self.impl = impl
        # Whether the block may write its result into its input tensor (the "inplace" implementations): true only
        # where nothing else reads that tensor after the block, which the model builders know (the block's input
        # is the fresh output of the block before it) and a block on its own cannot. Otherwise it writes a copy.
        self.owns_input = owns_input
        self.channels = channels
        self.k = k
        self.order = order
        self.fuse_to = fuse_to
        self.selector = ChannelSelector(channels) if selection == "learned" else RandomSelector(channels)
        self.inner = inner
        # The fusion as a 1×1 convolution (used by the "-embed" implementations): a constant one-hot
        # (C, k, 1, 1) kernel that writes processed channel i onto fused channel i (the first or last k).
        # A buffer, not a parameter, and not in the state dict: parameter counts and checkpoints do not
        # depend on the implementation.
        offset = 0 if fuse_to == "first" else channels - k
        embed = torch.zeros(channels, k, 1, 1)
        embed[offset + torch.arange(k), torch.arange(k)] = 1.0
        self.register_buffer("embed", embed, persistent=False)

    def select(self, x: torch.Tensor, pool: Pooling = "adaptive") -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (after the sigmoid) and indices of the k selected channels, each shaped (B, k)."""
        if self.order == "score":
            logits, idx = torch.topk(self.selector(x, pool), self.k, dim=1)
            return torch.sigmoid(logits), idx
        # Channel order sorts the indices anyway: top-k need not sort the scores first (the same k channels).
        logits, idx = torch.topk(self.selector(x, pool), self.k, dim=1, sorted=False)
        idx, perm = torch.sort(idx, dim=1)
        return torch.sigmoid(torch.gather(logits, 1, perm)), idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return MOD_IMPLS[self.impl](self, x)


def gather_concat(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """The paper's formulation, written directly: GatherElements, shrunk block, scale, slice-add-concat.

    Graph: ReduceMean -> Gemm -> Gemm -> TopK; Unsqueeze/Expand -> GatherElements -> shrunk block -> Mul;
    Slice (ONNX Runtime makes it a Split) -> Add -> Concat. Gather, Split and Concat have no NCHWc kernels in
    ONNX Runtime, so the block's input is reordered to NCHW and its output back to NCHWc (ReorderOutput /
    ReorderInput around every MoD block), and the standard block after it loses its fused Conv+Add+ReLU
    (the residual input is no longer NCHWc). The reference the other implementations are tested against.
    """
    scores, idx = block.select(x)
    b, _, h, w = x.shape
    selected = torch.gather(x, 1, idx[:, :, None, None].expand(b, block.k, h, w))
    processed = block.inner(selected) * scores[:, :, None, None]
    if block.fuse_to == "first":
        return torch.cat([x[:, : block.k] + processed, x[:, block.k :]], dim=1)
    split = block.channels - block.k
    return torch.cat([x[:, :split], x[:, split:] + processed], dim=1)


def gather_channels(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[i, idx[i]]`` for every sample i: (B, C, H, W) and (B, k) -> (B, k, H, W), as one ONNX Gather.

    Batch 1: ``index_select`` on the channel axis (Reshape of the indices + Gather axis=1). Larger batches:
    the channels of all samples as rows of a (B·C, H, W) view, gathered at ``idx + i·C`` (Gather axis=0).
    Either way no Expand and no GatherElements with a full-size (B, k, H, W) index tensor.
    """
    b, c, h, w = x.shape
    if b == 1:
        return x.index_select(1, idx.reshape(-1))
    rows = (idx + torch.arange(0, b * c, c, device=idx.device)[:, None]).reshape(-1)
    return x.reshape(b * c, h, w).index_select(0, rows).reshape(b, -1, h, w)


def index_pad(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """Gather the channels by index, add the zero-padded result onto the whole tensor: no Split, no Concat.

    Graph: ReduceMean -> Gemm -> Gemm -> TopK -> Gather (see ``gather_channels``) -> shrunk block -> Mul ->
    Pad (k -> C channels with zeros) -> Add(x, ·). Removes the Slice/Split/Concat, but Pad has no NCHWc
    kernel either, so the padded full-size tensor is reordered into the blocked layout (or ``x`` out of
    it) for the Add, and that Add cannot fuse into a convolution.
    """
    scores, idx = block.select(x, "mean")
    processed = block.inner(gather_channels(x, idx)) * scores[:, :, None, None]
    rest = block.channels - block.k
    pad = (0, 0, 0, 0, 0, rest) if block.fuse_to == "first" else (0, 0, 0, 0, rest, 0)
    return x + F.pad(processed, pad)


def onehot_bmm(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """Selection and fusion as batched matrix products with one-hot matrices; the scores fold into the fusion.

    Graph: ReduceMean -> Gemm -> Gemm -> TopK -> OneHot-style Equal/Cast (B, k, C) -> MatMul with x viewed
    as (B, C, H·W) -> shrunk block -> MatMul with the one-hot embedding (C, k) scaled by the scores,
    (B, C, k) -> Add(x, ·). No Gather, Split or Concat; the score multiply is folded into the (B, C, k)
    fusion matrix instead of scaling the (B, k, H, W) tensor. The price: two dense products over all C
    channels (C·k·H·W MACs each) and MatMul/Reshape on x, which again force NCHW around the block.
    """
    scores, idx = block.select(x, "mean")
    b, c, h, w = x.shape
    pick = F.one_hot(idx, c).to(x.dtype)  # (B, k, C)
    selected = torch.bmm(pick, x.reshape(b, c, h * w)).reshape(b, block.k, h, w)
    processed = block.inner(selected).reshape(b, block.k, h * w)
    fuse = block.embed.reshape(c, block.k)[None] * scores[:, None, :]  # (B, C, k)
    return x + torch.bmm(fuse, processed).reshape(b, c, h, w)


def _gather_embed(block: MoDBlock, x: torch.Tensor, pool: Pooling) -> torch.Tensor:
    scores, idx = block.select(x, pool)
    processed = block.inner(gather_channels(x, idx)) * scores[:, :, None, None]
    return x + F.conv2d(processed, block.embed)


def index_embed(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """Gather by index; the fusion is a 1×1 convolution with a constant one-hot kernel added onto ``x``.

    Graph: ReduceMean -> Gemm -> Gemm -> TopK -> Gather -> shrunk block -> Mul -> Conv(k -> C, one-hot
    weights) -> Add(x, ·). ``x + conv(y, E)`` with E the (C, k) embedding of the k processed channels into
    the first (or last) k is exactly the paper's fusion, but it is a convolution plus a residual add, which
    ONNX Runtime fuses into one NCHWc Conv with a Sum input: the block's output is produced directly in the
    blocked layout, there is no ReorderInput after the block, and the following standard block keeps its
    fused Conv+Add+ReLU, as in the plain ResNet. The extra C·k·H·W MACs (one-hot, about 1% of a ResNet)
    cost less than the layout conversions and the Split/Concat they replace. The input of the block is
    still reordered to NCHW once, for the Gather and the ReduceMean.
    """
    return _gather_embed(block, x, "mean")


def nchwc_embed(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """``index_embed`` with the selector's pooling written as an AveragePool, so it too stays in NCHWc.

    Graph: AveragePool (window = the whole map) -> ReorderOutput (C×1×1) -> Reshape -> Gemm -> Gemm -> TopK
    -> Gather -> shrunk block -> Mul -> Conv(k -> C, one-hot) + Add. ONNX Runtime runs AveragePool on the
    blocked layout straight from the producing convolution. It does not pay: the full-size ReorderOutput
    feeding the Gather is needed anyway, a ReduceMean on its NCHW copy costs about as much as the
    AveragePool, and the pooled vector needs two more small nodes. Slightly slower than ``index_embed`` in
    benchmarks/mod_speedup.py's measurements (see ``DEFAULT_MOD_IMPL``); kept as the measured alternative.
    """
    return _gather_embed(block, x, "window")


def _fusion_target(block: MoDBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensor the block returns and its view on the k channels the result is added onto.

    The block's own input when it owns it (see ``MoDBlock.owns_input``) and no autograd graph records ``x`` (an
    in-place write would corrupt what backward needs); a copy otherwise. Writing into the input is safe then: the
    selector has read ``x`` and the gather copied the selected channels before anything is written.
    """
    out = x if block.owns_input and not (torch.is_grad_enabled() and x.requires_grad) else x.clone()
    start = 0 if block.fuse_to == "first" else block.channels - block.k
    return out, out[:, start : start + block.k]


def inplace(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """Gather by index, then add the scaled result into the first (or last) k channels of ``x`` in place.

    ``x[:, :k] += processed * scores``: the paper's fusion with neither a Concat nor a full-size copy of ``x``;
    the operations per block are the selector's, the gather, the shrunk block, one multiply and one in-place add
    on k channels. The same arithmetic in the same order as ``gather_concat``, so the same values to the bit
    (on the same device). In an exported graph the in-place add becomes a Slice, an Add and a scatter of the k
    channels back into ``x`` (the exporter removes the mutation).
    """
    scores, idx = block.select(x, "mean")
    processed = block.inner(gather_channels(x, idx))
    out, fused = _fusion_target(block, x)
    fused.add_(processed * scores[:, :, None, None])
    return out


def inplace_addcmul(block: MoDBlock, x: torch.Tensor) -> torch.Tensor:
    """``inplace`` with the score multiply folded into the add: one ``addcmul_`` instead of a multiply and an add.

    One kernel fewer per block, and no (B, k, H, W) temporary. ``addcmul_`` computes ``x + p·s`` as a fused
    multiply-add, rounding once where ``gather_concat`` rounds the product and then the sum, so its values may
    differ from the reference in the last bit (more accurate, not the same bits).
    """
    scores, idx = block.select(x, "mean")
    processed = block.inner(gather_channels(x, idx))
    out, fused = _fusion_target(block, x)
    fused.addcmul_(processed, scores[:, :, None, None])
    return out


# Implementations of the block's forward pass: numerically equivalent on the same weights, different graphs.
# Chosen per model with the builder argument ``impl`` (``convbench ... --model-arg impl=NAME``).
MOD_IMPLS: dict[str, Callable[[MoDBlock, torch.Tensor], torch.Tensor]] = {
    "gather-concat": gather_concat,
    "index-pad": index_pad,
    "onehot-bmm": onehot_bmm,
    "index-embed": index_embed,
    "nchwc-embed": nchwc_embed,
    "inplace": inplace,
    "inplace-addcmul": inplace_addcmul,
}
# The builder's default is the implementation that realises the most of the MAC saving on ONNX Runtime's CPU
# provider, as measured with benchmarks/mod_speedup.py: its fusion written as a one-hot 1×1 convolution keeps the
# blocked NCHWc layout that the gather/concat formulation breaks. It is what a model built outside a benchmark
# (export, count) gets; a benchmark builds each runtime's own choice below.
DEFAULT_MOD_IMPL = "index-embed"
# The implementation a benchmark builds on each runtime and device unless the user names one: the fastest there,
# measured with benchmarks/mod_speedup.py over ResNet50/75/86-MoD against ResNet50 at batch 1 (CPU, one thread).
# OpenVINO: the AveragePool selector (nchwc-embed) came out fastest over the three models, like index-embed on ONNX
# Runtime. PyTorch on the CPU runs eager kernels with no layout to keep: the paper's own formulation
# (gather-concat) was fastest there. On CUDA (one H200, CUDA graphs, batch 64, fp32 and amp-fp16) the in-place
# fusion was fastest of all and the only one within reach of the paper's GPU speed-ups: a gather and one add on
# k channels, no Concat, no one-hot convolution, no full-size copy.
MOD_RUNTIME_IMPLS = {
    ("onnxruntime", "cpu"): "index-embed",
    ("openvino", "cpu"): "nchwc-embed",
    ("torch", "cpu"): "gather-concat",
    ("torch", "cuda"): "inplace",
}
# MACs are counted in the paper's formulation, whatever implementation runs: the implementations differ in the
# graph, not in the model's arithmetic (index-embed's one-hot 1×1 convolution only copies values).
COUNTING_IMPL = "gather-concat"
# What CNN-MoD declares to the generic layers: count in the paper's formulation, record the implementation in
# every row, build each runtime's fastest implementation, and count MACs the way the paper's GMAC columns read
# (activations and max-pooling included).
MOD_REGISTRATION = {
    "counting_args": {"impl": COUNTING_IMPL},
    "recorded_args": {"impl": DEFAULT_MOD_IMPL},
    "default_args": {where: {"impl": impl} for where, impl in MOD_RUNTIME_IMPLS.items()},
    "paper_convention": "mac+",
}


def check_impl(impl: str) -> None:
    if impl not in MOD_IMPLS:
        raise UserInputError(f"unknown MoD implementation {impl!r}; choose from {', '.join(MOD_IMPLS)}")


def mod_k(channels: int, capacity: int) -> int:
    """k = floor(C / c) (paper §3.1)."""
    return max(channels // capacity, 1)


def _mod_every_second(stage: nn.Sequential, make_mod: Callable[[nn.Module, int], nn.Module]) -> None:
    """Replace the 0-indexed odd blocks of ``stage`` in place.

    Each MoD block then follows a standard block in a Sequential: its input is that block's fresh output, read by
    nothing else, so the builders create it with ``owns_input=True`` (MobileNetV2's stages likewise).
    """
    for i in range(1, len(stage), 2):
        stage[i] = make_mod(stage[i], i)


def _resnet_inner(block_type: type[BasicBlock | Bottleneck], k: int, shortcut: Shortcut) -> nn.Module:
    # Bottleneck k -> k/4 -> k (torchvision's planes = k/4 with expansion 4); BasicBlock k -> k -> k.
    planes = k // Bottleneck.expansion if block_type is Bottleneck else k
    block = block_type(k, planes)
    return block if shortcut == "block" else ResidualBranch(block)


def mod_resnet(
    block_type: type[BasicBlock | Bottleneck],
    layers: Sequence[int],
    *,
    num_classes: int = 1000,
    cifar: bool = False,
    capacity: int = RESNET_CAPACITY,
    shortcut: Shortcut = "block",
    order: Order = "score",
    fuse_to: FuseTo = "first",
    selection: Selection = "learned",
    impl: str = DEFAULT_MOD_IMPL,
) -> ResNet:
    """A torchvision ResNet whose 0-indexed odd blocks in every stage are MoD blocks (paper Table 5)."""
    model = build_resnet(block_type, list(layers), num_classes=num_classes, cifar=cifar)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        channels = _block_out_channels(stage[0])

        def make_mod(_old: nn.Module, _i: int, channels: int = channels) -> nn.Module:
            k = mod_k(channels, capacity)
            inner = _resnet_inner(block_type, k, shortcut)
            return MoDBlock(
                channels, k, inner, order=order, fuse_to=fuse_to, selection=selection, impl=impl, owns_input=True
            )

        _mod_every_second(stage, make_mod)
    return model


def _block_out_channels(block: nn.Module) -> int:
    last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    return last_bn.num_features


# Stage settings (t, c, n, s) of MobileNetV2 and of the paper's wider MoD-L (Table 6).
MOBILENETV2_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
MOBILENETV2_L_SETTING = [
    [1, 16, 1, 1],
    [6, 32, 2, 2],
    [6, 64, 3, 2],
    [6, 96, 4, 2],
    [6, 128, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def mod_mobilenetv2(
    setting: list[list[int]],
    *,
    num_classes: int = 1000,
    capacity: int = MOBILENET_CAPACITY,
    shortcut: Shortcut = "block",
    order: Order = "score",
    fuse_to: FuseTo = "first",
    selection: Selection = "learned",
    impl: str = DEFAULT_MOD_IMPL,
) -> MobileNetV2:
    """torchvision MobileNetV2 with every second inverted residual of each stage a MoD block (Table 6).

    The MoD block's inner block is an inverted residual k -> 6k -> k with the standard expansion t = 6.
    """
    model = MobileNetV2(num_classes=num_classes, inverted_residual_setting=setting)
    position = 1  # features[0] is the stem convolution
    for t, c, n, _s in setting:
        for i in range(1, n, 2):
            k = mod_k(c, capacity)
            block = InvertedResidual(k, k, stride=1, expand_ratio=t)
            inner = block if shortcut == "block" else ResidualBranch(block)
            model.features[position + i] = MoDBlock(
                c, k, inner, order=order, fuse_to=fuse_to, selection=selection, impl=impl, owns_input=True
            )
        position += n
    return model


def mod_vgg(
    depth: int,
    *,
    num_classes: int = 10,
    capacity: int = RESNET_CAPACITY,
    order: Order = "score",
    fuse_to: FuseTo = "first",
    selection: Selection = "learned",
    impl: str = DEFAULT_MOD_IMPL,
) -> CifarVGG:
    """CIFAR VGG-BN whose every second conv of a stage is a MoD conv (k -> k 3×3 + BN + ReLU; Table 9)."""
    model = CifarVGG(VGG_STAGES[depth], num_classes=num_classes)
    for stage in model.stages:
        channels = stage[0][0].out_channels

        def make_mod(_old: nn.Module, _i: int, channels: int = channels) -> nn.Module:
            k = mod_k(channels, capacity)
            inner = conv_bn_relu(k, k)
            return MoDBlock(
                channels, k, inner, order=order, fuse_to=fuse_to, selection=selection, impl=impl, owns_input=True
            )

        _mod_every_second(stage, make_mod)
    return model


# ---------------------------------------------------------------------------------------------------------
# Registered models. Stage lists come from the paper's Table 5 (Appendix A.2), not from the names: the
# names do not follow the usual depth formula (ResNet75-MoD is [3, 4, 14, 3]).

RESNET_MOD_STAGES: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18-mod": (BasicBlock, [2, 2, 2, 2]),
    "resnet26-mod": (BasicBlock, [2, 2, 3, 4]),
    "resnet34-mod": (BasicBlock, [3, 4, 6, 3]),
    "resnet42-mod": (BasicBlock, [3, 3, 6, 6]),
    "resnet50-mod": (Bottleneck, [3, 4, 6, 3]),
    "resnet75-mod": (Bottleneck, [3, 4, 14, 3]),
    "resnet86-mod": (Bottleneck, [3, 4, 18, 3]),
    "resnet101-mod": (Bottleneck, [3, 4, 23, 3]),
    "resnet152-mod": (Bottleneck, [3, 8, 36, 3]),
}
LK_VARIANTS = ("resnet50-mod", "resnet75-mod", "resnet86-mod")


def _register_resnet_mod(
    name: str, *, fuse_to: FuseTo = "first", selection: Selection = "learned", cifar_classes: int | None = None
) -> None:
    base = name.removesuffix("-lk").removesuffix("-rand")
    block_type, layers = RESNET_MOD_STAGES[base]
    default_classes = cifar_classes or 1000

    def builder(
        num_classes: int = default_classes,
        shortcut: Shortcut = "block",
        order: Order = "score",
        capacity: int = RESNET_CAPACITY,
        impl: str = DEFAULT_MOD_IMPL,
    ) -> nn.Module:
        return mod_resnet(
            block_type,
            layers,
            num_classes=num_classes,
            cifar=cifar_classes is not None,
            capacity=capacity,
            shortcut=shortcut,
            order=order,
            fuse_to=fuse_to,
            selection=selection,
            impl=impl,
        )

    what = {"first": "", "last": ", fused onto the last k channels (Table 8)"}[fuse_to]
    if selection == "random":
        what += ", random channel selection (the paper's MoD50 rand. control)"
    data = f" for CIFAR-{cifar_classes} (Table 9)" if cifar_classes else ""
    builder.__doc__ = f"CNN-MoD {block_type.__name__} ResNet, stages {layers}{what}{data}."
    registered = f"{name}-cifar{cifar_classes}" if cifar_classes else name
    register_model(
        registered,
        family="mod",
        paper="cnn-mod",
        input_size=CIFAR_INPUT if cifar_classes else (3, 224, 224),
        num_classes=default_classes,
        stochastic=selection == "random",
        **MOD_REGISTRATION,
    )(builder)


for _name in RESNET_MOD_STAGES:
    _register_resnet_mod(_name)
for _name in LK_VARIANTS:
    _register_resnet_mod(f"{_name}-lk", fuse_to="last")
_register_resnet_mod("resnet50-mod-rand", selection="random")
for _name in ("resnet18-mod", "resnet34-mod", "resnet50-mod"):
    for _classes in (10, 100):
        _register_resnet_mod(_name, cifar_classes=_classes)


def _register_mobilenet_mod(name: str, setting: list[list[int]], doc: str) -> None:
    def builder(
        num_classes: int = 1000,
        shortcut: Shortcut = "block",
        order: Order = "score",
        fuse_to: FuseTo = "first",
        impl: str = DEFAULT_MOD_IMPL,
    ) -> nn.Module:
        return mod_mobilenetv2(
            setting, num_classes=num_classes, shortcut=shortcut, order=order, fuse_to=fuse_to, impl=impl
        )

    builder.__doc__ = doc
    register_model(name, family="mod", paper="cnn-mod", **MOD_REGISTRATION)(builder)


_register_mobilenet_mod("mobilenetv2-mod", MOBILENETV2_SETTING, "CNN-MoD MobileNetV2, c = 16 (Table 2, Table 6).")
_register_mobilenet_mod(
    "mobilenetv2-mod-l", MOBILENETV2_L_SETTING, "CNN-MoD MobileNetV2-MoD-L, wider stages 2-5 (Table 2, Table 6)."
)


def _register_vgg_mod(depth: int, num_classes: int) -> None:
    def builder(
        num_classes: int = num_classes,
        order: Order = "score",
        fuse_to: FuseTo = "first",
        impl: str = DEFAULT_MOD_IMPL,
    ) -> nn.Module:
        return mod_vgg(depth, num_classes=num_classes, order=order, fuse_to=fuse_to, impl=impl)

    builder.__doc__ = f"CNN-MoD VGG{depth}-BN for CIFAR-{num_classes}, every second conv a MoD conv (Table 9)."
    register_model(
        f"vgg{depth}-bn-mod-cifar{num_classes}",
        family="mod",
        paper="cnn-mod",
        input_size=CIFAR_INPUT,
        num_classes=num_classes,
        **MOD_REGISTRATION,
    )(builder)


for _depth in VGG_STAGES:
    for _classes in (10, 100):
        _register_vgg_mod(_depth, _classes)
