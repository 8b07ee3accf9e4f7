"""Parameters and MACs of an ONNX graph, for ``count`` and ``profile`` of a ``model.onnx``.

One fused multiply-add counts as one MAC, operator by operator the way fvcore's default handles count the
PyTorch operators they come from ("fvcore: flop_count", fvcore documentation, and
``fvcore.nn.jit_handles``):

- ``Conv``: output elements × (C_in / groups) × kernel elements; ``ConvTranspose``: input elements ×
  (C_out / groups) × kernel elements. The bias adds nothing (fvcore: ``conv_flop_jit``).
- ``Gemm``: M × N × K; ``MatMul``: output elements × K, batched and broadcast (``addmm`` / ``matmul``);
  ``Einsum``: the product of every index's size (one product per point of the iteration space).
- ``BatchNormalization``: 2 per element; ``LayerNormalization`` / ``GroupNormalization`` /
  ``InstanceNormalization``: 5 per element (fvcore's "rough estimate" for affine norms).
- ``GlobalAveragePool`` and ``ReduceMean``: 1 per input element (``adaptive_avg_pool2d``, which PyTorch's
  exporters write as either); ``Resize``: 1 per output element (nearest) or 4 (linear), ``GridSample`` 4.

Data movement and what fvcore ignores (``Reshape``, ``Gather``, ``Concat``, ``Relu``, ``Clip``, comparisons,
...) are free and not reported; every other operator is listed in ``uncounted`` (operator -> nodes), so
nothing is dropped silently. Parameters are the elements of the graph's initializers, except integer
vectors and scalars (shapes, axes, top-k's ``k``), which hold no weights. Exporters fold BatchNorm into the
preceding convolution, so a graph has one bias per channel where PyTorch has BatchNorm's weight and bias:
about 0.1-0.3 % fewer parameters than fvcore's ``parameter_count`` and no BatchNorm MACs, while the
convolutions and matrix products count exactly the same. Measured on ``torch.onnx.export(..., dynamo=True,
opset_version=18)`` exports of ResNet-50, ResNet75-MoD, ResNet18-KW-1×, ResNet18-ODConv-1×, ResNet18-DY-Conv-4×,
ConvNeXt-T, MicroNet-M0 and MobileNetV3-Small: Conv, Gemm and MatMul MACs equal fvcore's conv, linear and mm
counts to the MAC (ResNet-50: 4 087 136 256 conv + 2 048 000 linear), LayerNorm's too.

Why not onnx-tool (the maintained ONNX profiler, version 1.0.1 tried with onnx 1.23): it installs and runs
on our dynamo exports, and its MatMul count matches fvcore exactly, but it counts each bias add as one more
MAC per output element of a Conv or Gemm. That is +0.27 % on ResNet-50 and ResNet75-MoD, but +2.6 % on
MobileNetV3-Small and +18.7 % on MicroNet-M0, whose depthwise and micro-factorised convolutions do only a
few multiply-adds per output element; and its ``loadmodel`` calls ``exit()`` on an invalid file. Counting on
top of ``onnx.shape_inference.infer_shapes`` takes a page and follows fvcore's convention exactly.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convbench.counting.result import CountResult
from convbench.errors import UserInputError

if TYPE_CHECKING:
    import onnx

Shape = tuple[int, ...]
InputShape = tuple[int | None, ...]

# What fvcore ignores, plus the ONNX-only operators that move or describe data without arithmetic.
FREE_OPS = frozenset(
    {
        "Relu",
        "Clip",
        "Max",
        "Min",
        "Gather",
        "GatherElements",
        "GatherND",
        "Concat",
        "Split",
        "Slice",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Expand",
        "Tile",
        "Shape",
        "Size",
        "Cast",
        "CastLike",
        "Constant",
        "ConstantOfShape",
        "Identity",
        "Dropout",
        "Pad",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
        "Not",
        "And",
        "Or",
        "Floor",
        "Range",
        "NonZero",
        "ScatterND",
        "ScatterElements",
        "Where",
        "Mod",
        "ArgMax",
        "ArgMin",
        "TopK",
        "DepthToSpace",
        "SpaceToDepth",
    }
)
NORMS = ("LayerNormalization", "GroupNormalization", "InstanceNormalization")
INTEGER_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})  # uint8 int8 uint16 int16 int32 int64 uint32 uint64


def load_onnx(path: Path | str, *, with_weights: bool = True) -> onnx.ModelProto:
    """The model in ``path``, or a one-line UserInputError when it is missing or not an ONNX model."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ONNX file {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        model = onnx.load(os.fspath(path), load_external_data=with_weights)
    except Exception as exc:  # protobuf's DecodeError, a missing external-data file, an unreadable file
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{path} is not a readable ONNX model: {reason}") from None
    # Protobuf parses many byte strings (an empty file among them) as an empty message, so check for content.
    if not model.HasField("graph") or not model.graph.node or not graph_inputs(model):
        raise UserInputError(f"{path} is not an ONNX model (no graph, nodes or inputs)")
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: older exporters also list every initializer as an input."""
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def graph_input_shape(model: onnx.ModelProto) -> InputShape:
    """The first input's shape; None for a symbolic or unknown dimension."""
    tensor_type = graph_inputs(model)[0].type.tensor_type
    if not tensor_type.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim)


def concrete_shape(graph_shape: InputShape, requested: Sequence[int] | None, source: str) -> Shape:
    """The input shape to count at: ``requested`` where given (it must agree with the graph's fixed
    dimensions), else the graph's own with a symbolic batch dimension taken as 1."""
    if requested is not None:
        requested = tuple(int(d) for d in requested)
        if graph_shape and len(requested) != len(graph_shape):
            raise UserInputError(
                f"{source} takes a {len(graph_shape)}-d input {_show(graph_shape)}, not {_show(requested)}"
            )
        for fixed, wanted in zip(graph_shape, requested, strict=False):
            if fixed is not None and fixed != wanted:
                raise UserInputError(
                    f"{source} has a fixed input shape {_show(graph_shape)}; cannot use {_show(requested)}"
                )
        return requested
    if not graph_shape:
        raise UserInputError(f"the input shape of {source} is not recorded in the graph; give --resolution")
    shape = (graph_shape[0] or 1, *graph_shape[1:])
    if any(d is None for d in shape):
        raise UserInputError(
            f"{source} has a dynamic input shape {_show(graph_shape)}; give --resolution (and --in-chans if not 3)"
        )
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _show(shape: Sequence[int | None]) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)


def count_onnx(path: Path | str, input_shape: Sequence[int] | None = None) -> CountResult:
    """Count ``path`` at ``input_shape`` (default: the graph's, batch 1 where the batch is symbolic)."""
    model = load_onnx(path, with_weights=False)  # initializers keep their dims without their data
    shape = concrete_shape(graph_input_shape(model), input_shape, str(path))
    return count_model(model, shape)


def count_model(model: onnx.ModelProto, input_shape: Shape) -> CountResult:
    """Count a loaded model (see ``count_onnx``)."""
    from onnx import inliner, shape_inference

    params = _parameters(model)
    model = _with_fixed_input(model, input_shape)
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node) and model.functions:
        model = inliner.inline_local_functions(model)  # dynamo exports may keep functions of their own
    try:
        # data_prop carries shapes computed inside the graph (Shape -> Concat -> Reshape) into the Reshape.
        inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # shape inference rejects graphs that contradict the shape given
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"cannot infer the ONNX graph's shapes at input {_show(input_shape)}: {reason}") from None
    shapes = _known_shapes(inferred)
    by_op: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    for node in inferred.graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            if node.op_type not in FREE_OPS:
                uncounted[node.op_type] += 1
        else:
            by_op[node.op_type] += macs
    return CountResult(
        macs=sum(by_op.values()),
        params=params,
        input_shape=tuple(input_shape),
        convention="onnx graph",
        by_operator=dict(by_op),
        uncounted=dict(sorted(uncounted.items())),
        counted_by="onnx",
    )


def _parameters(model: onnx.ModelProto) -> int:
    total = 0
    for init in model.graph.initializer:
        if init.data_type in INTEGER_TYPES and len(init.dims) <= 1:
            continue
        total += math.prod(init.dims)
    return total


def _with_fixed_input(model: onnx.ModelProto, input_shape: Shape) -> onnx.ModelProto:
    """A copy of the graph without weights, whose first input has ``input_shape``: shape inference then
    gives every tensor a concrete shape."""
    import onnx

    light = onnx.ModelProto()
    light.CopyFrom(model)
    for init in light.graph.initializer:  # shapes only need dims; copying the weights costs time and memory
        if init.data_type not in INTEGER_TYPES:
            init.ClearField("raw_data")
            init.ClearField("float_data")
            init.ClearField("double_data")
            init.ClearField("int32_data")
            del init.external_data[:]
            init.data_location = onnx.TensorProto.DEFAULT
    first = graph_inputs(light)[0]
    dims = first.type.tensor_type.shape.dim
    del dims[:]
    for size in input_shape:
        dims.add().dim_value = size
    # Recorded intermediate and output shapes may name the symbolic batch (or a different one): infer afresh.
    del light.graph.value_info[:]
    for output in light.graph.output:
        output.type.tensor_type.ClearField("shape")
    return light


def _known_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def _attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _node_macs(node: onnx.NodeProto, shapes: dict[str, Shape]) -> int | None:
    """MACs of one node; None where the operator is not counted (or its shapes are unknown)."""
    op = node.op_type

    def shape(index: int, outputs: bool = False) -> Shape | None:
        names = node.output if outputs else node.input
        return shapes.get(names[index]) if index < len(names) and names[index] else None

    x, w, out = shape(0), shape(1), shape(0, outputs=True)
    if op == "Conv" and out is not None and w is not None:
        return math.prod(out) * math.prod(w[1:])
    if op == "ConvTranspose" and x is not None and w is not None:
        return math.prod(x) * math.prod(w[1:])
    if op == "Gemm" and x is not None and out is not None and len(x) == 2:
        k = x[0] if _attribute(node, "transA", 0) else x[1]
        return math.prod(out) * k
    if op == "MatMul" and x is not None and out is not None and len(x) >= 1:
        return math.prod(out) * x[-1]
    if op == "Einsum":
        equation = _attribute(node, "equation", b"")
        text = equation.decode() if isinstance(equation, bytes) else str(equation)
        return _einsum_macs(text, [shape(i) for i in range(len(node.input))])
    if op == "BatchNormalization" and x is not None:
        return 2 * math.prod(x)
    if op in NORMS and x is not None:
        return 5 * math.prod(x)
    if op in ("GlobalAveragePool", "ReduceMean") and x is not None:
        return math.prod(x)
    if op == "Resize" and out is not None:
        mode = _attribute(node, "mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        return {"nearest": 1, "linear": 4}.get(mode, 0) * math.prod(out) or None
    if op == "GridSample" and out is not None:
        return 4 * math.prod(out)
    return None


def _einsum_macs(equation: str, shapes: list[Shape | None]) -> int | None:
    operands = equation.replace(" ", "").split("->")[0].split(",")
    if len(operands) < 2 or "..." in equation or len(operands) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for letters, operand_shape in zip(operands, shapes, strict=True):
        if operand_shape is None or len(letters) != len(operand_shape):
            return None
        for letter, size in zip(letters, operand_shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return math.prod(sizes.values())
