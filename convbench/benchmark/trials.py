"""One trial: fresh sessions for every model, timed interleaved; in this process or in a fresh worker process.

Why trials. Latency samples from one session are not independent draws of a model's latency: memory layout,
allocator and arena state, core placement and prepacked weights are fixed for a whole session and change
between sessions, so an interval computed from one session's samples describes that session only. As pyperf
does with worker processes, each trial prepares every model afresh (by default in a fresh process, see
``convbench.benchmark.worker``) and times them interleaved in a shuffled order.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from convbench.benchmark.plan import Plan
from convbench.errors import ConvbenchError
from convbench.models.spec import ModelSpec, ResolvedModel
from convbench.progress import Progress
from convbench.timing.machine import available_cores
from convbench.timing.measure import measure


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
    #: the energy window's figures (``convbench.timing.energy.EnergyWindow.as_dict``), or why there are none.
    energy: dict[str, Any] = field(default_factory=dict)
    energy_note: str = ""
    error: str = ""


def run_trial(
    models: Sequence[ResolvedModel], plan: Plan, order: Sequence[int], progress: Progress | None = None
) -> list[ModelTrial]:
    """Prepare every model (fresh sessions), time them interleaved in ``order``; one ModelTrial per model."""
    from convbench.timing.noise import WindowSignals, noise_reasons

    runtime = plan.backend.runtime_class()
    runtime.limit_threads(plan.backend.threads)
    results = [ModelTrial() for _ in models]
    prepared: dict[str, Any] = {}
    first_runs: dict[str, float] = {}
    try:
        for i in order:
            model = models[i]
            settings = plan.run_settings(model)
            if progress:
                progress.phase(f"preparing {model.name} ({runtime.name}, batch {settings.batch_size})", None)
            handle = None
            try:
                handle = runtime.prepare(model, settings, plan.backend.options)
                first_runs[model.name] = handle.timed_run()  # catches out-of-memory before the timed loop
                prepared[model.name] = handle
            except Exception as exc:
                if handle is not None:
                    handle.close()
                if not runtime.is_out_of_memory(exc):
                    raise
                results[i].error = f"out of memory at batch size {settings.batch_size}: {str(exc).splitlines()[0]}"
        if prepared:
            measured = measure(prepared, plan.protocol.timing, progress, first_runs)
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
                    reasons=noise_reasons(m.samples, signals, handle.host_threads(plan.backend.threads), cores),
                    energy=m.energy.as_dict() if m.energy else {},
                    energy_note=m.energy_note,
                )
    finally:
        for handle in prepared.values():
            handle.close()
    return results


@dataclass(frozen=True)
class TrialJob:
    """What a worker process receives: the models (as specs, resolved again there), the plan and the order."""

    models: tuple[ModelSpec, ...]
    plan: Plan
    order: tuple[int, ...]

    def run(self) -> list[ModelTrial]:
        models = [self.plan.resolve(s) for s in self.models]
        return run_trial(models, self.plan, self.order)


def run_worker(job: TrialJob, timeout_s: float) -> list[ModelTrial]:
    """Run ``job`` in a fresh ``python -m convbench.benchmark.worker`` process; stop it after ``timeout_s``."""
    with tempfile.TemporaryDirectory(prefix="convbench-trial-") as tmp:
        job_path, out_path = Path(tmp) / "job.pickle", Path(tmp) / "result.json"
        job_path.write_bytes(pickle.dumps(job))
        command = [sys.executable, "-m", "convbench.benchmark.worker", str(job_path), str(out_path)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ConvbenchError(
                f"a trial's worker process did not finish within {timeout_s:g} s and was stopped "
                "(--worker-timeout; a hung runtime, or a model too large for the limit)"
            ) from None
        if not out_path.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConvbenchError(f"trial worker failed (exit {proc.returncode}): {tail}")
        import json

        result = json.loads(out_path.read_text())
    if "error" in result:
        raise ConvbenchError(result["error"], exit_code=result.get("exit_code", 1))
    return [ModelTrial(**r) for r in result["trials"]]


def trial_in_process(models: Sequence[ResolvedModel], plan: Plan, order: Sequence[int]) -> list[ModelTrial]:
    """One trial in a fresh worker process, as pyperf does."""
    job = TrialJob(tuple(m.spec for m in models), plan, tuple(order))
    return run_worker(job, plan.protocol.worker_timeout)


def job_result(job: TrialJob) -> dict[str, Any]:
    """What a worker process writes back for one job (see ``convbench.benchmark.worker``)."""
    return {"trials": [asdict(t) for t in job.run()]}
