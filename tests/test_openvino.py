"""The OpenVINO runtime: parity with ONNX Runtime on the same export, recorded settings, refused settings.

These are the tests of the ``openvino`` extra (``pip install 'convbench[openvino]'``); CI installs it, so they
run rather than skip. Marked ``openvino`` so they can be selected or deselected together (``-m openvino``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from convbench.errors import UserInputError
from convbench.options import from_mapping
from convbench.runtimes import runtime_class
from convbench.runtimes.base import PreparedModel, RunSettings

pytestmark = pytest.mark.openvino

SHAPE = (1, 3, 32, 32)


def _settings(**changes: object) -> RunSettings:
    return RunSettings(**{"device": "cpu", "threads": 1, "input_shape": SHAPE, **changes})  # type: ignore[arg-type]


def _prepare(settings: RunSettings, **options: object) -> PreparedModel:
    from convbench.models.spec import resolve_model
    from convbench.runtimes.openvino import OpenVINOOptions

    runtime = runtime_class("openvino", "cpu")()
    return runtime.prepare(resolve_model("resnet18-cifar10"), settings, OpenVINOOptions(**options))


@pytest.fixture(scope="module")
def prepared() -> Iterator[PreparedModel]:
    model = _prepare(_settings())
    yield model
    model.close()


def test_openvino_matches_onnxruntime_on_the_same_export(prepared: PreparedModel) -> None:
    row = prepared.settings()
    assert 0 <= row["openvino_max_abs_diff"] <= row["openvino_tolerance"]  # type: ignore[operator]
    assert row["openvino_tolerance"] < 1e-2  # fp32: the export's tolerance, not the reduced-precision one
    assert set(prepared.phases.seconds) == {"export", "compile"}
    assert 0 < prepared.timed_run() < 5


def test_openvino_records_what_ran(prepared: PreparedModel) -> None:
    import openvino as ov

    row = prepared.settings()
    assert row["intra_op_threads"] == 1
    assert row["ov_hint"] == "latency" and row["ov_performance_hint"] == "LATENCY"
    assert row["ov_num_streams"] == 1
    assert row["precision"] == "fp32" and row["ov_inference_precision"] == "f32"
    assert row["openvino"] == ov.get_version()
    assert row["exporter"] == "dynamo"


def test_openvino_bf16_where_the_cpu_has_it() -> None:
    from convbench.runtimes.openvino import cpu_capabilities

    if "BF16" not in cpu_capabilities():
        pytest.skip("this CPU has no native bf16 (OpenVINO OPTIMIZATION_CAPABILITIES)")
    model = _prepare(_settings(precision="bf16"))
    try:
        row = model.settings()
        assert row["ov_inference_precision"] == "bf16"
        assert row["openvino_max_abs_diff"] <= row["openvino_tolerance"]  # type: ignore[operator]
    finally:
        model.close()


def test_openvino_refuses_a_precision_it_does_not_have() -> None:
    with pytest.raises(UserInputError, match=r"runtime openvino: --precision int4 is not supported"):
        _prepare(_settings(precision="int4"))


def test_openvino_refuses_bf16_on_a_cpu_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from convbench.runtimes import openvino

    monkeypatch.setattr(openvino, "cpu_capabilities", lambda: ("FP32", "INT8"))
    with pytest.raises(UserInputError, match=r"runtime openvino: --precision bf16 needs a CPU with native BF16"):
        runtime_class("openvino", "cpu")().check(_settings(precision="bf16"), openvino.OpenVINOOptions())


def test_openvino_refuses_more_streams_than_threads() -> None:
    with pytest.raises(UserInputError, match=r"runtime openvino: --ov-streams 2 is more than --threads 1"):
        _prepare(_settings(), ov_streams=2)


def test_openvino_option_values_are_checked_where_given() -> None:
    from convbench.runtimes.openvino import OpenVINOOptions

    with pytest.raises(UserInputError, match=r"--ov-hint must be one of latency, throughput \(openvino\)"):
        from_mapping(OpenVINOOptions, {"ov_hint": "fastest"})
    with pytest.raises(UserInputError, match=r"--ov-streams must be 0 .*\(openvino\)"):
        from_mapping(OpenVINOOptions, {"ov_streams": -1})
