"""Profile and compare models: the orchestration behind ``convbench profile``, ``compare``, ``reproduce``, ``run``.

``benchmark`` counts the models, prepares them once on the runtime (exports are cached, so trial workers only
load them), then runs independent trials (``trials``) until the protocol says stop (``stopping``) and builds one
row per model (``rows``). Intervals come from a two-level bootstrap over trials and the samples within them
(``convbench.timing.stats``). The modules of this package, in the order a run goes through them:

- ``plan``: the request (``BenchmarkConfig``) and what it resolves to (``Plan``: workload, backend, protocol);
- ``trials``: one trial, in this process or a fresh worker process (``worker``);
- ``stopping``: how many trials;
- ``rows``: result rows;
- ``runspec``: sweeps from a TOML file, sharded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convbench.benchmark.plan import BenchmarkConfig, Plan, config_from_mapping, runtime_option_classes
from convbench.benchmark.rows import build_rows
from convbench.benchmark.stopping import run_trials
from convbench.benchmark.trials import run_trial
from convbench.counting.macs import CountResult, count
from convbench.errors import ConvbenchError, UserInputError
from convbench.models.spec import ModelSpec, ResolvedModel, as_spec
from convbench.options import validate
from convbench.progress import Progress
from convbench.runtimes import check_device


def benchmark(
    models: Sequence[str | ModelSpec],
    config: BenchmarkConfig | Plan | None = None,
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Count and time ``models`` (interleaved, in independent trials) and return one result row each.

    ``config`` is one plan, or a request for one (batch size, resolution). The first model is the baseline:
    every row carries the speed-up over it (ratio of medians with a two-level bootstrap 95% interval over trials
    and samples, the between-trial spread and a verdict) and the theoretical speed-up from MACs. A model that
    runs out of memory gets a row with an ``error`` and no timings; the others are still measured. With
    ``samples``, one record of raw per-run latencies per model and trial is appended to it.
    """
    plan = config if isinstance(config, Plan) else validate(config or BenchmarkConfig()).plan()
    return _benchmark_plan(models, plan, progress, samples)


def sweep(
    models: Sequence[str | ModelSpec],
    config: BenchmarkConfig,
    progress: Progress | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``benchmark`` for every (batch size, resolution) point of ``config``; rows of all in order."""
    plans = validate(config).plans()
    rows: list[dict[str, Any]] = []
    for i, plan in enumerate(plans, start=1):
        if progress and len(plans) > 1:
            w = plan.workload
            progress.phase(
                f"sweep {i}/{len(plans)}: batch {w.batch_size}, resolution {w.resolution or 'default'}", None
            )
        rows += _benchmark_plan(models, plan, progress, samples)
    return rows


def resolve_for(specs: Sequence[str | ModelSpec], plan: Plan) -> list[ResolvedModel]:
    """The models of a plan, checked against its runtime: unknown names and impossible inputs fail here."""
    specs = [as_spec(m) for m in specs]
    if len({s.label for s in specs}) != len(specs):
        raise UserInputError("each model may be given only once")
    resolved = [plan.resolve(s) for s in specs]
    cls = plan.backend.runtime_class
    for model in resolved:
        if model.is_onnx and not cls.runs_onnx:
            raise UserInputError(f"runtime {cls.name} needs a PyTorch model; {model.name} is an ONNX file")
        if not model.is_onnx and not cls.runs_torch:
            raise UserInputError(f"runtime {cls.name} runs ONNX files only; {model.name} is a PyTorch model")
        plan.run_settings(model)  # an unknown input size fails here
    return resolved


def _benchmark_plan(
    models: Sequence[str | ModelSpec], plan: Plan, progress: Progress | None, samples: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    if not models:
        raise UserInputError("no models given")
    resolved = resolve_for(models, plan)
    runtime = plan.backend.runtime_class()
    runtime.check(plan.run_settings(resolved[0]), plan.backend.options)
    check_device(plan.backend.device)

    counts: dict[str, CountResult] = {}
    resolution = plan.workload.resolution
    for model in resolved:
        if progress:
            progress.phase(f"counting {model.name}", None)
        try:
            counts[model.name] = count(model, resolution=resolution, convention=plan.workload.convention)
        except RuntimeError as exc:  # e.g. an input too small for the network's pooling
            reason = str(exc).strip().splitlines()[0]
            where = f"batch {plan.workload.batch_size}, resolution {resolution or model.resolution()}"
            raise ConvbenchError(f"{model.name} cannot run at {where}: {reason}") from None
        if progress:
            progress.phase(f"preparing {model.name} for {runtime.name}", None)
        runtime.prefetch(model, plan.run_settings(model))  # exports once here; trial workers find them cached

    peak = _machine_peak(plan, progress)  # measured once per machine and cached; never during the trials
    run = run_trials(resolved, plan, progress)
    return build_rows(resolved, plan, counts, run, samples, peak)


def _machine_peak(plan: Plan, progress: Progress | None) -> Any:
    """The attainable GEMM rate of this runtime and thread budget at the rows' own compute precision
    (``convbench peak``), or None where the runtime has no GEMM for it."""
    from convbench.timing.peak import measure_peak, peak_precision_for

    backend = plan.backend
    precision = peak_precision_for(backend.runtime, backend.device, backend.precision, backend.options)
    if precision is None or precision not in backend.runtime_class().peak_precisions(backend.device):
        return None
    if progress:
        progress.phase(f"this machine's peak {precision} GMAC/s on {backend.runtime} (cached once measured)", None)
    return measure_peak(backend.runtime, backend.threads, backend.device, precision=precision)


__all__ = [
    "BenchmarkConfig",
    "Plan",
    "benchmark",
    "config_from_mapping",
    "resolve_for",
    "run_trial",
    "runtime_option_classes",
    "sweep",
]
