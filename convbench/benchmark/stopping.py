"""How many trials: a fixed number, or (with ``--target-ci``) trials added until every interval is tight enough."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from convbench.benchmark.plan import Plan
from convbench.benchmark.trials import ModelTrial, run_trial, trial_in_process
from convbench.models.spec import ResolvedModel
from convbench.progress import Progress
from convbench.results.files import load_average


@dataclass(frozen=True)
class Stopping:
    """Why the trials stopped, recorded in every row."""

    trials: int
    reason: str


@dataclass
class TrialRun:
    """Every trial's measurements (``trials[t][i]``: model ``i`` in trial ``t``), why they stopped, and the
    load average before and after."""

    trials: list[list[ModelTrial]]
    stopping: Stopping
    load: tuple[float, float]


def run_trials(models: Sequence[ResolvedModel], plan: Plan, progress: Progress | None = None) -> TrialRun:
    """Run trials of ``models`` in a shuffled order each, until the plan's protocol says stop."""
    protocol = plan.protocol
    rng = random.Random(protocol.seed)
    start = time.perf_counter()
    trials: list[list[ModelTrial]] = []
    load_before = load_average()
    while True:
        order = list(range(len(models)))
        rng.shuffle(order)
        if progress:
            progress.phase(
                f"trial {len(trials) + 1} of {protocol.trials}" + (" (adaptive)" if protocol.target_ci else ""), None
            )
        if protocol.isolate == "process":
            trials.append(trial_in_process(models, plan, order))
        else:
            trials.append(run_trial(models, plan, order, progress))
        stopping = _stop(models, trials, plan, time.perf_counter() - start)
        if stopping is not None:
            return TrialRun(trials, stopping, (load_before, load_average()))


def _stop(
    models: Sequence[ResolvedModel], trials: list[list[ModelTrial]], plan: Plan, elapsed: float
) -> Stopping | None:
    protocol = plan.protocol
    n = len(trials)
    if n < protocol.trials:
        return None
    if protocol.target_ci is None:
        return Stopping(n, f"{n} trials")
    widest = widest_half_width(len(models), trials)
    if widest <= protocol.target_ci:
        return Stopping(n, f"target reached: ±{widest:.2f}% ≤ ±{protocol.target_ci:g}% after {n} trials")
    if elapsed + elapsed / n > protocol.max_time:
        return Stopping(
            n, f"--max-time {protocol.max_time:g} s reached: ±{widest:.2f}% > ±{protocol.target_ci:g}% after {n} trials"
        )
    return None


def per_model(trials: list[list[ModelTrial]], index: int) -> list[list[float]]:
    """Model ``index``'s samples, one list per trial in which it ran."""
    return [t[index].samples for t in trials if t[index].samples]


def widest_half_width(n_models: int, trials: list[list[ModelTrial]]) -> float:
    """The widest 95% interval half-width, in percent: of each speed-up, or of a lone model's median."""
    from convbench.timing.stats import hierarchical_median_interval, hierarchical_speedup, summarize

    base = per_model(trials, 0)
    widths = []
    for i in range(n_models):
        own = per_model(trials, i)
        if n_models == 1:
            low, high = hierarchical_median_interval(own)
            median = summarize([x for t in own for x in t]).median_ms
            widths.append(100 * (high - low) / 2 / median if median else math.inf)
        elif i > 0 and own and base and len(own) == len(base):
            widths.append(hierarchical_speedup(base, own).half_width_pct)
    return max(widths) if widths else math.inf
