"""The CUDA runtime without a GPU: its options, what check() refuses, the precision plan, the backend flags it
records, its clean-up and its GPU-state queries degrading where nvidia-smi or NVML is missing.

Nothing here fakes CUDA execution. A few capability and bookkeeping queries (is_bf16_supported, peak-memory
counters, empty_cache) are replaced to see what the runtime does with their answers.
"""

import os
import subprocess
import sys
import types
import weakref
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from convbench.errors import UserInputError
from convbench.options import from_mapping
from convbench.runtimes import RunSettings, gpu, runtime_class
from convbench.runtimes import torch_cuda as tc
from convbench.runtimes.base import SetupPhases
from convbench.runtimes.torch_cuda import TorchCUDA, TorchCUDAModel, TorchCudaOptions


def run_settings(precision="fp32"):
    return RunSettings(device="cuda", threads=1, input_shape=(1, 3, 32, 32), precision=precision)


@pytest.fixture
def restore_backend_flags():
    """The flags the runtime sets are process-wide: put them back for the other tests."""
    b = torch.backends
    saved = {
        "generic": b.fp32_precision,
        "matmul": b.cuda.matmul.fp32_precision,
        "cudnn": b.cudnn.fp32_precision,
        "conv": b.cudnn.conv.fp32_precision,
        "rnn": b.cudnn.rnn.fp32_precision,
        "mkldnn_matmul": b.mkldnn.matmul.fp32_precision,
        "legacy": torch.get_float32_matmul_precision(),
        "benchmark": b.cudnn.benchmark,
    }
    yield
    torch.set_float32_matmul_precision(saved["legacy"])
    b.fp32_precision = saved["generic"]
    b.cudnn.fp32_precision = saved["cudnn"]
    b.cuda.matmul.fp32_precision = saved["matmul"]
    b.cudnn.conv.fp32_precision = saved["conv"]
    b.cudnn.rnn.fp32_precision = saved["rnn"]
    b.mkldnn.matmul.fp32_precision = saved["mkldnn_matmul"]
    b.cudnn.benchmark = saved["benchmark"]


# Options and the runtime class ------------------------------------------------------------------------------


def test_every_torch_option_and_cuda_flag_can_be_set_from_one_mapping():
    """Catches TorchCudaOptions losing an option of TorchOptions (--channels-last or --compile would then be
    refused on cuda) and a CUDA flag that is not declared as an option (not settable from the command line or a
    run spec): from_mapping refuses any key it does not know."""
    values = {"channels_last": True, "compile": True, "tf32": True, "cudnn_benchmark": False, "cuda_graphs": True}
    options = from_mapping(TorchCudaOptions, values)
    assert {name: getattr(options, name) for name in values} == values


def test_torch_is_the_runtime_that_runs_on_cuda_by_default():
    """Catches the CUDA runtime registered for the wrong device, or another default for --device cuda."""
    assert runtime_class(None, "cuda") is TorchCUDA and runtime_class("torch", "cuda") is TorchCUDA


@pytest.mark.parametrize(
    ("precision", "autocast"),
    [("fp32", None), ("fp16", None), ("bf16", None), ("amp-fp16", torch.float16), ("amp-bf16", torch.bfloat16)],
)
def test_only_the_amp_modes_run_under_autocast_and_each_in_its_own_dtype(monkeypatch, precision, autocast):
    """Catches autocast around a model already cast to half (fp16/bf16), an amp mode run without autocast
    (plain fp32), and the two amp dtypes swapped. torch.autocast is recorded, so no GPU is needed."""
    entered = []

    class Recorded:
        def __init__(self, device_type, dtype):
            entered.append((device_type, dtype))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch, "autocast", Recorded)
    model = bare_model(precision=precision, module=nn.Identity(), input=torch.ones(1), _grad_mode=torch.no_grad)
    model._forward()
    assert entered == ([] if autocast is None else [("cuda", autocast)])


# check() ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "amp-fp16"])
def test_check_accepts_fp32_and_fp16_without_asking_about_bfloat16(monkeypatch, precision):
    def asked(*args, **kwargs):
        raise AssertionError("bf16 support queried for a precision that does not use bf16")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", asked)
    TorchCUDA().check(run_settings(precision), TorchCudaOptions())


@pytest.mark.parametrize("precision", ["bf16", "amp-bf16"])
def test_check_accepts_bf16_where_the_gpu_has_it(monkeypatch, precision):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    TorchCUDA().check(run_settings(precision), TorchCudaOptions())


@pytest.mark.parametrize("precision", ["bf16", "amp-bf16"])
def test_check_refuses_bf16_without_native_support(monkeypatch, precision):
    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # emulated only, as on a pre-Ampere GPU

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    with pytest.raises(UserInputError, match="native bfloat16"):
        TorchCUDA().check(run_settings(precision), TorchCudaOptions())
    assert asked == [False]  # emulated bfloat16 is not bfloat16 inference


@pytest.mark.parametrize("precision", ["int8", "fp64", "amp", "FP16"])
def test_check_refuses_unknown_precisions_naming_the_supported_ones(precision):
    with pytest.raises(UserInputError, match="fp32, fp16, bf16, amp-fp16, amp-bf16"):
        TorchCUDA().check(run_settings(precision), TorchCudaOptions())


def test_check_refuses_tf32_where_the_gpu_has_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_tf32_supported", lambda: False)
    with pytest.raises(UserInputError, match="--tf32"):
        TorchCUDA().check(run_settings(), TorchCudaOptions(tf32=True))
    TorchCUDA().check(run_settings(), TorchCudaOptions(tf32=False))
    monkeypatch.setattr(torch.cuda, "is_tf32_supported", lambda: True)
    TorchCUDA().check(run_settings(), TorchCudaOptions(tf32=True))


@pytest.mark.parametrize(("cuda_graphs", "mode"), [(True, "reduce-overhead"), (False, "default")])
def test_compile_with_cuda_graphs_lets_torch_compile_record_the_graphs(
    monkeypatch, restore_backend_flags, cuda_graphs, mode
):
    """Catches --compile --cuda-graphs refused, compiled in default mode (then no graphs at all), or captured by
    hand on top of what torch.compile runs: the decision is torch.compile(mode="reduce-overhead"), whose CUDA
    Graph Trees record and replay. The GPU calls of setup are replaced; the model runs on the CPU."""
    compiled = []

    def compile(module, mode):
        compiled.append(mode)
        return module

    monkeypatch.setattr(torch, "compile", compile)
    monkeypatch.setattr(tc, "_live_compiled", 0)  # restored afterwards: no compiled model is left alive
    monkeypatch.setattr(
        tc, "build_module_and_input", lambda model, settings, phases: (small_model(), torch.ones(1, 3, 8, 8))
    )
    monkeypatch.setattr(tc, "place", lambda module, x, device, precision, channels_last: (module, x))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *args: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "Event", lambda **kwargs: None)
    monkeypatch.setattr(TorchCUDAModel, "_capture", lambda self: pytest.fail("captured by hand under torch.compile"))
    options = TorchCudaOptions(compile=True, cuda_graphs=cuda_graphs)
    TorchCUDA().check(run_settings(), options)
    model = bare_model(options, phases=SetupPhases())
    model._setup(None, run_settings(), options)
    assert compiled == [mode]
    assert model.graph is None and model.call == model._forward  # each timed call goes through the compiled code


def test_prepare_checks_before_building(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)

    class Unbuildable:
        def build(self):
            raise AssertionError("built before the precision was checked")

    with pytest.raises(UserInputError):
        TorchCUDA().prepare(Unbuildable(), run_settings("bf16"), TorchCudaOptions())


# Placing the model ------------------------------------------------------------------------------------------


def small_model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [
        ("fp32", torch.float32),
        ("fp16", torch.float16),
        ("bf16", torch.bfloat16),
        ("amp-fp16", torch.float32),
        ("amp-bf16", torch.float32),
    ],
)
def test_place_casts_model_and_input_only_in_the_cast_modes(precision, dtype):
    module, x = tc.place(small_model(), torch.randn(2, 3, 8, 8), "cpu", precision, channels_last=False)
    assert {p.dtype for p in module.parameters()} == {dtype}
    assert module[1].running_mean.dtype == dtype
    assert module[1].num_batches_tracked.dtype == torch.int64  # integer buffers stay as they are
    assert x.dtype == dtype


def test_place_applies_channels_last_to_weights_and_input():
    module, x = tc.place(small_model(), torch.randn(2, 3, 8, 8), "cpu", "fp16", channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert module[0].weight.is_contiguous(memory_format=torch.channels_last)


# Backend flags: set through the fp32_precision API, recorded as read back ----------------------------------


def test_tf32_off_turns_off_torchs_default_tf32_convolutions(restore_backend_flags):
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's own default
    flags = tc.apply_backend_flags(tf32=False, cudnn_benchmark=True)
    assert flags == {
        "matmul_fp32_precision": "ieee",
        "conv_fp32_precision": "ieee",
        "tf32": False,
        "cudnn_benchmark": True,
    }
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.get_float32_matmul_precision() == "highest"  # would raise if the two APIs disagreed


def test_tf32_on_is_set_for_convolutions_and_matrix_products(restore_backend_flags):
    flags = tc.apply_backend_flags(tf32=True, cudnn_benchmark=False)
    assert flags == {
        "matmul_fp32_precision": "tf32",
        "conv_fp32_precision": "tf32",
        "tf32": True,
        "cudnn_benchmark": False,
    }
    assert torch.backends.cudnn.benchmark is False
    # Inductor reads the older matmul setting; torch raises if it contradicts the new one
    assert torch.get_float32_matmul_precision() == "high"


def test_effective_precision_is_what_torch_resolves_not_what_was_asked(restore_backend_flags):
    b = torch.backends
    b.cudnn.conv.fp32_precision = "none"  # inherits: cudnn's setting, then the generic one
    b.cudnn.fp32_precision = "none"
    b.fp32_precision = "tf32"
    assert tc.effective_fp32_precision()["conv_fp32_precision"] == "tf32"
    b.fp32_precision = "ieee"
    assert tc.effective_fp32_precision()["conv_fp32_precision"] == "ieee"
    b.fp32_precision = "none"  # nothing set at any level: CUDA runs full fp32
    assert tc.effective_fp32_precision() == {"matmul_fp32_precision": "ieee", "conv_fp32_precision": "ieee"}


# The prepared model's bookkeeping, on a bare object (no GPU) ----------------------------------------------


class FakeGraph:
    def __init__(self, events):
        self.events = events

    def reset(self):
        self.events.append("graph.reset")


class Cyclic:
    """Stands for a module: in a reference cycle, as compiled modules are, so only gc frees it."""

    def __init__(self):
        self.me = self


def bare_model(options=None, precision="fp32", **attributes):
    model = object.__new__(TorchCUDAModel)
    state = dict(
        options=options or TorchCudaOptions(),
        precision=precision,
        graph=None,
        static_output=None,
        module=None,
        input=None,
        call=None,
        start_event=None,
        end_event=None,
        device_index=0,
        cold_run=None,
        before={},
        after={},
        peak={},
        model_bytes=None,
        _allocated_at_start=0,
        cudagraph_skips=None,
        _compiled=False,
        _closed=False,
        flags={"matmul_fp32_precision": "ieee", "conv_fp32_precision": "ieee", "tf32": False, "cudnn_benchmark": True},
    )
    state.update(attributes)
    for name, value in state.items():
        setattr(model, name, value)
    return model


@pytest.fixture
def cuda_calls(monkeypatch):
    """synchronize / empty_cache recorded instead of run, with what was still alive when they ran."""
    events = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: events.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    return events


def test_close_releases_graph_output_module_and_input_before_emptying_the_cache(monkeypatch, cuda_calls):
    module, tensor, output = Cyclic(), Cyclic(), Cyclic()
    alive = [weakref.ref(module), weakref.ref(tensor), weakref.ref(output)]
    model = bare_model(
        graph=FakeGraph(cuda_calls), module=module, input=tensor, static_output=output, call=lambda: None
    )
    del module, tensor, output
    seen_alive = []
    monkeypatch.setattr(
        torch.cuda, "empty_cache", lambda: (cuda_calls.append("empty_cache"), seen_alive.extend(r() for r in alive))
    )
    model.close()
    assert cuda_calls == ["graph.reset", "synchronize", "empty_cache"]
    assert seen_alive == [None, None, None]  # nothing left for empty_cache to miss, cycles included
    assert model.graph is None and model.call is None


def test_close_is_idempotent(cuda_calls):
    model = bare_model(graph=FakeGraph(cuda_calls), module=nn.Linear(2, 2))
    model.close()
    model.close()
    assert cuda_calls == ["graph.reset", "synchronize", "empty_cache"]


def test_timed_run_after_close_is_an_error_not_a_stale_replay(cuda_calls):
    model = bare_model(call=lambda: None)
    model.close()
    with pytest.raises(RuntimeError, match="closed"):
        model.timed_run()


def test_compile_caches_are_reset_when_the_last_compiled_model_closes(monkeypatch, cuda_calls):
    resets = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append("reset"))
    monkeypatch.setattr(tc, "_live_compiled", 2)
    first, second = bare_model(_compiled=True), bare_model(_compiled=True)
    first.close()
    assert resets == []  # the other model still runs its compiled code (and replays from the shared pool)
    second.close()
    first.close()
    assert resets == ["reset"] and tc._live_compiled == 0


def test_a_failed_setup_is_closed_before_the_error_propagates(monkeypatch, restore_backend_flags):
    closed = []
    monkeypatch.setattr(TorchCUDAModel, "close", lambda self: closed.append(self))

    class OutOfMemory:
        def build(self, **_: object):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(torch.OutOfMemoryError):
        TorchCUDAModel(OutOfMemory(), run_settings(), TorchCudaOptions())
    assert len(closed) == 1


class FakeAllocator:
    """torch.cuda's allocator counters for one device, driven by the test: what is allocated now, and the peak
    since the last reset."""

    def __init__(self, monkeypatch, allocated_mb=0.0):
        self.allocated = allocated_mb * 2**20
        self.peak = self.allocated
        self.resets = 0
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", self.reset)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 2048 * 2**20)

    def reset(self, device=None):
        self.resets += 1
        self.peak = self.allocated

    def run(self, activations_mb):
        """One inference: activations allocated on top of what is resident, then freed."""
        self.peak = max(self.peak, self.allocated + activations_mb * 2**20)


@pytest.fixture
def peak_counters(monkeypatch):
    allocator = FakeAllocator(monkeypatch, allocated_mb=300)
    # one reading after warm-up, one at the end, then nothing readable (a tool that went away)
    states = iter([{"sm_clock_mhz": 1980.0, "temperature_c": 35.0}, {"sm_clock_mhz": 1980.0}])
    monkeypatch.setattr(gpu, "gpu_state", lambda device_index=0: next(states, {}))
    return allocator


def test_each_interleaved_model_gets_its_own_cuda_memory_not_the_device_peak(peak_counters):
    """Fails if the memory columns are the device-wide peak of the trial (the same for every model, other models'
    weights included), as they were when the peak was reset once per trial and read at the end."""
    # Both models resident (a: 100 MiB, b: 200 MiB of the 300 allocated); a's inference needs 50 MiB more,
    # b's 400 MiB more, and measure() warms a up, then b, then interleaves both.
    a, b = bare_model(model_bytes=100 * 2**20), bare_model(model_bytes=200 * 2**20)
    a.measurement_started()
    peak_counters.run(50)
    a.warmup_finished()
    b.measurement_started()
    peak_counters.run(400)
    b.warmup_finished()
    for _ in range(3):  # the interleaved measured runs
        peak_counters.run(50)
        peak_counters.run(400)
    a.measurement_finished()
    b.measurement_finished()
    assert a.peak["cuda_model_mb"] == 100 and a.peak["cuda_inference_mb"] == 50
    assert a.peak["cuda_peak_allocated_mb"] == 150  # not b's 400 MiB of activations, nor b's weights
    assert b.peak["cuda_model_mb"] == 200 and b.peak["cuda_inference_mb"] == 400
    assert b.peak["cuda_peak_allocated_mb"] == 600
    assert peak_counters.resets == 2  # each model's own warm-up starts from a fresh peak


def test_clocks_are_read_after_warm_up_and_at_the_end(monkeypatch, peak_counters):
    """Fails if the "before" clocks are sampled before warm-up, when the GPU still idles at low clocks."""
    readings = []
    monkeypatch.setattr(gpu, "gpu_state", lambda device_index=0: readings.append("read") or {"n": len(readings)})
    model = bare_model()
    model.measurement_started()
    assert readings == []  # nothing read before warm-up
    model.warmup_finished()
    model.measurement_finished()
    assert model.before == {"n": 1} and model.after == {"n": 2}


def test_settings_record_what_ran_memory_and_gpu_state(monkeypatch, peak_counters):
    monkeypatch.setattr(gpu, "gpu_environment", lambda device_index=0: {"gpu": "NVIDIA H200", "driver": "570.1"})
    model = bare_model(
        TorchCudaOptions(compile=True, cuda_graphs=True), precision="amp-bf16", cold_run=1.5, cudagraph_skips=0
    )
    model.measurement_started()
    peak_counters.run(212)
    model.warmup_finished()
    model.measurement_finished()
    row = model.settings()
    assert row["precision"] == "amp-bf16" and row["weights_dtype"] == "float32"
    assert row["autocast_dtype"] == "bfloat16"
    assert row["compile_mode"] == "reduce-overhead" and row["cuda_graph_capture"] == "torch.compile reduce-overhead"
    assert row["cuda_graphs"] is True and row["cudagraph_skips"] == 0
    assert row["tf32"] is False and row["conv_fp32_precision"] == "ieee" and row["cudnn_benchmark"] is True
    assert row["cold_run_ms"] == 1500.0
    assert row["cuda_inference_mb"] == 212.0 and row["cuda_peak_reserved_mb"] == 2048.0
    assert row["cuda_model_mb"] == 0.0  # no setup ran on this bare model
    assert row["gpu"] == "NVIDIA H200" and row["driver"] == "570.1"
    assert row["sm_clock_mhz_before"] == 1980.0 and row["temperature_c_before"] == 35.0
    assert row["sm_clock_mhz_after"] == 1980.0
    # a counter that could not be read is an empty value, and the column is there all the same
    assert row["power_w_before"] is None and row["temperature_c_after"] is None


def test_settings_name_the_manual_capture_and_no_compile_mode():
    row_keys = {"compile_mode": "", "cuda_graph_capture": "manual", "weights_dtype": "float16", "autocast_dtype": ""}
    model = bare_model(TorchCudaOptions(cuda_graphs=True), precision="fp16")
    row = {k: v for k, v in model.settings().items() if k in row_keys}
    assert row == row_keys


# convbench.runtimes.gpu without nvidia-smi or NVML ---------------------------------------------------------------


@pytest.fixture
def no_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError


@pytest.fixture
def known_gpu(monkeypatch):
    monkeypatch.setattr(
        gpu, "device_ids", lambda device_index: ("GPU-5f2c1e1a-0000-1111-2222-333344445555", "00000000:3B:00.0")
    )


def smi_answer(monkeypatch, stdout=None, error=None):
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        if error is not None:
            raise error
        return subprocess.CompletedProcess(args, 0, stdout=stdout, stderr="")

    monkeypatch.setattr(gpu.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(gpu.subprocess, "run", run)
    return calls


def test_without_nvidia_smi_or_nvml_state_is_empty_and_environment_has_empty_values(monkeypatch, no_nvml, known_gpu):
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    monkeypatch.setattr(gpu.subprocess, "run", lambda *a, **k: pytest.fail("ran a tool that is not there"))
    assert gpu.gpu_state(0) == {}
    env = gpu.gpu_environment(0)
    assert env["driver"] is None and env["gpu_uuid"] == "GPU-5f2c1e1a-0000-1111-2222-333344445555"
    assert set(env) >= {"gpu", "gpu_memory_gb", "cuda", "cudnn", "driver", "gpu_uuid", "gpu_pci_bus_id"}


def test_without_a_known_gpu_id_nothing_is_queried_by_ordinal(monkeypatch, no_nvml):
    def no_device(index):
        raise RuntimeError("Found no NVIDIA driver on your system")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_device)
    calls = smi_answer(monkeypatch, stdout="1980, 2619, 41, 120.5\n")
    assert gpu.device_ids(0) == ("", "")
    assert gpu.gpu_state(0) == {}
    env = gpu.gpu_environment(0)
    assert env["gpu"] is None and env["driver"] is None
    assert calls == []  # "--id=0" could be another GPU under CUDA_VISIBLE_DEVICES


def test_nvidia_smi_is_asked_for_the_gpu_by_uuid(monkeypatch, no_nvml, known_gpu):
    calls = smi_answer(monkeypatch, stdout="1980, 2619, 41, [N/A]\n")
    assert gpu.gpu_state(3) == {"sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0, "temperature_c": 41.0, "power_w": None}
    assert "--id=GPU-5f2c1e1a-0000-1111-2222-333344445555" in calls[0]
    assert not any(arg == "--id=3" for arg in calls[0])


@pytest.mark.parametrize(
    "error",
    [
        subprocess.CalledProcessError(9, "nvidia-smi", stderr="No devices were found"),
        subprocess.TimeoutExpired("nvidia-smi", 10),
        FileNotFoundError("nvidia-smi"),
        PermissionError("nvidia-smi"),
    ],
)
def test_a_failing_nvidia_smi_gives_empty_values(monkeypatch, no_nvml, known_gpu, error):
    smi_answer(monkeypatch, error=error)
    assert gpu.gpu_state(0) == {}
    assert gpu.gpu_environment(0)["driver"] is None


@pytest.mark.parametrize(
    "stdout", ["", "1980, 2619, 41, 120\n1410, 2619, 40, 90\n", "1980, 2619\n", "[N/A], [N/A], [N/A], [N/A]\n"]
)
def test_unusable_nvidia_smi_answers_give_empty_state(monkeypatch, no_nvml, known_gpu, stdout):
    smi_answer(monkeypatch, stdout=stdout)
    assert gpu.gpu_state(0) == {}


def fake_pynvml(init_error=None):
    calls = []
    nvml = types.ModuleType("pynvml")
    nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM, nvml.NVML_TEMPERATURE_GPU = 1, 2, 0

    def init():
        calls.append("init")
        if init_error:
            raise init_error

    def by_uuid(uuid):
        calls.append(("uuid", uuid))
        return "handle"

    def power(handle):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: calls.append("shutdown")
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    nvml.nvmlDeviceGetHandleByPciBusId = lambda bus: pytest.fail("the UUID is known; the bus id is a fallback")
    nvml.nvmlDeviceGetClockInfo = lambda handle, kind: {1: 1980, 2: 3201}[kind]
    nvml.nvmlDeviceGetTemperature = lambda handle, sensor: 44
    nvml.nvmlDeviceGetPowerUsage = power
    nvml.nvmlSystemGetDriverVersion = lambda: "570.124.06"
    # Older bindings only: the throttle-reasons name, not the newer "clock event reasons" one.
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda handle: 0x4 | 0x40
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [
        SimpleNamespace(pid=os.getpid(), usedGpuMemory=1 << 30),
        SimpleNamespace(pid=4242, usedGpuMemory=8 << 30),
    ]
    return nvml, calls


def test_nvml_is_used_where_installed(monkeypatch, known_gpu):
    nvml, calls = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(gpu.subprocess, "run", lambda *a, **k: pytest.fail("nvidia-smi run although NVML works"))
    assert gpu.gpu_state(0) == {
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 3201.0,
        "temperature_c": 44.0,
        "power_w": None,
        "throttle_reasons": "sw_power_cap+hw_thermal_slowdown",
        "other_processes": 1,  # the other PID, not this process
    }
    assert ("uuid", b"GPU-5f2c1e1a-0000-1111-2222-333344445555") in calls
    assert calls.count("init") == calls.count("shutdown") == 1
    assert gpu.gpu_environment(0)["driver"] == "570.124.06"


def test_nvml_power_is_converted_from_milliwatts(monkeypatch, known_gpu):
    nvml, _ = fake_pynvml()
    nvml.nvmlDeviceGetPowerUsage = lambda handle: 412_500
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert gpu.gpu_state(0)["power_w"] == 412.5


def test_a_failing_nvml_falls_back_to_nvidia_smi(monkeypatch, known_gpu):
    nvml, _ = fake_pynvml(init_error=RuntimeError("NVML Shared Library Not Found"))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    smi_answer(monkeypatch, stdout="1410, 1593, 38, 71.25\n")
    assert gpu.gpu_state(0) == {
        "sm_clock_mhz": 1410.0,
        "mem_clock_mhz": 1593.0,
        "temperature_c": 38.0,
        "power_w": 71.25,
    }


def test_device_ids_are_the_forms_nvml_and_nvidia_smi_take(monkeypatch):
    props = SimpleNamespace(
        uuid="5f2c1e1a-0000-1111-2222-333344445555", pci_bus_id=0x3B, pci_domain_id=0, pci_device_id=0
    )
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    assert gpu.device_ids(0) == ("GPU-5f2c1e1a-0000-1111-2222-333344445555", "00000000:3B:00.0")


def test_newer_nvml_clock_event_reasons_are_preferred(monkeypatch, known_gpu):
    """Fails if only the deprecated throttle-reasons call is asked, which newer bindings may drop."""
    nvml, _ = fake_pynvml()
    nvml.nvmlDeviceGetCurrentClocksEventReasons = lambda handle: 0
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert gpu.gpu_state(0)["throttle_reasons"] == "none"


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0, "none"),
        (0x1, "gpu_idle"),
        (0x8 | 0x80, "hw_slowdown+hw_power_brake_slowdown"),
        (0x20 | 0x10000, "sw_thermal_slowdown+0x10000"),  # a bit this table does not know stays visible
    ],
)
def test_throttle_reasons_are_decoded_to_names(mask, names):
    assert gpu.throttle_reason_names(mask) == names


@pytest.mark.parametrize(
    ("pids", "others"),
    [
        ([], 0),
        ([1000], 0),  # only this process
        ([1000, 7, 8], 2),
        ([7, 8], 1),  # in a container NVML lists host PIDs: one of them is this process
    ],
)
def test_other_processes_leave_this_one_out(pids, others):
    assert gpu.other_process_count(pids, own_pid=1000) == others


def test_settings_record_throttle_reasons_and_other_processes_around_the_measured_runs(monkeypatch, peak_counters):
    states = iter(
        [{"throttle_reasons": "none", "other_processes": 0}, {"throttle_reasons": "sw_power_cap", "other_processes": 1}]
    )
    monkeypatch.setattr(gpu, "gpu_state", lambda device_index=0: next(states))
    monkeypatch.setattr(gpu, "gpu_environment", lambda device_index=0: {})
    model = bare_model()
    model.measurement_started()
    model.warmup_finished()
    model.measurement_finished()
    row = model.settings()
    assert (row["throttle_reasons_before"], row["throttle_reasons_after"]) == ("none", "sw_power_cap")
    assert (row["other_processes_before"], row["other_processes_after"]) == (0, 1)
