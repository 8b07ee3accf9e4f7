"""Profile and compare models: count, prepare on a runtime, time in independent trials, build result rows.

These are the library functions behind ``convbench profile``, ``compare``, ``reproduce`` and ``run``.

Why trials. Latency samples from one session are not independent draws of a model's latency: memory layout,
allocator and arena state, core placement and prepacked weights are fixed for a whole session and change
between sessions, so an interval computed from one session's samples describes that session only and a rerun
often lands outside it. As pyperf does with worker processes, convbench therefore runs ``trials``
independent trials (each with fresh sessions, by default each in a fresh worker process), times the models
interleaved within each trial in a shuffled order, and computes every interval with a two-level bootstrap
over trials and the samples within them (``convbench.stats.hierarchical_speedup``). With ``target_ci``,
trials are added until every speed-up's interval is that tight or ``max_time`` runs out.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from convbench.counting.macs import CONVENTIONS, DEFAULT_CONVENTION, CountResult, count
from convbench.errors import ConvbenchError, UserInputError
from convbench.export import EXPORTERS
from convbench.models.spec import ModelSpec, ResolvedModel, as_spec, resolve_model
from convbench.options import (
    above,
    at_least,
    between,
    from_mapping,
    group,
    int_list,
    one_of,
    option,
    settings_key,
    validate,
)
from convbench.results.files import environment, load_average, new_run_id
from convbench.runtimes import DEFAULT_RUNTIME, DEVICES, RunSettings, check_device, runtime_class, runtime_help
from convbench.timing.measure import Progress, TimingSettings, measure

ISOLATION = ("process", "session")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _runtime_names() -> list[str]:
    from convbench.runtimes import runtime_names

    return runtime_names()


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that decides what is measured and how; recorded in every row."""

    device: str = option("cpu", "cpu or cuda.", check=one_of(DEVICES))
    runtime: str | None = option(None, runtime_help(), check=one_of(_runtime_names))
    threads: int | None = option(None, "Intra-op threads (default: the available cores).", check=between(1, 1024))
    batch_size: tuple[int, ...] = option(
        (1,),
        "Batch size, or a list to sweep: 1,8,32.",
        flags=("--batch-size", "-b"),
        parse=int_list,
        cli_type=str,
        check=between(1, 65536),
    )
    resolution: tuple[int, ...] = option(
        (),
        "Square input size (default: the model's), or a list to sweep: 160,224.",
        parse=int_list,
        cli_type=str,
        check=between(8, 4096, "pixels"),
    )
    exporter: str = option("dynamo", "ONNX exporter: dynamo or torchscript.", check=one_of(EXPORTERS))
    precision: str = option(
        "fp32",
        "Numeric precision, checked against the runtime: fp32 everywhere; torch on cuda also fp16, bf16, "
        "amp-fp16, amp-bf16; openvino also bf16 where the CPU has it.",
    )
    convention: str = option(
        DEFAULT_CONVENTION,
        "MAC counting convention: convbench, fvcore, mac+, micronet or paper (`count --help`).",
        check=one_of([*CONVENTIONS, "paper"]),
    )
    trials: int = option(
        10,
        "Independent trials (fresh sessions; with --isolate process, fresh processes); intervals include the "
        "variation between them.",
        check=between(1, 1000),
        in_key=False,
    )
    isolate: str = option(
        "process",
        "process: each trial in a fresh worker process (as pyperf); session: fresh sessions in this "
        "process (faster, misses between-process variation).",
        check=one_of(ISOLATION),
        in_key=False,
    )
    target_ci: float | None = option(
        None,
        "Add trials until every speed-up's 95% interval half-width is within this many percent.",
        check=above(0),
        in_key=False,
    )
    max_time: float = option(
        600.0, "With --target-ci: stop adding trials after this many seconds.", check=above(0), in_key=False
    )
    seed: int = option(0, "Seed of the model order shuffled between trials.", check=at_least(0), in_key=False)
    timing: TimingSettings = group(TimingSettings)
    # Options of the selected runtime that differ from their defaults (name -> value), from its options class.
    runtime_args: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.runtime_args, dict):  # a mapping is the natural way to write them in Python
            object.__setattr__(self, "runtime_args", tuple(self.runtime_args.items()))

    @property
    def runtime_name(self) -> str:
        return self.runtime or DEFAULT_RUNTIME.get(self.device, "onnxruntime")

    @property
    def resolved_threads(self) -> int:
        return self.threads or available_cores()

    def check(self) -> None:
        """Checks across options (each option's own check ran already)."""
        cls = runtime_class(self.runtime, self.device)
        if self.precision not in cls.precisions:
            raise UserInputError(
                f"--precision {self.precision} is not supported by runtime {cls.name} on {self.device}; "
                f"it supports {', '.join(cls.precisions)}"
            )
        self.runtime_options()

    def runtime_options(self) -> Any:
        """The selected runtime's own options object, from ``runtime_args``."""
        from convbench.options import option_fields

        cls = runtime_class(self.runtime, self.device)
        fields = {path[-1]: f for path, f in option_fields(cls.options_type)}
        for name, _ in self.runtime_args:
            if name not in fields:
                owners = _option_owners(name)
                flag = "--" + name.replace("_", "-")
                raise UserInputError(
                    f"{flag} is not an option of runtime {cls.name} on {self.device}"
                    + (f"; it applies to {', '.join(owners)}" if owners else "")
                )
        return from_mapping(cls.options_type, dict(self.runtime_args), where=f"runtime {cls.name}")

    def settings_key(self) -> str:
        """The settings a measurement is identified by (timing and trial counts aside), as one string."""
        options = self.runtime_options()
        extra = {"runtime": self.runtime_name, "threads": self.resolved_threads, **asdict(options)}
        return settings_key(replace(self, runtime=None, threads=None), extra)

    def for_combination(self, batch_size: int, resolution: int | None) -> BenchmarkConfig:
        return replace(self, batch_size=(batch_size,), resolution=() if resolution is None else (resolution,))

    def to_mapping(self) -> dict[str, Any]:
        """Flat option values (and runtime options) that ``config_from_mapping`` turns back into this config."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("timing", "runtime_args")}
        flat.update(asdict(self.timing))
        flat.update(dict(self.runtime_args))
        return flat


def _option_owners(name: str) -> list[str]:
    from convbench.options import option_fields
    from convbench.runtimes import discover

    owners = []
    for key, cls in discover().items():
        if any(path[-1] == name for path, _ in option_fields(cls.options_type)):
            owners.append(f"{key.name} on {key.device}")
    return owners


def runtime_option_classes() -> list[type]:
    from convbench.runtimes import all_runtime_classes

    return list(dict.fromkeys(cls.options_type for cls in all_runtime_classes()))


def runtime_option_defaults() -> dict[str, Any]:
    from convbench.options import default_of, option_fields

    defaults: dict[str, Any] = {}
    for cls in runtime_option_classes():
        for path, f in option_fields(cls):
            defaults.setdefault(path[-1], default_of(f))
    return defaults


def config_from_mapping(values: dict[str, Any], where: str = "") -> BenchmarkConfig:
    """A validated ``BenchmarkConfig`` from flat option values, runtime options included.

    Runtime options left at their defaults are dropped, so only the ones a user set are checked against the
    selected runtime ("--cuda-graphs is not an option of runtime onnxruntime").
    """
    defaults = runtime_option_defaults()
    from convbench.options import option_fields

    own = {path[-1] for path, _ in option_fields(BenchmarkConfig)}
    runtime_args = tuple(
        (k, v) for k, v in values.items() if k in defaults and k not in own and v is not None and v != defaults[k]
    )
    unknown = [k for k in values if k not in own and k not in defaults]
    if unknown:
        origin = f"{where}: " if where else ""
        raise UserInputError(f"{origin}unknown option {unknown[0]!r}")
    config = from_mapping(BenchmarkConfig, {k: v for k, v in values.items() if k in own}, where=where)
    config = replace(config, runtime_args=runtime_args)
    config.check()
    return config


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says a runtime ran out of memory (torch, CUDA or ONNX Runtime wording)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc", "bad allocation"))


# One trial ----------------------------------------------------------------------------------------------


@dataclass
class ModelTrial:
    """One model's measurements in one trial."""

    samples: list[float] = field(default_factory=list)
    first_run: float = float("nan")
    warmup_runs: int = 0
    peak_mb: float = float("nan")
    phases: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    window: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    error: str = ""


def run_trial(
    models: Sequence[ResolvedModel], config: BenchmarkConfig, order: Sequence[int], progress: Progress | None = None
) -> list[ModelTrial]:
    """Prepare every model (fresh sessions), time them interleaved in ``order``; one ModelTrial per model."""
    from convbench.timing.noise import WindowSignals, noise_reasons

    runtime = runtime_class(config.runtime, config.device)()
    options = config.runtime_options()
    threads = config.resolved_threads
    _limit_torch_threads(threads)
    results = [ModelTrial() for _ in models]
    prepared: dict[str, Any] = {}
    first_runs: dict[str, float] = {}
    try:
        for i in order:
            model = models[i]
            settings = run_settings(model, config)
            if progress:
                progress.phase(f"preparing {model.name} ({runtime.name}, batch {settings.batch_size})", None)
            handle = None
            try:
                handle = runtime.prepare(model, settings, options)
                first_runs[model.name] = handle.timed_run()  # catches out-of-memory before the timed loop
                prepared[model.name] = handle
            except Exception as exc:
                if handle is not None:
                    handle.close()
                if not is_out_of_memory(exc):
                    raise
                results[i].error = f"out of memory at batch size {settings.batch_size}: {str(exc).splitlines()[0]}"
        if prepared:
            measured = measure(prepared, config.timing, progress, first_runs)
            cores = available_cores()
            for i in order:
                name = models[i].name
                if name not in measured:
                    continue
                m, handle = measured[name], prepared[name]
                signals: WindowSignals | None = m.window
                results[i] = ModelTrial(
                    samples=list(m.samples),
                    first_run=m.first_run,
                    warmup_runs=m.warmup_runs,
                    peak_mb=m.peak_mb,
                    phases=handle.phases.as_row() if hasattr(handle, "phases") else {},
                    settings=handle.settings(),
                    window=signals.as_row() if signals else {},
                    # A GPU run's host thread waits on the device, so CPU-share signals do not apply (threads=0).
                    reasons=noise_reasons(m.samples, signals, 0 if config.device == "cuda" else threads, cores),
                )
    finally:
        for handle in prepared.values():
            handle.close()
    return results


def _limit_torch_threads(threads: int) -> None:
    # One thread budget for the whole run: torch's pool too, not only the runtime being measured. Only where
    # torch is loaded already: an ONNX Runtime trial does not need it.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_settings(model: ResolvedModel, config: BenchmarkConfig) -> RunSettings:
    resolution = config.resolution[0] if config.resolution else None
    return RunSettings(
        device=config.device,
        threads=config.resolved_threads,
        input_shape=model.input_shape(config.batch_size[0], resolution),
        exporter=config.exporter,
        precision=config.precision,
    )


def _trial_in_process(
    models: Sequence[ResolvedModel], config: BenchmarkConfig, order: Sequence[int]
) -> list[ModelTrial]:
    """Run one trial in a fresh worker process (``python -m convbench.benchmark.worker``), as pyperf does."""
    job = {
        "models": [{"source": m.spec.source, "args": list(m.spec.args), "weights": m.spec.weights} for m in models],
        "config": config.to_mapping(),
        "order": list(order),
    }
    with tempfile.TemporaryDirectory(prefix="convbench-trial-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job, default=list))
        proc = subprocess.run(
            [sys.executable, "-m", "convbench.benchmark.worker", str(job_path), str(out_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if not out_path.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConvbenchError(f"trial worker failed (exit {proc.returncode}): {tail}")
        result = json.loads(out_path.read_text())
    if "error" in result:
        raise ConvbenchError(result["error"], exit_code=result.get("exit_code", 1))
    return [ModelTrial(**r) for r in result["trials"]]


# The benchmark ------------------------------------------------------------------------------------------


@dataclass
class Stopping:
    """Why the trials stopped (adaptive stopping), recorded in every row."""

    trials: int
    reason: str


def benchmark(
    models: Sequence[str | ModelSpec],
    config: BenchmarkConfig | None = None,
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Count and time ``models`` (interleaved, in independent trials) and return one result row each.

    The first model is the baseline: every row carries the speed-up over it (ratio of medians with a two-level
    bootstrap 95% interval over trials and samples, the between-trial spread and a verdict) and the
    theoretical speed-up from MACs. A model that runs out of memory gets a row with an ``error`` and no
    timings; the others are still measured. With ``samples``, one record of raw per-run latencies per model
    and trial is appended to it.
    """
    if not models:
        raise UserInputError("no models given")
    config = validate(config or BenchmarkConfig())  # each option's check, then the checks across options
    specs = [as_spec(m) for m in models]
    if len({s.label for s in specs}) != len(specs):
        raise UserInputError("each model may be given only once")
    resolution = config.resolution[0] if config.resolution else None
    resolved = [resolve_model(s, resolution=resolution) for s in specs]  # unknown names fail here
    cls = runtime_class(config.runtime, config.device)
    for model in resolved:
        if model.is_onnx and not cls.runs_onnx:
            raise UserInputError(f"runtime {cls.name} needs a PyTorch model; {model.name} is an ONNX file")
        if not model.is_onnx and not cls.runs_torch:
            raise UserInputError(f"runtime {cls.name} runs ONNX files only; {model.name} is a PyTorch model")
        run_settings(model, config)  # an unknown input size fails here
    runtime = cls()
    runtime.check(run_settings(resolved[0], config), config.runtime_options())
    check_device(config.device)

    counts: dict[str, CountResult] = {}
    for model in resolved:
        if progress:
            progress.phase(f"counting {model.name}", None)
        try:
            counts[model.name] = count(model, resolution=resolution, convention=config.convention)
        except RuntimeError as exc:  # e.g. an input too small for the network's pooling
            reason = str(exc).strip().splitlines()[0]
            where = f"batch {config.batch_size[0]}, resolution {resolution or model.resolution()}"
            raise ConvbenchError(f"{model.name} cannot run at {where}: {reason}") from None
        if progress:
            progress.phase(f"preparing {model.name} for {cls.name}", None)
        runtime.prefetch(model, run_settings(model, config))  # exports once here; trial workers find them cached

    peak = _machine_peak(config, progress)  # measured once per machine and cached; never during the trials
    trials, stopping, load = _run_trials(resolved, config, progress)
    return _rows(resolved, config, counts, trials, stopping, load, samples, peak)


def _machine_peak(config: BenchmarkConfig, progress: Progress | None) -> Any:
    """The attainable GEMM rate of this runtime and thread budget (``convbench peak``), or None if it has none."""
    from convbench.timing.peak import GEMMS, measure_peak

    if config.runtime_name not in GEMMS:
        return None
    if progress:
        progress.phase(f"this machine's peak GMAC/s on {config.runtime_name} (cached after the first time)", None)
    return measure_peak(config.runtime_name, config.resolved_threads, config.device)


def _run_trials(
    models: Sequence[ResolvedModel], config: BenchmarkConfig, progress: Progress | None
) -> tuple[list[list[ModelTrial]], Stopping, tuple[float, float]]:
    rng = random.Random(config.seed)
    start = time.perf_counter()
    trials: list[list[ModelTrial]] = []
    load_before = load_average()
    while True:
        order = list(range(len(models)))
        rng.shuffle(order)
        if progress:
            progress.phase(
                f"trial {len(trials) + 1} of {config.trials}" + (" (adaptive)" if config.target_ci else ""), None
            )
        if config.isolate == "process":
            trials.append(_trial_in_process(models, config, order))
        else:
            trials.append(run_trial(models, config, order, progress))
        if len(trials) < config.trials:
            continue
        if config.target_ci is None:
            stopping = Stopping(len(trials), f"{len(trials)} trials")
            break
        widest = _widest_half_width(models, trials)
        elapsed = time.perf_counter() - start
        if widest <= config.target_ci:
            stopping = Stopping(
                len(trials), f"target reached: ±{widest:.2f}% ≤ ±{config.target_ci:g}% after {len(trials)} trials"
            )
            break
        per_trial = elapsed / len(trials)
        if elapsed + per_trial > config.max_time:
            stopping = Stopping(
                len(trials),
                f"--max-time {config.max_time:g} s reached: ±{widest:.2f}% > "
                f"±{config.target_ci:g}% after {len(trials)} trials",
            )
            break
    return trials, stopping, (load_before, load_average())


def _per_model(trials: list[list[ModelTrial]], index: int) -> list[list[float]]:
    return [t[index].samples for t in trials if t[index].samples]


def _widest_half_width(models: Sequence[ResolvedModel], trials: list[list[ModelTrial]]) -> float:
    import math

    from convbench.timing.stats import hierarchical_median_interval, hierarchical_speedup, summarize

    base = _per_model(trials, 0)
    widths = []
    for i in range(len(models)):
        own = _per_model(trials, i)
        if len(models) == 1:
            low, high = hierarchical_median_interval(own)
            median = summarize([x for t in own for x in t]).median_ms
            widths.append(100 * (high - low) / 2 / median if median else math.inf)
        elif i > 0 and own and base and len(own) == len(base):
            widths.append(hierarchical_speedup(base, own).half_width_pct)
    return max(widths) if widths else math.inf


def _rows(
    models: Sequence[ResolvedModel],
    config: BenchmarkConfig,
    counts: dict[str, CountResult],
    trials: list[list[ModelTrial]],
    stopping: Stopping,
    load: tuple[float, float],
    samples: list[dict[str, Any]] | None,
    peak: Any = None,
) -> list[dict[str, Any]]:
    from convbench.timing.stats import hierarchical_speedup

    env = {**environment(), "load_avg_before": load[0], "load_avg_after": load[1]}
    run_id = new_run_id()
    key = config.settings_key()
    rows = []
    base_trials = _per_model(trials, 0)
    for i, model in enumerate(models):
        counted = counts[model.name]
        settings = run_settings(model, config)
        row: dict[str, Any] = {
            "run_id": run_id,
            **model.identity(),
            "batch_size": settings.batch_size,
            "resolution": settings.input_shape[-1],
            "device": config.device,
            "runtime": config.runtime_name,
            "threads": settings.threads,
            "exporter": config.exporter,
            "precision": config.precision,
            "gmacs": counted.gmacs,
            "conv_gmacs": counted.conv_macs / 1e9,
            "params_m": counted.mparams,
            "macs_convention": counted.convention,
            "trials": stopping.trials,
            "stopping": stopping.reason,
            "isolate": config.isolate,
            "seed": config.seed,
            "target_ci": config.target_ci,
            "max_time": config.max_time,
            **{f"timing_{k}": v for k, v in asdict(config.timing).items()},
            "config_key": key,
            **env,
        }
        own = [t[i] for t in trials]
        errors = [t.error for t in own if t.error]
        if errors:
            rows.append({**row, "error": errors[0]})
            continue
        per_trial = [t.samples for t in own]
        row.update(_latency(per_trial, settings.batch_size))
        row.update(_trial_context(own))
        row.update(_efficiency(counted, row["median_ms"], settings.batch_size, peak))
        if len(models) > 1 and base_trials and len(base_trials) == len(per_trial):
            s = hierarchical_speedup(base_trials, per_trial)
            row.update(
                baseline=models[0].name,
                **s.as_row(baseline=i == 0),
                theoretical_speedup=counts[models[0].name].macs / counted.macs if counted.macs else float("nan"),
            )
        rows.append(row)
        if samples is not None:
            for t, trial in enumerate(own):
                samples.append(
                    {
                        "run_id": run_id,
                        "model": model.name,
                        "trial": t,
                        "batch_size": settings.batch_size,
                        "resolution": settings.input_shape[-1],
                        "device": config.device,
                        "runtime": config.runtime_name,
                        "samples_ms": [x * 1e3 for x in trial.samples],
                    }
                )
    return rows


def _latency(per_trial: list[list[float]], batch_size: int) -> dict[str, Any]:
    from convbench.timing.stats import hierarchical_median_interval, summarize

    pooled = [x for t in per_trial for x in t]
    summary = summarize(pooled)
    low, high = hierarchical_median_interval(per_trial)
    trial_medians = [summarize(t).median_ms for t in per_trial]
    return {
        "median_ms": summary.median_ms,
        "median_low_ms": low,
        "median_high_ms": high,
        "mean_ms": summary.mean_ms,
        "std_ms": summary.std_ms,
        "min_ms": summary.min_ms,
        "max_ms": summary.max_ms,
        "p90_ms": summary.p90_ms,
        "p99_ms": summary.p99_ms,
        "iqr_ms": summary.iqr_ms,
        "cv": summary.cv,
        "n_runs": summary.n,
        "trial_median_min_ms": min(trial_medians),
        "trial_median_max_ms": max(trial_medians),
        "throughput_ips": batch_size / (summary.median_ms / 1e3),
    }


def _trial_context(own: list[ModelTrial]) -> dict[str, Any]:
    """First run, setup, memory, noise and settings over all trials of one model."""
    reasons: list[str] = []
    for t, trial in enumerate(own, start=1):
        reasons += [f"trial {t}: {r}" for r in trial.reasons]
    windows = [t.window for t in own if t.window]
    context: dict[str, Any] = {
        "first_run_ms": own[0].first_run * 1e3,
        "warmup_runs": own[0].warmup_runs,
        "noisy": bool(reasons),
        "noisy_reason": "; ".join(reasons),
    }
    for column in windows[0] if windows else {}:
        values = [w[column] for w in windows if w.get(column) == w.get(column)]
        context[column] = max(values) if values else float("nan")
    phase_columns = dict.fromkeys(c for t in own for c in t.phases)
    for column in phase_columns:
        values = [t.phases[column] for t in own if column in t.phases]
        context[column] = max(values) if column.startswith(("peak_", "rss_")) else sum(values) / len(values)
    memory = [t.peak_mb for t in own if t.peak_mb == t.peak_mb]
    if memory:
        context["peak_inference_mb"] = max(memory)
    # Per trial: the process's peak over this model's setup and inference, and how far preparing and running this
    # model pushed it above what the process held before (the other models of the trial included).
    peaks, added = [], []
    for trial in own:
        values = [v for k, v in trial.phases.items() if k.startswith("peak_") and v == v]
        values += [trial.peak_mb] if trial.peak_mb == trial.peak_mb else []
        if values:
            peaks.append(max(values))
            start = trial.phases.get("rss_start_mb", float("nan"))
            if start == start:
                added.append(max(values) - start)
    context["peak_mb"] = max(peaks) if peaks else float("nan")
    context["peak_added_mb"] = max(added) if added else float("nan")
    settings = dict(own[-1].settings)
    settings.update({k: v for k, v in own[0].settings.items() if k.endswith("_before")})
    context.update(settings)
    return context


def _efficiency(counted: CountResult, median_ms: float, batch_size: int, peak: Any) -> dict[str, Any]:
    """Achieved GMAC/s, and the fraction of the machine's measured GEMM peak it reaches."""
    if peak is not None:
        from convbench.timing.peak import efficiency

        return efficiency(counted.gmacs, median_ms, batch_size, peak)
    achieved = counted.gmacs * batch_size / (median_ms / 1e3) if median_ms > 0 else float("nan")
    return {"achieved_gmacs_per_s": achieved}


def sweep(
    models: Sequence[str | ModelSpec],
    config: BenchmarkConfig,
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``benchmark`` for every (batch size, resolution) combination of ``config``; rows of all in order."""
    combos = list(itertools.product(config.batch_size, config.resolution or (None,)))
    rows: list[dict[str, Any]] = []
    for i, (batch_size, resolution) in enumerate(combos, start=1):
        if progress and len(combos) > 1:
            progress.phase(f"sweep {i}/{len(combos)}: batch {batch_size}, resolution {resolution or 'default'}", None)
        rows += benchmark(models, config.for_combination(batch_size, resolution), progress, samples)
    return rows


def trial_job_result(job: dict[str, Any]) -> dict[str, Any]:
    """What a worker process computes for one job (see ``convbench.benchmark.worker``)."""
    specs = [ModelSpec(m["source"], tuple(tuple(a) for a in m["args"]), m["weights"]) for m in job["models"]]
    config = config_from_mapping({k: tuple(v) if isinstance(v, list) else v for k, v in job["config"].items()})
    resolution = config.resolution[0] if config.resolution else None
    models = [resolve_model(s, resolution=resolution) for s in specs]
    return {"trials": [asdict(t) for t in run_trial(models, config, job["order"])]}


__all__ = ["BenchmarkConfig", "benchmark", "config_from_mapping", "run_trial", "sweep"]
