"""Result rows: one per model and plan point, built from its trials, counts and the plan that produced them.

To add a result column: compute it here (or in the runtime's ``PreparedModel.settings()``, which every row
carries), and give it a place in ``convbench.results.files.COLUMNS`` if it should not trail at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from convbench.benchmark.plan import Plan
from convbench.benchmark.stopping import TrialRun, per_model
from convbench.benchmark.trials import ModelTrial
from convbench.counting.macs import CountResult
from convbench.models.spec import ResolvedModel
from convbench.results.files import environment, new_run_id


def build_rows(
    models: Sequence[ResolvedModel],
    plan: Plan,
    counts: dict[str, CountResult],
    run: TrialRun,
    samples: list[dict[str, Any]] | None = None,
    peak: Any = None,
) -> list[dict[str, Any]]:
    """One row per model: its identity, the plan, counts, latency over all trials, context, speed-up."""
    # Imported here: numpy and scipy behind them would slow `convbench --help` and `list`.
    from convbench.timing.energy import energy_columns
    from convbench.timing.stats import hierarchical_speedup

    trials, stopping, load = run.trials, run.stopping, run.load
    backend, protocol = plan.backend, plan.protocol
    env = {**environment(), "load_avg_before": load[0], "load_avg_after": load[1]}
    run_id = new_run_id()
    rows = []
    base_trials = per_model(trials, 0)
    for i, model in enumerate(models):
        counted = counts[model.name]
        settings = plan.run_settings(model)
        row: dict[str, Any] = {
            "run_id": run_id,
            **model.identity(),
            "batch_size": settings.batch_size,
            "resolution": settings.input_shape[-1],
            "device": backend.device,
            "runtime": backend.runtime,
            "threads": settings.threads,
            "exporter": backend.exporter,
            "precision": backend.precision,
            "gmacs": counted.gmacs,
            "conv_gmacs": counted.conv_macs / 1e9,
            "params_m": counted.mparams,
            "macs_convention": counted.convention,
            "trials": stopping.trials,
            "stopping": stopping.reason,
            "isolate": protocol.isolate,
            "seed": protocol.seed,
            "target_ci": protocol.target_ci,
            "max_time": protocol.max_time,
            **{f"timing_{k}": v for k, v in asdict(protocol.timing).items()},
            "config_key": plan.settings_key,
            **env,
        }
        own = [t[i] for t in trials]
        errors = [t.error for t in own if t.error]
        if errors:
            no_energy = energy_columns([], "energy: not available (the model did not run)", settings.batch_size)
            rows.append({**row, **no_energy, "error": errors[0]})
            continue
        per_trial = [t.samples for t in own]
        row.update(latency_columns(per_trial, settings.batch_size))
        row.update(trial_context(own))
        note = next((t.energy_note for t in own if t.energy_note), "")
        row.update(energy_columns([t.energy for t in own], note, settings.batch_size))
        row.update(efficiency_columns(counted, row["median_ms"], settings.batch_size, peak))
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
                        "device": backend.device,
                        "runtime": backend.runtime,
                        "samples_ms": [x * 1e3 for x in trial.samples],
                    }
                )
    return rows


def latency_columns(per_trial: list[list[float]], batch_size: int) -> dict[str, Any]:
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


def trial_context(own: list[ModelTrial]) -> dict[str, Any]:
    """First run, setup, memory, noise and settings over all trials of one model."""
    from convbench.timing.noise import summarize_reasons

    # One line per signal over all trials ("10/10 trials: other processes used 1.28–1.37 cores"), not per trial.
    reasons = summarize_reasons([trial.reasons for trial in own], len(own))
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


def efficiency_columns(counted: CountResult, median_ms: float, batch_size: int, peak: Any) -> dict[str, Any]:
    """Achieved GMAC/s, and the fraction of the machine's measured GEMM peak it reaches."""
    if peak is not None:
        from convbench.timing.peak import efficiency

        return efficiency(counted.gmacs, median_ms, batch_size, peak)
    achieved = counted.gmacs * batch_size / (median_ms / 1e3) if median_ms > 0 else float("nan")
    return {"achieved_gmacs_per_s": achieved}
