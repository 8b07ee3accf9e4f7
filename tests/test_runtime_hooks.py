"""What runtimes own behind their interface: the peak GEMM per precision (and the precision a row's peak is in),
and operator profiles (ONNX Runtime's profiler, torch.profiler on the CPU and, with fake events, on CUDA).

No GPU here: the CUDA peak and profile logic runs on fakes of CUDA events and profiler events.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

from convbench.errors import UserInputError
from convbench.models.spec import resolve_model
from convbench.runtimes import RunSettings
from convbench.runtimes import torch_cuda as tc
from convbench.runtimes.torch_cpu import FORWARD_ANNOTATION, TorchCPU, TorchOptions, summarize_events
from convbench.runtimes.torch_cuda import TorchCUDA, TorchCudaOptions
from convbench.timing import peak
from convbench.timing.peak import efficiency, has_peak, measure_peak, peak_precision_for

PACKAGE = Path(peak.__file__).parents[1]
SIZE = 128


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
    return tmp_path


# Which peak a row is compared with ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "tf32", "expected"),
    [
        ("fp32", False, "fp32"),
        ("fp32", True, "tf32"),
        ("fp16", False, "fp16"),
        ("amp-fp16", False, "fp16"),
        ("bf16", False, "bf16"),
        ("amp-bf16", True, "bf16"),  # --tf32 changes fp32 work only
    ],
)
def test_a_cuda_rows_peak_is_its_own_precisions(precision, tf32, expected):
    """Fails if amp-fp16 rows are divided by the IEEE fp32 peak (peak fractions of 1.2–1.7 on the H200)."""
    assert peak_precision_for("torch", "cuda", precision, TorchCudaOptions(tf32=tf32)) == expected


def test_cpu_rows_map_to_the_precision_their_runtime_computes_in():
    assert peak_precision_for("onnxruntime", "cpu", "fp32") == "fp32"
    assert peak_precision_for("torch", "cpu", "fp32", TorchOptions()) == "fp32"
    assert peak_precision_for("openvino", "cpu", "bf16") == "bf16"
    assert peak_precision_for("onnxruntime", "cpu", "fp16") is None  # no peak: no peak_fraction, not a wrong one
    assert has_peak("onnxruntime", "cpu") and has_peak("torch", "cuda")


def test_efficiency_names_the_precision_of_the_peak_it_divided_by():
    result = peak.PeakResult(
        gmacs_per_s=100.0, runtime="torch", threads=1, device="cuda", size=SIZE, seconds=1.0, cpu="", precision="fp16"
    )
    row = efficiency(10.0, 1000.0, 5, result)
    assert row["peak_precision"] == "fp16" and row["peak_fraction"] == pytest.approx(0.5)


# The peak GEMM per precision -----------------------------------------------------------------------------------


def test_the_precision_is_part_of_the_peak_cache_key(monkeypatch):
    """Fails if a bf16 peak is served from the cache for an fp32 request (or the other way round)."""
    paths = {p: peak._cache_path("cpu", "", "torch", "2", 1, "cpu", SIZE, p) for p in peak.PEAK_PRECISIONS}
    assert len(set(paths.values())) == len(paths)
    monkeypatch.setattr(TorchCPU, "peak_precisions", lambda self, device: ("fp32", "bf16"))
    bf16 = measure_peak("torch", 1, size=SIZE, repeats=1, precision="bf16")
    assert bf16.precision == "bf16" and bf16.gmacs_per_s > 0
    fp32 = measure_peak("torch", 1, size=SIZE, repeats=1, precision="fp32")
    assert fp32.precision == "fp32" and not fp32.cached


def test_a_precision_the_runtime_lacks_here_is_refused_before_measuring(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a GEMM was built")

    monkeypatch.setattr(TorchCPU, "peak_gemm", never)
    monkeypatch.setattr(TorchCPU, "peak_precisions", lambda self, device: ("fp32",))
    with pytest.raises(UserInputError, match=r"peak --precision bf16: runtime torch on cpu here multiplies in fp32$"):
        measure_peak("torch", 1, size=SIZE, precision="bf16")
    with pytest.raises(UserInputError, match="multiplies in fp32"):
        measure_peak("onnxruntime", 1, size=SIZE, precision="tf32")
    with pytest.raises(UserInputError, match="--precision must be one of fp32, tf32, fp16, bf16"):
        measure_peak("onnxruntime", 1, size=SIZE, precision="fp64")


class FakeEvent:
    def __init__(self, enable_timing=False):
        pass

    def record(self):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 2.0  # ms


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA events and operands on the CPU; what matmul's fp32 precision was while each GEMM ran."""
    seen = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(tc, "seeded_operands", lambda n, device, dtype: (torch.ones(n, n), torch.ones(n, n)))
    real = torch.matmul
    monkeypatch.setattr(
        torch, "matmul", lambda *a, **k: (seen.append(torch.backends.cuda.matmul.fp32_precision), real(*a, **k))[1]
    )
    previous = torch.backends.cuda.matmul.fp32_precision
    yield seen
    torch.backends.cuda.matmul.fp32_precision = previous


@pytest.mark.parametrize(("precision", "mode"), [("fp32", "ieee"), ("tf32", "tf32"), ("fp16", "ieee")])
def test_cuda_gemm_sets_the_fp32_precision_api_and_restores_it(fake_cuda, precision, mode):
    """Fails if the fp32 peak runs on TF32 tensor cores, or the setting leaks into the models timed afterwards."""
    torch.backends.cuda.matmul.fp32_precision = "none"
    gemm = TorchCUDA().peak_gemm(8, 1, "cuda", precision)
    assert gemm.run() == pytest.approx(2e-3)
    assert fake_cuda == [mode]
    gemm.restore()
    assert torch.backends.cuda.matmul.fp32_precision == "none"


def test_cuda_peak_precisions_follow_the_gpus_capabilities(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_tf32_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert TorchCUDA().peak_precisions("cuda") == ("fp32", "fp16")  # a pre-Ampere GPU: no TF32, bf16 emulated only
    monkeypatch.setattr(torch.cuda, "is_tf32_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert TorchCUDA().peak_precisions("cuda") == ("fp32", "tf32", "fp16", "bf16")


def test_no_legacy_tf32_flags_anywhere():
    """torch refuses to mix the legacy allow_tf32 flags with the fp32_precision API that torch_cuda sets."""
    for path in PACKAGE.rglob("*.py"):
        assert "allow_tf32" not in path.read_text(), path


# Operator profiles -------------------------------------------------------------------------------------------


def _settings(model, threads=1):
    return RunSettings("cpu", threads, model.input_shape(1, None))


def test_torch_cpu_profile_shows_where_a_mod_model_spends_time_on_topk():
    """Fails if the torch profile lists nested calls (double counting) or misses the MoD selector's topk."""
    mod, plain = resolve_model("resnet18-mod-cifar10"), resolve_model("resnet18-cifar10")
    profile = TorchCPU().operator_profile(mod, _settings(mod), TorchOptions(), runs=2)
    ops = {r.op_type: r for r in profile.rows}
    assert "aten::topk" in ops and ops["aten::topk"].calls > 0
    assert "aten::convolution" not in ops  # called inside aten::conv2d: not a top-level operator
    assert sum(r.share for r in profile.rows) == pytest.approx(1.0)
    assert all(r.kernels is None for r in profile.rows)
    baseline = TorchCPU().operator_profile(plain, _settings(plain), TorchOptions(), runs=2)
    assert "aten::topk" not in {r.op_type for r in baseline.rows}
    assert profile.per_run["operator calls per forward pass"] > baseline.per_run["operator calls per forward pass"]
    assert profile.per_run["operator calls per forward pass"] == sum(r.calls for r in profile.rows)


def _event(name, kind, parent=None, kernels=(), us=0.0):
    device = DeviceType.CUDA if kind in ("kernel", "gpu_memcpy") else DeviceType.CPU
    return SimpleNamespace(
        name=name,
        activity_type=kind,
        device_type=device,
        is_user_annotation=kind == "user_annotation",
        cpu_parent=parent,
        kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels],
        cpu_time_total=us,
        time_range=SimpleNamespace(elapsed_us=lambda: us),
    )


def test_cuda_profile_gives_kernel_time_and_count_to_the_top_level_operator():
    """Fails if kernels stay with the nested call that launched them (aten::cudnn_convolution instead of
    aten::conv2d), if copies count as kernels, or if a replayed graph's kernels vanish from the count."""
    forward = _event(FORWARD_ANNOTATION, "user_annotation")
    conv = _event("aten::conv2d", "cpu_op", forward)
    cudnn = _event("aten::cudnn_convolution", "cpu_op", conv, kernels=[("implicit_gemm", 10.0), ("add", 20.0)])
    topk = _event("aten::topk", "cpu_op", forward, kernels=[("sort", 5.0), ("Memcpy DtoD", 3.0)])
    events = [
        forward,
        conv,
        cudnn,
        _event("cudaLaunchKernel", "cuda_runtime", cudnn),
        topk,
        _event("aten::view", "cpu_op", forward),
        *(_event(n, "kernel", us=us) for n, us in (("implicit_gemm", 10.0), ("add", 20.0), ("sort", 5.0))),
        _event("Memcpy DtoD", "gpu_memcpy", us=3.0),
        # a CUDA graph replay: kernels with no operator behind them
        _event("replayed", "kernel", us=7.0),
        _event("replayed", "kernel", us=7.0),
    ]
    profile = summarize_events(events, runs=1, cuda=True, profiler="fake")
    rows = {r.op_type: r for r in profile.rows}
    replay = next(name for name in rows if "graph" in name)
    assert set(rows) == {"aten::conv2d", "aten::topk", replay}  # view launched nothing
    assert (rows["aten::conv2d"].kernels, rows["aten::conv2d"].ms_per_run) == (2, pytest.approx(0.030))
    assert (rows["aten::topk"].kernels, rows["aten::topk"].ms_per_run) == (1, pytest.approx(0.005))
    assert (rows[replay].kernels, rows[replay].ms_per_run) == (2, pytest.approx(0.014))
    assert profile.per_run == {"operator calls per forward pass": 3, "kernels per forward pass": 5}
    assert profile.rows[0].op_type == "aten::conv2d"  # sorted by time


def test_cuda_profile_averages_over_runs():
    forward = _event(FORWARD_ANNOTATION, "user_annotation")
    ops = [_event("aten::relu", "cpu_op", forward, kernels=[("relu", 4.0)]) for _ in range(4)]
    profile = summarize_events([forward, *ops], runs=4, cuda=True, profiler="fake")
    (row,) = profile.rows
    assert (row.calls, row.kernels, row.ms_per_run) == (1, 1, pytest.approx(0.004))
    assert profile.per_run["kernels per forward pass"] == 1  # no device events listed: the tied kernels count


def test_a_runtime_without_a_profiler_says_so_in_one_line():
    from convbench.runtimes.openvino import OpenVINOCPU

    assert OpenVINOCPU.operator_profiler == ""
    with pytest.raises(UserInputError, match="--op-profile: runtime 'openvino' has no operator profiler"):
        OpenVINOCPU().operator_profile(None, None, None, 1)
