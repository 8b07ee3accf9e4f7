import math

import onnx
import pytest

from convbench.errors import ConvbenchError, UserInputError
from convbench.export import export_onnx


def test_export_verifies_parity_and_caches(tmp_path):
    first = export_onnx("resnet18-mod-cifar10", use_cache=False)
    assert first.max_abs_diff <= first.tolerance
    assert not first.cached
    onnx.checker.check_model(str(first.path))
    assert not list(first.path.parent.glob("*.data")), "weights are folded into one file"
    second = export_onnx("resnet18-mod-cifar10")
    assert second.cached and second.path == first.path


def test_output_copy_is_a_self_contained_model(tmp_path):
    target = tmp_path / "model.onnx"
    result = export_onnx("resnet18-mod-cifar10", output=target)
    assert result.path == target
    assert onnx.load(str(target)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_corrupted_cache_entry_is_exported_again():
    result = export_onnx("vgg16-bn-mod-cifar10")
    result.path.write_bytes(b"not an onnx file")
    again = export_onnx("vgg16-bn-mod-cifar10")
    assert not again.cached
    onnx.checker.check_model(str(again.path))


def test_torchscript_exporter_and_batch_size():
    result = export_onnx("resnet18-cifar10", exporter="torchscript", batch_size=2)
    assert result.input_shape == (2, 3, 32, 32)
    assert result.max_abs_diff <= result.tolerance


def test_stochastic_model_is_checked_for_shape_only():
    result = export_onnx("resnet50-mod-rand", resolution=32)
    assert math.isnan(result.max_abs_diff)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exporter": "tflite"}, "unknown exporter"),
        ({"batch_size": 0}, "batch size"),
        ({"resolution": 2}, "resolution"),
        ({"output": "/etc/passwd/model.onnx"}, "cannot write"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, message):
    from pathlib import Path

    if "output" in kwargs:
        kwargs["output"] = Path(kwargs["output"])
    with pytest.raises(UserInputError, match=message):
        export_onnx("resnet18-cifar10", **kwargs)


def test_export_failure_is_reported_in_one_line(monkeypatch):
    import convbench.export as export

    def boom(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::foo\nlong trace")

    monkeypatch.setattr(export, "_export", boom)
    with pytest.raises(
        ConvbenchError, match=r"export of resnet18-cifar10 .* failed: unsupported operator aten::foo$"
    ):
        export_onnx("resnet18-cifar10", use_cache=False)
