"""Profile and compare models: count, prepare on a runtime, time interleaved, and build result rows.

These are the library functions behind ``convbench profile`` and ``convbench compare``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from convbench.counting import DEFAULT_CONVENTION, CountResult, count
from convbench.errors import ConvbenchError, UserInputError
from convbench.measure import Measurement, Progress, TimingSettings, measure
from convbench.models.mod import DEFAULT_MOD_IMPL, check_impl
from convbench.models.registry import ModelEntry, get_entry
from convbench.results import environment, load_average
from convbench.runtimes import DEFAULT_RUNTIME, RuntimeOptions, get_runtime
from convbench.stats import median_interval, noise_reasons, speedup, summarize

PRECISIONS = ("fp32", "fp16", "bf16")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that decides what is measured; recorded in every row."""

    device: str = "cpu"
    runtime: str | None = None
    threads: int | None = None
    batch_size: int = 1
    resolution: int | None = None
    exporter: str = "dynamo"
    convention: str = DEFAULT_CONVENTION
    mod_impl: str | None = None  # MoD block implementation for models of the "mod" family
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    tf32: bool = False
    cudnn_benchmark: bool = True
    cuda_graphs: bool = False
    timing: TimingSettings = field(default_factory=TimingSettings)

    @property
    def runtime_name(self) -> str:
        return self.runtime or DEFAULT_RUNTIME.get(self.device, "onnxruntime")

    def validate(self) -> BenchmarkConfig:
        if self.batch_size < 1:
            raise UserInputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.resolution is not None and not 8 <= self.resolution <= 4096:
            raise UserInputError(f"--resolution must be between 8 and 4096 pixels, got {self.resolution}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise UserInputError(f"--threads must be at least 1, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        cuda_only = {"--precision fp16/bf16": self.precision != "fp32", "--tf32": self.tf32,
                     "--cuda-graphs": self.cuda_graphs}
        for flag, used in cuda_only.items():
            if used and self.device != "cuda":
                raise UserInputError(f"{flag} applies to --device cuda only")
        torch_only = {"--compile": self.compile, "--channels-last": self.channels_last}
        for flag, used in torch_only.items():
            if used and self.runtime_name != "torch":
                raise UserInputError(f"{flag} applies to --runtime torch only")
        self.timing.validate()
        if self.mod_impl is not None:
            check_impl(self.mod_impl)
        return self

    def overrides_for(self, entry: ModelEntry) -> dict[str, Any]:
        """Builder arguments this configuration implies for one model."""
        if self.mod_impl is not None and entry.family == "mod":
            return {"impl": self.mod_impl}
        return {}

    def runtime_options(self, entry: ModelEntry, threads: int) -> RuntimeOptions:
        return RuntimeOptions(
            device=self.device, threads=threads, batch_size=self.batch_size, resolution=self.resolution,
            exporter=self.exporter, overrides=self.overrides_for(entry), precision=self.precision,
            channels_last=self.channels_last, compile=self.compile, tf32=self.tf32,
            cudnn_benchmark=self.cudnn_benchmark, cuda_graphs=self.cuda_graphs,
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says a runtime ran out of memory (torch, CUDA or ONNX Runtime wording)."""
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc", "bad allocation"))


def benchmark(
    models: Sequence[str],
    config: BenchmarkConfig | None = None,
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Count and time ``models`` (interleaved) and return one result row each.

    The first model is the baseline: every row carries the speed-up over it (median ratio with a bootstrap
    95% interval, a Mann–Whitney U p-value and a verdict) and the theoretical speed-up from MACs. A model
    that runs out of memory gets a row with an ``error`` and no timings; the others are still measured.
    With ``samples``, one record of raw per-run latencies per model is appended to it.
    """
    if not models:
        raise UserInputError("no models given")
    if len(set(models)) != len(models):
        raise UserInputError("each model may be given only once")
    config = (config or BenchmarkConfig()).validate()
    entries = [get_entry(m) for m in models]  # unknown names fail here, before any work
    runtime = get_runtime(config.runtime, config.device)
    threads = config.threads or available_cores()
    # One thread budget for the whole run: torch's pool too, not only the runtime being measured.
    torch.set_num_threads(threads)

    counts: dict[str, CountResult] = {}
    prepared = {}
    first_runs: dict[str, float] = {}
    errors: dict[str, str] = {}
    for entry in entries:
        name = entry.name
        if progress:
            progress.phase(f"counting and preparing {name} ({runtime.name}, batch {config.batch_size})", None)
        try:
            counts[name] = count(name, resolution=config.resolution, convention=config.convention,
                                 **config.overrides_for(entry))
        except RuntimeError as exc:  # e.g. an input too small for the network's pooling
            reason = str(exc).strip().splitlines()[0]
            where = f"batch {config.batch_size}, resolution {config.resolution or entry.resolution}"
            raise ConvbenchError(f"{name} cannot run at {where}: {reason}") from None
        try:
            prepared[name] = runtime.prepare(name, config.runtime_options(entry, threads))
            first_runs[name] = prepared[name].timed_run()  # catches out-of-memory before the timed loop
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            errors[name] = f"out of memory at batch size {config.batch_size}: {str(exc).splitlines()[0]}"
            prepared.pop(name, None)

    load_before = load_average()
    measurements = measure(prepared, config.timing, progress, first_runs) if prepared else {}
    load_after = load_average()
    env = {**environment(), "load_avg_before": load_before, "load_avg_after": load_after}
    cores = available_cores()

    base = models[0]
    rows = []
    for entry in entries:
        name = entry.name
        resolution = entry.resolution if config.resolution is None else config.resolution
        row = _identity(entry, config, runtime.name, threads, resolution, counts[name], env)
        if name in errors:
            rows.append({**row, "error": errors[name]})
            continue
        m = measurements[name]
        row.update(_latency(m, config.batch_size))
        reasons = noise_reasons(m.samples, load_before, load_after, cores)
        row.update(noisy=bool(reasons), noisy_reason="; ".join(reasons), setup_ms=prepared[name].setup_seconds * 1e3)
        settings = prepared[name].settings()  # may query the GPU: read once
        row.update({k: v for k, v in settings.items() if k != "exporter"})
        row["exporter"] = settings.get("exporter", "")
        if len(models) > 1 and base in measurements:
            s = speedup(measurements[base].samples, m.samples)
            row.update(
                baseline=base, speedup=s.ratio, speedup_low=s.low, speedup_high=s.high, p_value=s.p_value,
                significant=s.significant, verdict=s.verdict() if name != base else "baseline",
                theoretical_speedup=counts[base].macs / counts[name].macs,
            )
        rows.append(row)
        if samples is not None:
            samples.append({"run_id": row["run_id"], "model": name, "batch_size": config.batch_size,
                            "resolution": resolution, "device": config.device, "runtime": runtime.name,
                            "samples_ms": [t * 1e3 for t in m.samples]})
    for p in prepared.values():
        p.close()
    return rows


def sweep(
    models: Sequence[str],
    config: BenchmarkConfig,
    batch_sizes: Sequence[int],
    resolutions: Sequence[int | None],
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``benchmark`` for every (batch size, resolution) combination; rows of all combinations in order."""
    combos = list(itertools.product(batch_sizes, resolutions))
    for batch_size, resolution in combos:  # every combination is valid before any is measured
        replace(config, batch_size=batch_size, resolution=resolution).validate()
    rows: list[dict[str, Any]] = []
    for i, (batch_size, resolution) in enumerate(combos, start=1):
        if progress and len(combos) > 1:
            progress.phase(f"sweep {i}/{len(combos)}: batch {batch_size}, resolution {resolution or 'default'}", None)
        rows += benchmark(models, replace(config, batch_size=batch_size, resolution=resolution), progress, samples)
    return rows


def _identity(
    entry: ModelEntry, config: BenchmarkConfig, runtime: str, threads: int, resolution: int, counted: CountResult,
    env: dict[str, Any],
) -> dict[str, Any]:
    default_impl = DEFAULT_MOD_IMPL if entry.family == "mod" else ""
    return {
        "run_id": env["timestamp"], "model": entry.name, "family": entry.family, "paper": entry.paper,
        "batch_size": config.batch_size, "resolution": resolution, "device": config.device, "runtime": runtime,
        "threads": threads, "mod_impl": config.overrides_for(entry).get("impl", default_impl),
        "gmacs": counted.gmacs, "conv_gmacs": counted.conv_macs / 1e9, "params_m": counted.mparams,
        "macs_convention": counted.convention, **env,
    }


def _latency(m: Measurement, batch_size: int) -> dict[str, Any]:
    summary = summarize(m.samples)
    low, high = median_interval(m.samples)
    return {
        "median_ms": summary.median_ms, "median_low_ms": low, "median_high_ms": high, "mean_ms": summary.mean_ms,
        "std_ms": summary.std_ms, "min_ms": summary.min_ms, "max_ms": summary.max_ms, "p90_ms": summary.p90_ms,
        "p99_ms": summary.p99_ms, "iqr_ms": summary.iqr_ms, "cv": summary.cv, "n_runs": summary.n,
        "first_run_ms": m.first_run * 1e3, "warmup_runs": m.warmup_runs,
        "throughput_ips": batch_size / (summary.median_ms / 1e3),
    }
