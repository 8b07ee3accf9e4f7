"""Profile and compare models: count, prepare on a runtime, time interleaved, and build result rows.

These are the library functions behind ``convbench profile`` and ``convbench compare``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from convbench.counting import DEFAULT_CONVENTION, CountResult, count
from convbench.errors import UserInputError
from convbench.measure import Measurement, Progress, TimingSettings, measure
from convbench.models.mod import DEFAULT_MOD_IMPL, check_impl
from convbench.models.registry import ModelEntry, get_entry
from convbench.results import environment, load_average
from convbench.runtimes import RuntimeOptions, get_runtime
from convbench.stats import NOISY_CV, speedup, summarize


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
    timing: TimingSettings = field(default_factory=TimingSettings)

    def validate(self) -> BenchmarkConfig:
        if self.batch_size < 1:
            raise UserInputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.resolution is not None and not 8 <= self.resolution <= 4096:
            raise UserInputError(f"--resolution must be between 8 and 4096 pixels, got {self.resolution}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise UserInputError(f"--threads must be at least 1, got {self.threads}")
        self.timing.validate()
        if self.mod_impl is not None:
            check_impl(self.mod_impl)
        return self

    def overrides_for(self, entry: ModelEntry) -> dict[str, Any]:
        """Builder arguments this configuration implies for one model."""
        if self.mod_impl is not None and entry.family == "mod":
            return {"impl": self.mod_impl}
        return {}


def benchmark(
    models: Sequence[str], config: BenchmarkConfig | None = None, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Count and time ``models`` (interleaved) and return one result row each.

    The first model is the baseline: every row carries the speed-up over it (median ratio with a bootstrap
    95% interval) and the theoretical speed-up from MACs.
    """
    if not models:
        raise UserInputError("no models given")
    if len(set(models)) != len(models):
        raise UserInputError("each model may be given only once")
    config = (config or BenchmarkConfig()).validate()
    entries = [get_entry(m) for m in models]  # unknown names fail here, before any work
    runtime = get_runtime(config.runtime, config.device)
    threads = config.threads or available_cores()
    counts: dict[str, CountResult] = {}
    prepared = {}
    for entry in entries:
        name = entry.name
        overrides = config.overrides_for(entry)
        if progress:
            progress.phase(f"counting and preparing {name} ({runtime.name})", None)
        counts[name] = count(name, resolution=config.resolution, convention=config.convention, **overrides)
        options = RuntimeOptions(
            device=config.device, threads=threads, batch_size=config.batch_size, resolution=config.resolution,
            exporter=config.exporter, overrides=overrides,
        )
        prepared[name] = runtime.prepare(name, options)

    load_before = load_average()
    measurements = measure(prepared, config.timing, progress)
    load_after = load_average()
    env = {**environment(), "load_avg_before": load_before, "load_avg_after": load_after}

    base = models[0]
    rows = []
    for entry in entries:
        name = entry.name
        rows.append(
            _row(entry.name, entry.family, entry.paper, counts[name], measurements[name], prepared[name].settings(),
                 prepared[name].setup_seconds, config, runtime.name, threads,
                 entry.resolution if config.resolution is None else config.resolution, env)
        )
        default_impl = DEFAULT_MOD_IMPL if entry.family == "mod" else ""
        rows[-1]["mod_impl"] = config.overrides_for(entry).get("impl", default_impl)
        if len(models) > 1:
            s = speedup(measurements[base].samples, measurements[name].samples)
            rows[-1].update(
                baseline=base, speedup=s.ratio, speedup_low=s.low, speedup_high=s.high,
                theoretical_speedup=counts[base].macs / counts[name].macs,
            )
    for p in prepared.values():
        p.close()
    return rows


def _row(
    model: str, family: str, paper: str, counted: CountResult, m: Measurement, settings: dict[str, Any],
    setup_seconds: float, config: BenchmarkConfig, runtime: str, threads: int, resolution: int,
    env: dict[str, Any],
) -> dict[str, Any]:
    summary = summarize(m.samples)
    reasons = []
    if summary.noisy:
        reasons.append(f"CV {summary.cv:.0%} > {NOISY_CV:.0%}")
    row: dict[str, Any] = {
        "run_id": env["timestamp"],
        "model": model, "family": family, "paper": paper, "batch_size": config.batch_size,
        "resolution": resolution, "device": config.device, "runtime": runtime, "threads": threads,
        "exporter": settings.get("exporter", ""), "gmacs": counted.gmacs, "params_m": counted.mparams,
        "macs_convention": counted.convention,
        "median_ms": summary.median_ms, "mean_ms": summary.mean_ms, "std_ms": summary.std_ms,
        "min_ms": summary.min_ms, "max_ms": summary.max_ms, "p90_ms": summary.p90_ms, "p99_ms": summary.p99_ms,
        "iqr_ms": summary.iqr_ms, "cv": summary.cv, "n_runs": summary.n, "first_run_ms": m.first_run * 1e3,
        "setup_ms": setup_seconds * 1e3, "throughput_ips": config.batch_size / (summary.median_ms / 1e3),
        "noisy": bool(reasons), "noisy_reason": "; ".join(reasons),
        "warmup_runs": m.warmup_runs,
        **{k: v for k, v in settings.items() if k != "exporter"},
        **env,
    }
    return row
