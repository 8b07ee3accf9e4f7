"""MACs and parameters counted on ONNX graphs: hand-built graphs with known counts, and an export of a
registered model checked against fvcore's count of the PyTorch model."""

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from convbench.counting.macs import count_module
from convbench.counting.onnx_graph import count_onnx
from convbench.errors import UserInputError
from convbench.models import create_model
from convbench.models.sources import onnx_fixed_batch
from convbench.models.spec import ModelSpec, resolve_model


def _weight(name, *shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _save(tmp_path, nodes, inputs, outputs, initializers, name="graph.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _conv_graph(tmp_path, batch="N", height=8, width=8, name="conv.onnx"):
    # x: N×4×8×8 -> grouped 3×3 conv (groups 2, 6 out) -> 1×1 conv (bias) -> mean -> flatten -> Gemm 6->5
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, height, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2", "b2"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["d"]),
        helper.make_node("Flatten", ["d"], ["e"]),
        helper.make_node("Gemm", ["e", "fc", "fcb"], ["y"], transB=1),
    ]
    inits = [
        _weight("w1", 6, 2, 3, 3),
        _weight("w2", 6, 6, 1, 1),
        _weight("b2", 6),
        _weight("fc", 5, 6),
        _weight("fcb", 5),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "shape_like"),
    ]
    return _save(tmp_path, nodes, [x], [y], inits, name)


CONV1 = 6 * 8 * 8 * 2 * 3 * 3  # output elements × Cin/groups × kernel
CONV2 = 6 * 8 * 8 * 6  # the bias adds nothing
POOL = 6 * 8 * 8  # one per input element
GEMM = 5 * 6
PARAMS = 6 * 2 * 9 + 36 + 6 + 30 + 5  # the int64 vector is no parameter


def test_hand_built_graph_counts_exactly_and_symbolic_batch_is_one(tmp_path):
    result = count_onnx(_conv_graph(tmp_path))
    assert result.input_shape == (1, 4, 8, 8)
    assert result.by_operator == {"Conv": CONV1 + CONV2, "GlobalAveragePool": POOL, "Gemm": GEMM}
    assert result.conv_macs == CONV1 + CONV2
    assert result.macs == CONV1 + CONV2 + POOL + GEMM
    assert result.params == PARAMS
    assert result.uncounted == {}  # Relu and Flatten are free, as in fvcore
    assert result.gmacs == pytest.approx(result.macs / 1e9) and result.mparams == pytest.approx(PARAMS / 1e6)


def test_count_scales_with_a_given_batch_and_rejects_a_conflicting_shape(tmp_path):
    path = _conv_graph(tmp_path)
    assert count_onnx(path, (3, 4, 8, 8)).macs == 3 * (CONV1 + CONV2 + POOL + GEMM)
    with pytest.raises(UserInputError, match=r"fixed input shape"):
        count_onnx(path, (1, 4, 16, 16))
    with pytest.raises(UserInputError, match=r"4-d input"):
        count_onnx(path, (1, 4, 8))


def test_dynamic_spatial_size_needs_a_shape(tmp_path):
    path = _conv_graph(tmp_path, height="H", width="W")
    with pytest.raises(UserInputError, match=r"dynamic input shape .*--resolution"):
        count_onnx(path)
    assert count_onnx(path, (1, 4, 8, 8)).conv_macs == CONV1 + CONV2
    assert count_onnx(path, (1, 4, 16, 16)).conv_macs == 4 * (CONV1 + CONV2)


def test_matmul_einsum_conv_transpose_and_uncounted_ops(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 4, 5])
    out = helper.make_tensor_value_info("t", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("MatMul", ["a", "m"], ["p"]),  # 2×3 batches of (4×5)·(5×7): 2·3·4·7·5
        helper.make_node("Einsum", ["p", "e"], ["q"], equation="bcij,jk->bcik"),  # 2·3·4·7·6
        helper.make_node("Sigmoid", ["q"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "ct"], ["t"], strides=[2, 2]),  # input elems × Cout × k
    ]
    inits = [_weight("m", 5, 7), _weight("e", 7, 6), _weight("ct", 3, 2, 2, 2)]
    result = count_onnx(_save(tmp_path, nodes, [a], [out], inits), None)
    assert result.by_operator["MatMul"] == 2 * 3 * 4 * 7 * 5
    assert result.by_operator["Einsum"] == 2 * 3 * 4 * 7 * 6
    assert result.by_operator["ConvTranspose"] == (2 * 3 * 4 * 6) * 2 * 2 * 2
    assert result.conv_macs == result.by_operator["ConvTranspose"]
    assert result.uncounted == {"Sigmoid": 1}


def test_an_onnx_file_counts_like_a_pytorch_model_scaled_to_the_batch_asked(tmp_path):
    """Catches the two counters' results drifting apart again: the conv MACs of a file-given model lost (read
    under fvcore's name "conv" only) or counted twice (both names kept), or a file fixed to batch 2 not scaled
    to the batch 4 that was asked for."""
    from convbench.counting.macs import count
    from convbench.counting.result import CountResult

    path = _conv_graph(tmp_path, batch=2)
    result = count(str(path), batch_size=4, use_cache=False)
    assert isinstance(result, CountResult) and result.counted_by == "onnx"
    assert result.input_shape == (4, 4, 8, 8)
    assert result.conv_macs == 4 * (CONV1 + CONV2)
    assert result.macs == sum(result.by_operator.values()) == 4 * (CONV1 + CONV2 + POOL + GEMM)
    assert "counted at the file's batch 2 and scaled to 4" in result.convention


@pytest.mark.parametrize("content", [b"", b"certainly not protobuf \xff\xfe\x00\x01"])
def test_files_that_are_not_onnx_fail_in_one_line(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=r"broken\.onnx") as info:
        count_onnx(path)
    assert "\n" not in str(info.value)
    with pytest.raises(UserInputError, match=r"broken\.onnx"):
        resolve_model(str(path))


def test_missing_onnx_file(tmp_path):
    with pytest.raises(UserInputError, match=r"does not exist"):
        count_onnx(tmp_path / "absent.onnx")
    with pytest.raises(UserInputError, match=r"does not exist"):
        resolve_model(str(tmp_path / "absent.onnx"))


@pytest.fixture(scope="module")
def cifar_export(tmp_path_factory):
    """resnet18-cifar10 exported the way convbench exports (dynamo, opset 18), and fvcore's count of it."""
    module = create_model("resnet18-cifar10")
    example = torch.randn(1, 3, 32, 32)
    path = tmp_path_factory.mktemp("onnx") / "resnet18-cifar10.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path), dynamo=True, opset_version=18, external_data=False, verbose=False
        )
    return path, count_module(module, (1, 3, 32, 32), convention="fvcore")


def test_resolved_onnx_file_takes_its_input_size_from_the_graph(cifar_export):
    path, _ = cifar_export
    resolved = resolve_model(str(path))
    assert resolved.kind == "onnx" and resolved.family == "onnx" and resolved.builder is None
    assert resolved.input_size == (3, 32, 32) and resolved.num_classes == 10
    assert resolved.onnx_path == path and len(resolved.digest) == 16
    with pytest.raises(UserInputError, match=r"fixed input size 32×32"):
        resolve_model(str(path), resolution=64)
    with pytest.raises(UserInputError, match=r"PyTorch model"):
        resolved.build()


def test_export_agrees_with_fvcore(cifar_export):
    """Convolutions, pooling and the classifier to the MAC (0.5557 GMACs); the exporter folds BatchNorm into
    the convolutions, so the graph's total is fvcore's without BatchNorm (0.22 % lower), and it has one bias
    per channel instead of BatchNorm's weight and bias (11 169 162 parameters against 11 173 962: 0.04 %)."""
    path, fvcore = cifar_export
    result = count_onnx(path)
    assert result.conv_macs == fvcore.by_operator["conv"]
    assert result.by_operator["Gemm"] == fvcore.by_operator["linear"]
    assert result.macs == fvcore.macs - fvcore.by_operator["batch_norm"]
    assert result.macs == pytest.approx(fvcore.macs, rel=5e-3)
    assert result.params == pytest.approx(fvcore.params, rel=1e-3)
    assert result.input_shape == (1, 3, 32, 32)


def test_resolving_a_graph_with_symbolic_dimensions(tmp_path):
    symbolic_batch = resolve_model(str(_conv_graph(tmp_path)))
    assert symbolic_batch.input_size == (4, 8, 8) and symbolic_batch.num_classes == 5
    assert onnx_fixed_batch(symbolic_batch.onnx_path) is None
    assert onnx_fixed_batch(_conv_graph(tmp_path, batch=2, name="b2.onnx")) == 2
    dynamic = str(_conv_graph(tmp_path, height="H", width="W", name="dyn.onnx"))
    with pytest.raises(UserInputError, match=r"no fixed input shape; give --resolution"):
        resolve_model(dynamic)
    assert resolve_model(dynamic, resolution=16).input_size == (4, 16, 16)
    with pytest.raises(UserInputError, match=r"takes 4 input channels, not --in-chans 3"):
        resolve_model(dynamic, resolution=16, in_chans=3)
    with pytest.raises(UserInputError, match=r"no arguments"):
        resolve_model(ModelSpec(dynamic, (("width", 2),)), resolution=16)


def test_local_functions_are_counted_inside(tmp_path):
    # Exporters may wrap modules in local functions; their convolutions count like top-level ones.
    block = helper.make_function(
        "blocks",
        "ConvRelu",
        ["x", "w"],
        ["y"],
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [helper.make_node("ConvRelu", ["x", "w"], ["y"], domain="blocks")], "g", [x], [y], [_weight("w", 3, 2, 3, 3)]
    )
    model = helper.make_model(
        graph, functions=[block], opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("blocks", 1)]
    )
    onnx.save(model, tmp_path / "functions.onnx")
    assert count_onnx(tmp_path / "functions.onnx").by_operator == {"Conv": 3 * 5 * 5 * 2 * 3 * 3}


# A bring-your-own ONNX file at another batch, and inputs that are not float32 ------------------------------


def test_a_fixed_batch_file_is_refused_at_another_batch_in_one_line(tmp_path):
    """Fails when the file reaches ONNX Runtime at the wrong batch and dies there with a raw shape error."""
    from convbench.export import export_for_runtime
    from convbench.runtimes.base import RunSettings

    path = _conv_graph(tmp_path, batch=2, name="b2.onnx")
    model = resolve_model(str(path))
    with pytest.raises(UserInputError) as info:
        export_for_runtime(model, RunSettings(device="cpu", threads=1, input_shape=(4, 4, 8, 8)))
    message = str(info.value)
    assert "fixed to batch size 2" in message and "--batch-size 4" in message and str(path) in message
    assert "\n" not in message
    assert export_for_runtime(model, RunSettings(device="cpu", threads=1, input_shape=(2, 4, 8, 8))).path == path


def test_a_fixed_batch_file_is_counted_at_its_batch_and_scaled_per_image(tmp_path):
    """Fails when a file fixed to batch 2 cannot be counted at all (counting asks for batch 1), or when its
    counts are not per image like every other model's."""
    from convbench.counting.macs import count

    result = count(str(_conv_graph(tmp_path, batch=2, name="b2.onnx")), use_cache=False)
    assert result.macs == CONV1 + CONV2 + POOL + GEMM and result.params == PARAMS
    assert result.input_shape == (1, 4, 8, 8)
    assert "counted at the file's batch 2" in result.convention
    symbolic = count(str(_conv_graph(tmp_path)), use_cache=False)
    assert symbolic.macs == result.macs and "batch" not in symbolic.convention


def _typed_graph(tmp_path, elem_type, name):
    """x (elem_type) -> Cast to float -> 1×1 conv: a model whose input is not float32."""
    x = helper.make_tensor_value_info("x", elem_type, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT), helper.make_node("Conv", ["f", "w"], ["y"])]
    return _save(tmp_path, nodes, [x], [y], [_weight("w", 3, 2, 1, 1)], name)


@pytest.mark.parametrize(
    ("elem_type", "dtype"),
    [(TensorProto.FLOAT16, np.float16), (TensorProto.UINT8, np.uint8), (TensorProto.FLOAT, np.float32)],
)
def test_onnx_runtime_feeds_the_files_input_type(tmp_path, elem_type, dtype):
    """Fails with ONNX Runtime's "Unexpected input data type" when every input is fed float32."""
    from convbench.export import export_for_runtime
    from convbench.runtimes.base import RunSettings
    from convbench.runtimes.onnxruntime import OnnxRuntimeModel

    model = resolve_model(str(_typed_graph(tmp_path, elem_type, f"t{elem_type}.onnx")))
    prepared = OnnxRuntimeModel(
        export_for_runtime(model, RunSettings(device="cpu", threads=1, input_shape=(1, 2, 4, 4))), 1
    )
    (feed,) = prepared.feeds.values()
    assert feed.dtype == dtype and feed.shape == (1, 2, 4, 4)
    assert prepared.session.run(None, prepared.feeds)[0].shape == (1, 3, 4, 4)  # the model takes it
    if dtype == np.uint8:
        assert feed.min() >= 0 and feed.max() <= 255 and len(np.unique(feed)) > 10  # pixel-like values


def test_openvino_feeds_the_files_input_type(tmp_path):
    from convbench.export import ExportResult
    from convbench.models.inputs import seeded_input
    from convbench.models.sources import onnx_input_dtype
    from convbench.runtimes.openvino import input_dtype

    path = _typed_graph(tmp_path, TensorProto.FLOAT16, "half.onnx")
    assert onnx_input_dtype(path) == np.float16
    exported = ExportResult(path, "half", (1, 2, 4, 4), "file", 18, float("nan"), float("nan"), 0.0, True)
    assert seeded_input((1, 2, 4, 4), input_dtype(exported)).dtype == np.float16
    own = ExportResult(path, "m", (1, 2, 4, 4), "dynamo", 18, 0.0, 0.0, 0.0, True)
    assert input_dtype(own) == "float32"  # convbench's own exports take float32; the file is not read


def test_an_input_type_convbench_cannot_feed_is_one_line(tmp_path):
    from convbench.models.sources import onnx_input_dtype

    x = helper.make_tensor_value_info("x", TensorProto.STRING, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, [1, 2, 4, 4])
    path = _save(tmp_path, [helper.make_node("Identity", ["x"], ["y"])], [x], [y], [], "text.onnx")
    with pytest.raises(UserInputError, match=r"takes string input"):
        onnx_input_dtype(path)
