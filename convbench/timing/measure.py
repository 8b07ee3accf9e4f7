"""The measuring loop: warm-up, then interleaved timed runs, for any runtime.

Only ``PreparedModel.timed_run`` is called, so this module does not know which runtime it drives. Several
models are timed in the same process in alternating blocks (A A A B B B A A A ...), so slow drift of the
machine (other tenants, thermal state) hits every model alike and ratios stay fair.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from convbench.errors import UserInputError
from convbench.options import at_least, option, validate
from convbench.progress import Progress, Silent
from convbench.runtimes.base import PreparedModel
from convbench.timing.energy import EnergyCounter, EnergyWindow, NoCounter, energy_window


@dataclass(frozen=True)
class TimingSettings:
    """How long to warm up and to measure in each trial: both a count and a minimum time must be reached.

    The defaults are per trial; a benchmark runs several trials (``BenchmarkConfig.trials``), so a model is
    measured for about ``trials × min_time`` seconds in all.
    """

    warmup: int = option(5, "Warm-up runs per model and trial (at least this many).", check=at_least(0), in_key=False)
    warmup_time: float = option(
        0.5, "Warm-up seconds per model and trial (at least this long).", check=at_least(0), in_key=False
    )
    # Short trials, many of them: the variation between sessions dominates a rerun's error, and only more
    # trials average it (benchmarks/reproducibility.py measured 6 trials of 20 runs and 1 s: spread 3.2%).
    runs: int = option(15, "Measured runs per model and trial (at least this many).", check=at_least(1), in_key=False)
    min_time: float = option(
        0.75, "Measured seconds per model and trial (at least this long).", check=at_least(0), in_key=False
    )
    block: int = option(5, "Runs of one model in a row before the next model's turn.", check=at_least(1), in_key=False)
    require_energy: bool = option(
        False,
        "Fail (exit 2) where no energy counter exists (RAPL on the CPU, NVML on a GPU) instead of noting it.",
        in_key=False,
    )

    def validate(self) -> TimingSettings:
        return validate(self)


@dataclass
class Measurement:
    """Raw timings of one model: the first inference, warm-up and every measured run (seconds)."""

    first_run: float
    warmup_runs: int
    samples: list[float] = field(default_factory=list)
    peak_mb: float = float("nan")  # the process's peak resident memory (MiB) during this model's first run and warm-up
    window: Any = None  # convbench.noise.WindowSignals of the interleaved measured runs (shared by all models)
    energy: EnergyWindow | None = None  # the energy window after the measured runs, where a counter exists
    energy_note: str = ""  # "energy: not available (<reason>)" where none does


def measure(
    models: Mapping[str, PreparedModel],
    timing: TimingSettings,
    progress: Progress | None = None,
    first_runs: Mapping[str, float] | None = None,
) -> dict[str, Measurement]:
    """Time every model: first run, warm-up, then interleaved blocks until all reach count and time.

    ``first_runs`` holds first-inference times already taken by the caller (who may have run each model
    once to catch out-of-memory errors early); those models are not run a first time again.

    Energy (``convbench.timing.energy``): after the measured runs, each model with an energy counter runs back
    to back for at least a second more, outside its samples, with the counter read around; without a counter
    its ``energy_note`` says why, or with ``require_energy`` that is an error before anything runs.
    """
    progress = progress or Silent()
    timing.validate()
    first_runs = first_runs or {}
    counters = _energy_counters(models, timing.require_energy)
    try:
        return _measure(models, timing, progress, first_runs, counters)
    finally:
        for counter in counters.values():
            if not isinstance(counter, NoCounter):
                counter.close()


def _energy_counters(models: Mapping[str, PreparedModel], required: bool) -> dict[str, EnergyCounter | NoCounter]:
    counters: dict[str, EnergyCounter | NoCounter] = {}
    for name, model in models.items():
        counters[name] = counter = model.energy_counter()
        if required and isinstance(counter, NoCounter):
            for opened in counters.values():
                if not isinstance(opened, NoCounter):
                    opened.close()
            raise UserInputError(f"--require-energy: {counter.note}")
    return counters


def _measure(
    models: Mapping[str, PreparedModel],
    timing: TimingSettings,
    progress: Progress,
    first_runs: Mapping[str, float],
    counters: Mapping[str, EnergyCounter | NoCounter],
) -> dict[str, Measurement]:
    from convbench.timing import memory
    from convbench.timing.noise import timed_window

    results: dict[str, Measurement] = {}
    for name, model in models.items():
        model.measurement_started()
        progress.phase(f"warm-up {name}", timing.warmup + 1)
        # Warm-up runs one model at a time, so the high-water mark during it is that of its own inference.
        memory.reset_peak()
        first = first_runs[name] if name in first_runs else model.timed_run()
        progress.advance()
        results[name] = Measurement(first_run=first, warmup_runs=0)
        start = time.perf_counter()
        while results[name].warmup_runs < timing.warmup or time.perf_counter() - start < timing.warmup_time:
            model.timed_run()
            results[name].warmup_runs += 1
            if results[name].warmup_runs <= timing.warmup:
                progress.advance()
        results[name].peak_mb = memory.peak_rss_mb()
        model.warmup_finished()

    label = "measuring " + (" vs ".join(models) if len(models) <= 3 else f"{len(models)} models interleaved")
    progress.phase(label, timing.runs * len(models))
    with timed_window() as window:
        _interleave(models, results, timing, progress)
    for name, model in models.items():
        counter = counters[name]
        if isinstance(counter, NoCounter):
            results[name].energy_note = counter.note
        else:
            progress.phase(f"energy of {name}", None)
            results[name].energy = energy_window(model.timed_run, counter, min_runs=timing.block)
    for model in models.values():
        model.measurement_finished()
    for m in results.values():
        m.window = window.signals
    return results


def _interleave(
    models: Mapping[str, PreparedModel], results: dict[str, Measurement], timing: TimingSettings, progress: Progress
) -> None:
    def done(m: Measurement) -> bool:
        return len(m.samples) >= timing.runs and sum(m.samples) >= timing.min_time

    while not all(done(m) for m in results.values()):
        # Every model runs in every round, even one that has enough samples, so the tail stays interleaved.
        for name, model in models.items():
            samples = results[name].samples
            for _ in range(timing.block):
                samples.append(model.timed_run())
                if len(samples) <= timing.runs:
                    progress.advance()
