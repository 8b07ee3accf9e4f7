"""The measuring loop: warm-up, then interleaved timed runs, for any runtime.

Only ``PreparedModel.timed_run`` is called, so this module does not know which runtime it drives. Several
models are timed in the same process in alternating blocks (A A A B B B A A A ...), so slow drift of the
machine (other tenants, thermal state) hits every model alike and ratios stay fair.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from convbench.errors import UserInputError
from convbench.runtimes.base import PreparedModel


@dataclass(frozen=True)
class TimingSettings:
    """How long to warm up and to measure: both a count and a minimum time must be reached."""

    warmup: int = 10
    warmup_time: float = 1.0
    runs: int = 50
    min_time: float = 2.0
    block: int = 5

    def validate(self) -> TimingSettings:
        if self.warmup < 0:
            raise UserInputError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.runs < 1:
            raise UserInputError(f"--runs must be at least 1, got {self.runs}")
        if self.warmup_time < 0 or self.min_time < 0:
            raise UserInputError("--warmup-time and --min-time must be 0 or more seconds")
        if self.block < 1:
            raise UserInputError(f"--block must be at least 1, got {self.block}")
        return self


class Progress(Protocol):
    """What the measuring loop reports; the CLI renders it with rich, tests pass nothing."""

    def phase(self, description: str, total: int | None) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _Silent:
    def phase(self, description: str, total: int | None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


@dataclass
class Measurement:
    """Raw timings of one model: the first inference, warm-up and every measured run (seconds)."""

    first_run: float
    warmup_runs: int
    samples: list[float] = field(default_factory=list)


def measure(
    models: Mapping[str, PreparedModel],
    timing: TimingSettings,
    progress: Progress | None = None,
    first_runs: Mapping[str, float] | None = None,
) -> dict[str, Measurement]:
    """Time every model: first run, warm-up, then interleaved blocks until all reach count and time.

    ``first_runs`` holds first-inference times already taken by the caller (who may have run each model
    once to catch out-of-memory errors early); those models are not run a first time again.
    """
    progress = progress or _Silent()
    timing.validate()
    first_runs = first_runs or {}
    results: dict[str, Measurement] = {}
    for name, model in models.items():
        progress.phase(f"warm-up {name}", timing.warmup + 1)
        first = first_runs[name] if name in first_runs else model.timed_run()
        progress.advance()
        results[name] = Measurement(first_run=first, warmup_runs=0)
        start = time.perf_counter()
        while results[name].warmup_runs < timing.warmup or time.perf_counter() - start < timing.warmup_time:
            model.timed_run()
            results[name].warmup_runs += 1
            if results[name].warmup_runs <= timing.warmup:
                progress.advance()

    def done(m: Measurement) -> bool:
        return len(m.samples) >= timing.runs and sum(m.samples) >= timing.min_time

    label = "measuring " + (" vs ".join(models) if len(models) <= 3 else f"{len(models)} models interleaved")
    progress.phase(label, timing.runs * len(models))
    while not all(done(m) for m in results.values()):
        # Every model runs in every round, even one that has enough samples, so the tail stays interleaved.
        for name, model in models.items():
            samples = results[name].samples
            for _ in range(timing.block):
                samples.append(model.timed_run())
                if len(samples) <= timing.runs:
                    progress.advance()
    return results
