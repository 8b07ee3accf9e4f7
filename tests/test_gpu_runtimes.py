"""ONNX Runtime's CUDA and TensorRT runtimes without a GPU: selecting them, refusing a CPU fallback in one line
that names what is missing, the provider options they pass, and their IO-binding timing path on the CPU provider.

This machine has the CPU-only ``onnxruntime``, so the real ONNX Runtime is used where it shows the behaviour (it
silently drops a provider it does not have); a fake session stands in only where a GPU build's loader failure
is needed.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from convbench.benchmark import config_from_mapping
from convbench.cli.main import app
from convbench.errors import UserInputError
from convbench.export import ExportResult
from convbench.models.inputs import seeded_input
from convbench.runtimes import RunSettings, runtime_class
from convbench.runtimes import onnxruntime_cuda as oc
from convbench.runtimes import onnxruntime_trt as ot
from convbench.runtimes.base import SetupPhases

SETTINGS = RunSettings(device="cuda", threads=1, input_shape=(2, 3, 8, 8))
TINY = ["--trials", "1", "--runs", "1", "--min-time", "0", "--warmup", "0", "--warmup-time", "0", "--threads", "1"]
BOTH = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}


def tiny_onnx(path: Path, batch: int | str = 2) -> ExportResult:
    """A one-convolution ONNX model with fixed weights (``batch`` a string: a symbolic batch dimension)."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])],
        initializer=[weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return ExportResult(path, "tiny", (2, 3, 8, 8), "file", 13, float("nan"), float("nan"), 0.0, True)


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message, message
    return message


# Selection through the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "provider"),
    [("onnxruntime-cuda", "CUDAExecutionProvider"), ("onnxruntime-trt", "TensorrtExecutionProvider")],
)
def test_cli_refuses_the_cpu_only_build_in_one_line_before_exporting(runtime, provider, tmp_path, monkeypatch):
    """A GPU is pretended so the device check passes: the provider check must refuse the CPU-only onnxruntime
    itself (not leave it to ONNX Runtime, which would time the model on the CPU), and before any export."""
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    result = CliRunner().invoke(
        app, ["profile", "resnet18-cifar10", "--runtime", runtime, "--device", "cuda", "--no-save", *TINY]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert provider in lines[0] and "CPU-only" in lines[0]
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu" in lines[0]
    assert not (tmp_path / "cache" / "onnx").exists()  # refused before the export, not after


def test_options_are_flags_of_their_runtimes_only():
    """A bug that registers the options on the wrong class, or lets fp16 through on the CUDA provider (which would
    silently time fp32), shows here."""
    with pytest.raises(UserInputError) as info:
        config_from_mapping({"runtime": "onnxruntime", "device": "cpu", "ort_cuda_graph": True})
    assert "it applies to onnxruntime-cuda on cuda, onnxruntime-trt on cuda" in one_line(info)
    with pytest.raises(UserInputError, match="--precision fp16 is not supported by runtime onnxruntime-cuda"):
        config_from_mapping({"runtime": "onnxruntime-cuda", "device": "cuda", "precision": "fp16"})
    with pytest.raises(UserInputError, match="--trt-opt-level must be between 0 and 5"):
        config_from_mapping({"runtime": "onnxruntime-trt", "device": "cuda", "trt_opt_level": 6})
    config = config_from_mapping(
        {"runtime": "onnxruntime-trt", "device": "cuda", "precision": "fp16", "trt_opt_level": 5}
    )
    options = config.runtime_options()
    assert isinstance(options, ot.OrtTensorRTOptions) and options.trt_opt_level == 5
    assert runtime_class("onnxruntime-cuda", "cuda").runs_onnx


# Provider availability --------------------------------------------------------------------------------------


def test_installed_distributions_reads_package_metadata(monkeypatch):
    """The distributions, not the module: both builds install the same ``onnxruntime`` module."""
    found = oc.installed_distributions()
    assert found.get("onnxruntime") == ort.__version__ and "onnxruntime-gpu" not in found
    versions = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}

    def fake_version(name):
        if name in versions:
            return versions[name]
        raise oc.PackageNotFoundError(name)

    monkeypatch.setattr(oc, "package_version", fake_version)
    assert oc.installed_distributions() == versions
    assert oc.ort_version() == "onnxruntime-gpu 1.31.1, onnxruntime 1.32.0"  # the GPU build named first


def test_both_builds_installed_is_named_with_a_fix_that_keeps_the_gpu_build(monkeypatch):
    """Uninstalling only ``onnxruntime`` would delete files the GPU build shares: the fix removes both."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(oc, "installed_distributions", lambda: dict(BOTH))
    with pytest.raises(UserInputError) as info:
        runtime_class("onnxruntime-cuda", "cuda")().check(SETTINGS, oc.OrtCudaOptions())
    message = one_line(info)
    assert "both 'onnxruntime' 1.32.0" in message and "'onnxruntime-gpu' 1.31.1 are installed" in message
    assert message.endswith("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")


@pytest.mark.parametrize(
    ("dists", "expected"),
    [
        ({"onnxruntime": "1.32.0"}, "(the CPU-only build) lacks; install the GPU build in its place: pip uninstall"),
        ({"onnxruntime-gpu": "1.31.1"}, "pip install --force-reinstall onnxruntime-gpu"),
        ({"onnxruntime-openvino": "1.22.0"}, "pip uninstall -y onnxruntime-openvino && pip install onnxruntime-gpu"),
    ],
)
def test_each_installed_build_gets_its_own_fix(dists, expected):
    message = oc.provider_unavailable("onnxruntime-cuda", oc.CUDA_PROVIDER, ["CPUExecutionProvider"], dists)
    assert expected in message and "\n" not in message


def test_check_accepts_a_build_that_has_the_provider(monkeypatch):
    """The refusal must depend on the providers, not on which distribution name is installed."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    runtime_class("onnxruntime-cuda", "cuda")().check(SETTINGS, oc.OrtCudaOptions())


# Refusing the fallback when the session is created ---------------------------------------------------------


def test_the_real_onnxruntime_dropping_the_provider_is_refused(tmp_path):
    """ONNX Runtime here creates the session on the CPU provider without raising; only get_providers() shows it."""
    exported = tiny_onnx(tmp_path / "m.onnx")
    providers = [(oc.CUDA_PROVIDER, oc.cuda_provider_options(oc.OrtCudaOptions())), (oc.CPU_PROVIDER, {})]
    with pytest.raises(UserInputError) as info:
        oc.open_session(str(exported.path), oc.gpu_session_options(1, "all"), providers, "x", oc.CUDA_PROVIDER)
    message = one_line(info)
    assert "could not load its CUDAExecutionProvider" in message and message.endswith("(loaded: CPUExecutionProvider)")


def test_prepare_refuses_the_fallback_too(tmp_path, monkeypatch):
    """Trial workers call prepare without the parent's check: the session check must hold there as well."""
    exported = tiny_onnx(tmp_path / "m.onnx")
    monkeypatch.setattr(oc, "require_available", lambda runtime, provider: None)
    monkeypatch.setattr("convbench.export.export_for_runtime", lambda model, settings: exported)
    with pytest.raises(UserInputError, match=r"\(loaded: CPUExecutionProvider\)$"):
        oc.OnnxRuntimeCUDA().prepare(SimpleNamespace(), SETTINGS, oc.OrtCudaOptions())


class FakeSession:
    """An InferenceSession of a GPU build whose provider failed to load: ONNX Runtime logs the loader's error
    on the native stderr and carries on with the CPU provider."""

    calls: ClassVar[list[dict]] = []
    log = (
        b"2026-01-01 [E:onnxruntime:Default, provider_bridge_ort.cc:2167 TryGetProviderInfo_CUDA] FAIL : Failed to "
        b"load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: "
        b"No such file or directory\n"
        b"2026-01-01 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1047 CreateExecutionProviderInstance] "
        b"Failed to create CUDAExecutionProvider.\n"
    )

    def __init__(self, path, options, providers=None, **kwargs):
        FakeSession.calls.append({"providers": providers, **kwargs})
        os.write(2, self.log)

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_a_provider_that_failed_to_load_is_refused_naming_the_library(monkeypatch, capfd):
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(oc, "ort_cuda_major", lambda: 13)
    FakeSession.calls.clear()
    with pytest.raises(UserInputError) as info:
        oc.open_session("m.onnx", None, [(oc.CUDA_PROVIDER, {})], "onnxruntime-cuda", oc.CUDA_PROVIDER)
    message = one_line(info)
    assert "(libcudnn.so.9 not found)" in message and "pip install nvidia-cudnn-cu13" in message
    assert FakeSession.calls[0]["enable_fallback"] == 0  # the wrapper's own retry on the CPU is off
    assert "libcudnn" not in capfd.readouterr().err  # the log was captured, not left on the terminal


def test_a_loader_error_raised_while_creating_the_session_is_one_line(monkeypatch):
    def raising(path, options, providers=None, **kwargs):
        raise RuntimeError(
            "[ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_tensorrt.so with "
            "error: libnvinfer.so.10: cannot open shared object file: No such file or directory"
        )

    monkeypatch.setattr(ort, "InferenceSession", raising)
    monkeypatch.setattr(oc, "ort_cuda_major", lambda: 13)
    with pytest.raises(UserInputError) as info:
        oc.open_session("m.onnx", None, [], "onnxruntime-trt", oc.TENSORRT_PROVIDER)
    message = one_line(info)
    assert "could not load its TensorrtExecutionProvider (libnvinfer.so.10 not found)" in message
    assert "pip install 'tensorrt-cu13-libs>=10,<11'" in message


def test_other_session_errors_are_not_disguised_as_missing_libraries(monkeypatch):
    """An out-of-memory error must reach the trial as itself, where it becomes that model's recorded failure."""

    def raising(path, options, providers=None, **kwargs):
        raise RuntimeError("CUDA failure 2: out of memory")

    monkeypatch.setattr(ort, "InferenceSession", raising)
    with pytest.raises(RuntimeError, match="out of memory"):
        oc.open_session("m.onnx", None, [], "onnxruntime-cuda", oc.CUDA_PROVIDER)


@pytest.mark.parametrize(
    ("text", "library"),
    [
        ("Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared "
         "object file: No such file or directory", "libcublasLt.so.13"),
        ("libnvinfer.so.10: cannot open shared object file: No such file or directory", "libnvinfer.so.10"),
        ("Failed to create CUDAExecutionProvider. Require cuDNN 9.* and CUDA 13.*", None),
    ],
)  # fmt: skip
def test_missing_library_is_the_one_the_loader_missed_not_the_provider(text, library):
    assert oc.missing_library(text) == library


def test_native_stderr_is_captured_and_restored(capfd):
    with oc.native_stderr() as log:
        os.write(2, b"from native code\n")
    os.write(2, b"after\n")
    assert log == ["from native code\n"]
    assert capfd.readouterr().err == "after\n"


def test_warnings_are_kept_for_the_row():
    text = (
        "x [W:onnxruntime:, transformer_memcpy.cc:74 ApplyImpl] 2 Memcpy nodes are added to the graph\n"
        "x [W:onnxruntime:, transformer_memcpy.cc:74 ApplyImpl] 2 Memcpy nodes are added to the graph\n"
        "x [E:onnxruntime:, x.cc:1 F] an error\n"
    )
    assert oc.warnings_of(text) == "2 Memcpy nodes are added to the graph"


# Provider options -------------------------------------------------------------------------------------------


def test_cuda_options_map_to_provider_options():
    """TF32 off by default (ONNX Runtime's own default is on), each flag to its provider key."""
    assert oc.cuda_provider_options(oc.OrtCudaOptions()) == {
        "device_id": "0",
        "use_tf32": "0",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "enable_cuda_graph": "0",
        "prefer_nhwc": "0",
    }
    changed = oc.OrtCudaOptions(ort_cuda_graph=True, ort_tf32=True, ort_cudnn_conv_algo="heuristic", ort_nhwc=True)
    assert oc.cuda_provider_options(changed) == {
        "device_id": "0",
        "use_tf32": "1",
        "cudnn_conv_algo_search": "HEURISTIC",
        "enable_cuda_graph": "1",
        "prefer_nhwc": "1",
    }


def test_tensorrt_options_map_to_provider_options(tmp_path):
    fp32 = ot.trt_provider_options(ot.OrtTensorRTOptions(trt_engine_cache=False), "fp32", None)
    assert fp32 == {
        "device_id": "0",
        "trt_fp16_enable": "0",
        "trt_builder_optimization_level": "3",
        "trt_cuda_graph_enable": "0",
        "trt_engine_cache_enable": "0",
        "trt_timing_cache_enable": "0",
    }
    fp16 = ot.trt_provider_options(ot.OrtTensorRTOptions(ort_cuda_graph=True, trt_opt_level=5), "fp16", tmp_path)
    assert fp16["trt_fp16_enable"] == "1" and fp16["trt_cuda_graph_enable"] == "1"
    assert fp16["trt_builder_optimization_level"] == "5"
    assert fp16["trt_engine_cache_enable"] == "1" and fp16["trt_engine_cache_path"] == str(tmp_path)
    assert fp16["trt_timing_cache_path"] == str(tmp_path)


def test_engine_cache_folder_is_in_convbench_cache_and_keyed_by_precision(tmp_path, monkeypatch):
    """An fp32 engine reused for an fp16 run (or another optimisation level) would time the wrong engine."""
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    exported = tiny_onnx(tmp_path / "m.onnx")
    options = ot.OrtTensorRTOptions()
    fp32 = ot.engine_folder(exported, "fp32", options)
    assert fp32.is_dir() and fp32.parent == tmp_path / "cache" / "tensorrt"
    assert ot.engine_folder(exported, "fp32", options) == fp32
    assert ot.engine_folder(exported, "fp16", options) != fp32
    assert ot.engine_folder(exported, "fp32", ot.OrtTensorRTOptions(trt_opt_level=5)) != fp32


# TensorRT libraries -----------------------------------------------------------------------------------------


def test_missing_tensorrt_is_refused_at_check_naming_libnvinfer(monkeypatch):
    """No TensorRT is installed here: the real loader's error must come back as one line with the pin that fits
    the provider (TensorRT 10), before anything is exported."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ot, "required_tensorrt_major", lambda: 10)
    monkeypatch.setattr(ot, "ort_cuda_major", lambda: 13)
    monkeypatch.setattr(ot, "tensorrt_wheel_folder", lambda: None)
    with pytest.raises(UserInputError) as info:
        runtime_class("onnxruntime-trt", "cuda")().check(SETTINGS, ot.OrtTensorRTOptions())
    message = one_line(info)
    assert "needs libnvinfer.so.10, which cannot be loaded" in message
    assert "pip install 'tensorrt-cu13-libs>=10,<11'" in message


def test_tensorrt_wheel_libraries_of_the_right_major_are_loaded_by_path(tmp_path, monkeypatch):
    """pip's TensorRT libraries are not on the loader path; loading a wrong major (11 for a provider built for 10)
    would still leave libnvinfer.so.10 missing."""
    for name in ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10", "libnvinfer.so.11"):
        (tmp_path / name).write_bytes(b"")
    loaded = []
    monkeypatch.setattr(ot, "tensorrt_wheel_folder", lambda: tmp_path)
    monkeypatch.setattr(ot.ctypes, "CDLL", lambda name, mode=0: loaded.append((name, mode)))
    assert ot.load_tensorrt(10) == str(tmp_path)
    by_path = [name for name, mode in loaded if "/" in name]
    assert by_path == [
        str(tmp_path / n) for n in ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10")
    ]
    assert all(mode == ctypes.RTLD_GLOBAL for _, mode in loaded)
    assert loaded[-1][0] == "libnvinfer.so.10"  # then opened by name, as the provider will


def test_required_tensorrt_major_is_read_from_the_provider_library(tmp_path, monkeypatch):
    (tmp_path / "capi").mkdir()
    (tmp_path / "capi" / "libonnxruntime_providers_tensorrt.so").write_bytes(b"\x7fELF\0libnvinfer.so.10\0libc.so.6")
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "onnxruntime":
            return SimpleNamespace(submodule_search_locations=[str(tmp_path)])
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert ot.required_tensorrt_major() == 10


# The IO-binding timing path, on the CPU provider ------------------------------------------------------------


def device_model(exported, cuda_graph=False):
    return oc.OrtDeviceModel(
        exported,
        SETTINGS,
        runtime="test",
        providers=[(oc.CPU_PROVIDER, {})],
        required=oc.CPU_PROVIDER,
        optimization="all",
        cuda_graph=cuda_graph,
        phases=SetupPhases(),
        record={"runtime": "test"},
        ort_device="cpu",
    )


def test_bound_input_and_preallocated_output_give_the_model_output(tmp_path):
    """The same code binds on cuda; here on the CPU provider, the bound output must hold the model's result."""
    exported = tiny_onnx(tmp_path / "m.onnx")
    model = device_model(exported)
    try:
        assert model.timed_run() > 0 and model.cold_run is not None
        x = seeded_input(exported.input_shape)  # the input every runtime feeds
        reference = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
        out = model.binding.get_outputs()[0].numpy()
        np.testing.assert_allclose(out, reference[0], rtol=1e-5, atol=1e-5)
        row = model.settings()
        assert row["providers"] == "CPUExecutionProvider" and row["cold_run_ms"] > 0
        assert set(model.phases.seconds) == {"session", "transfer"}
        assert model.host_threads(8) == 1
    finally:
        model.close()
    with pytest.raises(RuntimeError, match="closed"):
        model.timed_run()


def test_cuda_graph_runs_its_capture_calls_in_setup(tmp_path):
    model = device_model(tiny_onnx(tmp_path / "m.onnx"), cuda_graph=True)
    try:
        assert "capture" in model.phases.seconds and model.cold_run is not None
        assert model.host_threads(8) == 0
    finally:
        model.close()


def test_cuda_graph_with_a_symbolic_output_shape_is_refused(tmp_path):
    """A graph replays fixed addresses: an output ONNX Runtime reallocates per run cannot be captured."""
    exported = tiny_onnx(tmp_path / "m.onnx", batch="N")
    with pytest.raises(UserInputError, match="--ort-cuda-graph needs outputs of fixed shape"):
        device_model(exported, cuda_graph=True)
    model = device_model(exported)  # without a graph, ONNX Runtime allocates the output on the device per run
    try:
        model.timed_run()
        assert model.binding.get_outputs()[0].numpy().shape == (2, 4, 8, 8)
    finally:
        model.close()
