"""This machine's attainable multiply-accumulate rate, per runtime and thread count, from one large GEMM.

A model's efficiency is the MAC rate it achieves divided by the rate the same runtime reaches on the most
favourable workload it has: a large, square, fp32 matrix product, the kernel every vendor tunes first
(the empirical ceiling of the roofline model; Williams, Waterman and Patterson, "Roofline: An Insightful
Visual Performance Model for Multicore Architectures", 2009). Measuring it rather than computing it from the
datasheet (cores x FMA units x vector width x clock) takes in what the runtime's own kernels, the thread
count, turbo under load and the memory system allow, which is the ceiling a model in that runtime can reach.

Each runtime is measured in itself: ONNX Runtime and OpenVINO run a one-node ``MatMul`` ONNX model (the
second operand a constant, as convolution weights are, so both may pre-pack it), PyTorch runs
``torch.matmul`` into a preallocated output. A GEMM of n x n by n x n is n^3 multiply-accumulates. Of several
repeats the fastest counts: interference (other processes, interrupts, a frequency dip) only ever slows a
run down, so the best run is the closest estimate of a ceiling (the median would estimate a typical rate).

Results are cached per (CPU or GPU model, runtime, runtime version, threads, device, size) as JSON in
convbench's cache directory and reused unless ``force``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from convbench.errors import UserInputError
from convbench.models.registry import _cache_root

DEFAULT_SIZE = 2048
DEFAULT_REPEATS = 7
CACHE_VERSION = 1
# One GEMM of the smallest size still runs ~1 ms on a fast core, enough for the host clock's resolution.
MIN_SIZE, MAX_SIZE = 64, 16384


@dataclass(frozen=True)
class PeakResult:
    """The best fp32 GEMM rate of one runtime on this machine with ``threads`` threads."""

    gmacs_per_s: float
    runtime: str
    threads: int
    device: str
    size: int
    seconds: float  # the fastest GEMM
    cpu: str
    cached: bool = False
    runtime_version: str = ""
    gpu: str = ""
    repeats: int = DEFAULT_REPEATS
    median_seconds: float = float("nan")
    measured_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def macs(self) -> int:
        return self.size**3


def default_threads() -> int:
    """The cores this process may run on: the thread budget a benchmark uses unless told otherwise."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# GEMM timers: each builds its operands once and returns a function timing one product in seconds -------------


@dataclass
class Gemm:
    """One runtime's n x n GEMM, built: ``run()`` times one product; ``restore()`` undoes global settings."""

    run: Callable[[], float]
    restore: Callable[[], None] = lambda: None


def _random_operands(n: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)


def matmul_onnx(n: int, b: Any) -> bytes:
    """A one-node ONNX model ``C = A @ B`` with ``B`` a constant initializer and ``A`` the n x n input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])],
        initializer=[numpy_helper.from_array(b, "B")],
    )
    # Opset 13 and IR 8: old enough for every ONNX Runtime and OpenVINO release convbench supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnxruntime_gemm(n: int, threads: int, device: str) -> Gemm:
    import numpy as np
    import onnxruntime as ort

    from convbench.runtimes.onnxruntime import session_options

    a, b = _random_operands(n)
    session = ort.InferenceSession(matmul_onnx(n, b), session_options(threads), providers=["CPUExecutionProvider"])
    # IO binding with a preallocated output: run() would allocate and copy the n x n result every time, which
    # is memory traffic, not MACs.
    binding = session.io_binding()
    binding.bind_cpu_input("A", a)
    out = ort.OrtValue.ortvalue_from_numpy(np.empty((n, n), np.float32))
    binding.bind_ortvalue_output("C", out)

    def run() -> float:
        start = time.perf_counter()
        session.run_with_iobinding(binding)
        return time.perf_counter() - start

    return Gemm(run)


def _openvino_gemm(n: int, threads: int, device: str) -> Gemm:
    import openvino as ov

    a, b = _random_operands(n)
    core = ov.Core()
    model = core.read_model(matmul_onnx(n, b))
    # The runtime's own settings (convbench.runtimes.openvino): fp32 explicitly, since the CPU plugin's
    # default precision is bf16 on CPUs with AMX.
    compiled = core.compile_model(
        model,
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
            "NUM_STREAMS": 1,
        },
    )
    request = compiled.create_infer_request()
    tensor = ov.Tensor(a, shared_memory=True)
    request.set_input_tensor(tensor)
    # The request points into the operand's memory and the compiled model: both must outlive it, so the timing
    # function holds them (freed early, the next infer() reads freed memory and crashes).
    keep = (core, compiled, a, tensor)

    def run() -> float:
        assert keep
        start = time.perf_counter()
        request.infer(share_outputs=True)
        return time.perf_counter() - start

    return Gemm(run)


def _torch_gemm(n: int, threads: int, device: str) -> Gemm:
    import torch

    a, b = (torch.from_numpy(x).to(device) for x in _random_operands(n))
    out = torch.empty((n, n), device=device)
    if device == "cuda":
        # TF32 would multiply at reduced precision; the peak is fp32's, as the models are timed by default.
        allow = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run_cuda() -> float:
            begin.record()
            torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1e3

        return Gemm(run_cuda, lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", allow))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)

    def run() -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            torch.matmul(a, b, out=out)
            return time.perf_counter() - start

    return Gemm(run, lambda: torch.set_num_threads(previous))


GEMMS: dict[str, Callable[[int, int, str], Gemm]] = {
    "onnxruntime": _onnxruntime_gemm,
    "openvino": _openvino_gemm,
    "torch": _torch_gemm,
}


def runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino as ov

        return ov.get_version()
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(runtime)
    except PackageNotFoundError:
        return ""


def _gpu_name(device: str) -> str:
    if device != "cuda":
        return ""
    import torch

    return torch.cuda.get_device_name()


# Cache -------------------------------------------------------------------------------------------------------


def _cache_path(cpu: str, gpu: str, runtime: str, version: str, threads: int, device: str, size: int) -> Path:
    key = json.dumps(
        {
            "cpu": cpu,
            "gpu": gpu,
            "runtime": runtime,
            "version": version,
            "threads": threads,
            "device": device,
            "size": size,
            "v": CACHE_VERSION,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return _cache_root() / "peak" / f"{runtime}-{device}-t{threads}-n{size}-{digest}.json"


def _read_cache(path: Path) -> PeakResult | None:
    try:
        data = json.loads(path.read_text())
        result = PeakResult(**{**data, "cached": True})
    except (OSError, ValueError, TypeError):  # missing, unreadable, or written by another layout: measure again
        return None
    return result if result.gmacs_per_s > 0 else None


def _write_cache(path: Path, result: PeakResult) -> None:
    data = asdict(result)
    data.pop("cached")
    try:  # a read-only cache only costs a new measurement next time
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".peak-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except OSError:
        pass


# Public API --------------------------------------------------------------------------------------------------


def check_inputs(runtime: str, threads: int, device: str, size: int, repeats: int) -> None:
    """Refuse bad input before anything is built: unknown runtime or device, absent GPU, odd sizes."""
    from convbench.runtimes import check_device, runtime_class

    cls = runtime_class(runtime, device)  # unknown runtime, runtime not on this device, not installed
    if cls.name not in GEMMS:
        raise UserInputError(f"peak has no GEMM for runtime {cls.name!r}; it measures {', '.join(GEMMS)}")
    check_device(device)  # cuda without a GPU
    if threads < 1:
        raise UserInputError(f"--threads must be at least 1, got {threads}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserInputError(f"--size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    if repeats < 1:
        raise UserInputError(f"repeats must be at least 1, got {repeats}")


def measure_peak(
    runtime: str | None = "onnxruntime",
    threads: int | None = None,
    device: str = "cpu",
    size: int = DEFAULT_SIZE,
    repeats: int = DEFAULT_REPEATS,
    force: bool = False,
) -> PeakResult:
    """The best fp32 GEMM rate (GMAC/s) of ``runtime`` on ``device`` with ``threads`` threads, cached."""
    from convbench.results.files import _cpu_model
    from convbench.runtimes import DEFAULT_RUNTIME

    runtime = runtime or DEFAULT_RUNTIME.get(device, "onnxruntime")
    threads = default_threads() if threads is None else threads
    check_inputs(runtime, threads, device, size, repeats)
    cpu, gpu, version = _cpu_model(), _gpu_name(device), runtime_version(runtime)
    path = _cache_path(cpu, gpu, runtime, version, threads, device, size)
    if not force:
        cached = _read_cache(path)
        if cached is not None:
            return cached
    from convbench.timing.noise import OTHER_CORES_LIMIT, timed_window

    gemm = GEMMS[runtime](size, threads, device)
    try:
        gemm.run()  # the first product pays for first-touch page faults, packing and thread start-up
        with timed_window() as window:
            seconds = sorted(gemm.run() for _ in range(repeats))
    finally:
        gemm.restore()
    # A peak measured while other processes ran would understate the machine for every later row: such a
    # measurement is used once but not cached.
    disturbed = window.signals is not None and window.signals.other_cores > OTHER_CORES_LIMIT
    best = seconds[0]
    result = PeakResult(
        gmacs_per_s=size**3 / best / 1e9,
        runtime=runtime,
        threads=threads,
        device=device,
        size=size,
        seconds=best,
        cpu=cpu,
        cached=False,
        runtime_version=version,
        gpu=gpu,
        repeats=repeats,
        median_seconds=seconds[len(seconds) // 2],
    )
    if not disturbed:
        _write_cache(path, result)
    return result


def efficiency(gmacs: float, median_ms: float, batch_size: int, peak: PeakResult) -> dict[str, float]:
    """The MAC rate a model achieved and its fraction of the runtime's GEMM peak.

    ``gmacs`` is per image (as convbench counts it, at batch 1), so a batch does ``gmacs * batch_size``.
    NaN where the latency or the count is missing or not positive.
    """
    nan = float("nan")
    valid = all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (gmacs, median_ms, batch_size))
    achieved = gmacs * batch_size / (median_ms / 1e3) if valid else nan
    fraction = achieved / peak.gmacs_per_s if valid and peak.gmacs_per_s > 0 else nan
    return {"achieved_gmacs_per_s": achieved, "peak_gmacs_per_s": peak.gmacs_per_s, "peak_fraction": fraction}
