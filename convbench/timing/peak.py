"""This machine's attainable multiply-accumulate rate, per runtime, precision and thread count, from one large GEMM.

A model's efficiency is the MAC rate it achieves divided by the rate the same runtime reaches on the most
favourable workload it has in the precision the model computes in: a large, square matrix product, the kernel
every vendor tunes first
(the empirical ceiling of the roofline model; Williams, Waterman and Patterson, "Roofline: An Insightful
Visual Performance Model for Multicore Architectures", 2009). Measuring it rather than computing it from the
datasheet (cores x FMA units x vector width x clock) takes in what the runtime's own kernels, the thread
count, turbo under load and the memory system allow, which is the ceiling a model in that runtime can reach.

Each runtime is measured in itself, and builds its own GEMM (``Runtime.peak_gemm``): ONNX Runtime and OpenVINO
run a one-node ``MatMul`` ONNX model (the second operand a constant, as convolution weights are, so both may
pre-pack it), PyTorch runs ``torch.matmul`` into a preallocated output. Precisions: ``fp32`` is IEEE fp32 (on
CUDA with TF32 off); ``tf32``, ``fp16`` and ``bf16`` use a GPU's tensor cores; on the CPU each runtime offers
what this CPU runs natively. A row's precision maps to its peak's with ``peak_precision_for`` (amp-fp16 runs
its convolutions in fp16, so its ceiling is the fp16 GEMM), and ``efficiency`` names the peak it divided by.
A GEMM of n x n by n x n is n^3 multiply-accumulates. Of several
repeats the fastest counts: interference (other processes, interrupts, a frequency dip) only ever slows a
run down, so the best run is the closest estimate of a ceiling (the median would estimate a typical rate).

Results are cached per (CPU or GPU model, runtime, runtime version, threads, device, size, precision) as JSON in
convbench's cache directory and reused unless ``force``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from convbench.cache import cache_root
from convbench.errors import UserInputError
from convbench.runtimes.base import Runtime
from convbench.timing.machine import available_cores

DEFAULT_SIZE = 2048
DEFAULT_REPEATS = 7
CACHE_VERSION = 2  # 2: the precision is part of the key
# One GEMM of the smallest size still runs ~1 ms on a fast core, enough for the host clock's resolution.
MIN_SIZE, MAX_SIZE = 64, 16384
#: compute precisions a peak GEMM can be measured in: fp32 is IEEE fp32; tf32, fp16 and bf16 run on a GPU's
#: tensor cores (and bf16 on CPUs with native bfloat16), each where the runtime and the hardware have it.
PEAK_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


@dataclass(frozen=True)
class PeakResult:
    """The best GEMM rate of one runtime in one precision on this machine with ``threads`` threads."""

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
    precision: str = "fp32"
    measured_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def macs(self) -> int:
        return self.size**3


# Runtimes ----------------------------------------------------------------------------------------------------


def _runtime(name: str, device: str) -> Any:
    from convbench.runtimes import runtime_class

    return runtime_class(name, device)()  # unknown runtime, runtime not on this device, not installed


def has_peak(runtime: str, device: str) -> bool:
    """Whether ``runtime`` on ``device`` has a peak GEMM at all (asks no hardware)."""
    return type(_runtime(runtime, device)).peak_gemm is not Runtime.peak_gemm


def peak_precision_for(runtime: str, device: str, precision: str, options: Any = None) -> str | None:
    """The peak precision (fp32, tf32, fp16, bf16) whose GEMM is the ceiling of rows run by ``runtime`` on
    ``device`` in ``precision`` with the runtime's ``options`` (e.g. torch on cuda: amp-fp16 -> fp16, fp32 with
    ``--tf32`` -> tf32); ``None`` where the runtime measures no peak for it."""
    return _runtime(runtime, device).peak_precision(device, precision, options)


# Cache -------------------------------------------------------------------------------------------------------


def _cache_path(
    cpu: str, gpu: str, runtime: str, version: str, threads: int, device: str, size: int, precision: str
) -> Path:
    key = json.dumps(
        {
            "cpu": cpu,
            "gpu": gpu,
            "runtime": runtime,
            "version": version,
            "threads": threads,
            "device": device,
            "size": size,
            "precision": precision,
            "v": CACHE_VERSION,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "peak" / f"{runtime}-{device}-{precision}-t{threads}-n{size}-{digest}.json"


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


def check_inputs(runtime: str, threads: int, device: str, size: int, repeats: int, precision: str = "fp32") -> Any:
    """Refuse bad input before anything is built: unknown runtime or device, absent GPU, a precision the
    runtime cannot multiply in here, odd sizes. The runtime, ready to build its GEMM."""
    from convbench.runtimes import check_device

    instance = _runtime(runtime, device)
    if type(instance).peak_gemm is Runtime.peak_gemm:
        raise UserInputError(f"peak: runtime {instance.name!r} has no peak GEMM")
    check_device(device)  # cuda without a GPU
    if precision not in PEAK_PRECISIONS:
        raise UserInputError(f"--precision must be one of {', '.join(PEAK_PRECISIONS)}, got {precision!r}")
    available = instance.peak_precisions(device)
    if precision not in available:
        raise UserInputError(
            f"peak --precision {precision}: runtime {instance.name} on {device} here multiplies in "
            f"{', '.join(available) or 'no precision'}"
        )
    if threads < 1:
        raise UserInputError(f"--threads must be at least 1, got {threads}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserInputError(f"--size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    if repeats < 1:
        raise UserInputError(f"repeats must be at least 1, got {repeats}")
    return instance


def measure_peak(
    runtime: str | None = "onnxruntime",
    threads: int | None = None,
    device: str = "cpu",
    size: int = DEFAULT_SIZE,
    repeats: int = DEFAULT_REPEATS,
    force: bool = False,
    precision: str = "fp32",
) -> PeakResult:
    """The best GEMM rate (GMAC/s) of ``runtime`` on ``device`` in ``precision`` with ``threads`` threads, cached."""
    from convbench.results.files import cpu_model
    from convbench.runtimes import DEFAULT_RUNTIME

    runtime = runtime or DEFAULT_RUNTIME.get(device, "onnxruntime")
    threads = available_cores() if threads is None else threads
    instance = check_inputs(runtime, threads, device, size, repeats, precision)
    cpu, gpu, version = cpu_model(), instance.device_name(device), instance.version()
    path = _cache_path(cpu, gpu, runtime, version, threads, device, size, precision)
    if not force:
        cached = _read_cache(path)
        if cached is not None:
            return cached
    from convbench.timing.noise import OTHER_CORES_LIMIT, timed_window

    gemm = instance.peak_gemm(size, threads, device, precision)
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
        precision=precision,
    )
    if not disturbed:
        _write_cache(path, result)
    return result


def efficiency(gmacs: float, median_ms: float, batch_size: int, peak: PeakResult) -> dict[str, Any]:
    """The MAC rate a model achieved and its fraction of the runtime's GEMM peak, with the precision of that
    peak (``peak_precision``: measure it with ``peak_precision_for`` the row's own precision).

    ``gmacs`` is per image (as convbench counts it, at batch 1), so a batch does ``gmacs * batch_size``.
    NaN where the latency or the count is missing or not positive.
    """
    nan = float("nan")
    valid = all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (gmacs, median_ms, batch_size))
    achieved = gmacs * batch_size / (median_ms / 1e3) if valid else nan
    fraction = achieved / peak.gmacs_per_s if valid and peak.gmacs_per_s > 0 else nan
    return {
        "achieved_gmacs_per_s": achieved,
        "peak_gmacs_per_s": peak.gmacs_per_s,
        "peak_fraction": fraction,
        "peak_precision": peak.precision,
    }
