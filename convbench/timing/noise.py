"""Noise flags from what the machine did during the timed window itself.

The 1-minute load average used before lags the window by up to a minute and counts our own threads, so a
busy run on an idle machine looked loaded and a short burst from another process went unseen. Instead the
CPU counters of the kernel are read right before and right after the timed runs: how much CPU time other
processes took on our cores, how much the hypervisor stole, how much CPU this process got, and how often
it was preempted. Everything is Linux-specific; where a counter is missing its signal is nan and raises no
flag, so other systems keep the sample-based flags (CV, drift) only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from convbench.timing.machine import available_cpu_ids
from convbench.timing.stats import NOISY_CV, NOISY_DRIFT, drift, mann_whitney_p, summarize

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

NAN = float("nan")

# Thresholds, chosen from a single-threaded timing loop on a 2-core KVM guest, quiet and then beside one and
# two CPU-bound processes; each sits well clear of both the quiet and the loaded figures.
#
# Other processes' average CPU use on our cores during the window. A quiet machine shows a few hundredths of
# a core (kernel threads, a shell); one CPU-bound process shows as a whole core. Half a core catches a build
# or a test run in the background but not housekeeping. It is absolute, not per core: even a neighbour on a
# core we do not use shares caches, memory bandwidth and, on SMT or virtual CPUs, the physical core.
OTHER_CORES_LIMIT = 0.5
# CPU time the hypervisor gave to other guests while ours wanted it. Quiet windows show none and even loaded
# ones only a few hundredths; a tenth of a core missing on average is enough to move medians by percents.
STEAL_CORES_LIMIT = 0.1
# Minimum CPU use of this process, in cores. The thread driving the timed loop runs without pause on CPU
# runtimes (no sleeps, no I/O), whatever the runtime does with its workers (ONNX Runtime spins them, PyTorch
# may park them), so a quiet run uses at least one core; clearly less means it was descheduled. The floor is
# one core, not the thread count, because a PyTorch model that parallelises poorly would otherwise look
# descheduled on a quiet machine. A neighbour on a spare core leaves this untouched; it falls once the
# neighbours outnumber the free cores.
OWN_SHARE_LIMIT = 0.85
# Involuntary context switches per second of this process (all threads). A quiet run using fewer threads than
# cores is preempted only a few times a second, by kernel housekeeping, and light background work (an editor,
# a shell loop) brings that towards this limit; a single CPU-bound neighbour pushes it past, several of them
# far past. Only judged when threads < cores: once our threads fill every core, any wake-up (a kernel worker,
# our own progress-bar thread) preempts one of them, and quiet runs reach hundreds per second.
INVOL_SWITCHES_LIMIT = 20.0
# Below this window the counters' 10 ms tick resolution leaves errors of a tenth of a core and more, too
# coarse for the limits above, so such windows are not judged on the counters at all.
MIN_WINDOW_S = 0.5
DRIFT_SIGNIFICANCE = 0.01


@dataclass(frozen=True)
class WindowCounters:
    """One snapshot of the counters; two of them, around the timed runs, make a ``WindowSignals``.

    ``busy_ticks`` is user + nice + system + irq + softirq over the CPUs this process may run on: total
    minus idle and iowait, and minus steal, which is reported on its own rather than blamed on other
    processes.
    """

    wall_s: float
    busy_ticks: float
    steal_ticks: float
    own_cpu_s: float
    invol_switches: float
    clock_ticks_per_s: float


def _cpu_lines() -> dict[str, list[str]]:
    try:
        with open("/proc/stat") as f:
            return {fields[0]: fields[1:] for fields in (line.split() for line in f) if fields[0].startswith("cpu")}
    except OSError:
        return {}


def _our_cpu_rows(lines: dict[str, list[str]]) -> list[list[str]]:
    """/proc/stat rows of the CPUs we may run on: other processes on cores we cannot use do not slow us."""
    names = [f"cpu{i}" for i in available_cpu_ids()]
    if names and all(name in lines for name in names):
        return [lines[name] for name in names]
    return [lines["cpu"]] if "cpu" in lines else []


def _ticks(rows: list[list[str]]) -> tuple[float, float]:
    """(busy, steal) ticks summed over ``rows``; nan for a field an old or unusual kernel does not give."""
    busy = steal = 0.0
    try:
        for fields in rows:
            values = [float(v) for v in fields]
            if len(values) < 7:
                return NAN, NAN
            user, nice, system, _idle, _iowait, irq, softirq = values[:7]
            busy += user + nice + system + irq + softirq
            steal += values[7] if len(values) > 7 else NAN
    except ValueError:
        return NAN, NAN
    return (busy, steal) if rows else (NAN, NAN)


def _clock_ticks_per_s() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return NAN


def _invol_switches() -> float:
    if resource is None:
        return NAN
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw)


def read_counters() -> WindowCounters:
    """Snapshot the counters now; cheap (one small /proc read and two syscalls), never raises."""
    busy, steal = _ticks(_our_cpu_rows(_cpu_lines()))
    times = os.times()
    return WindowCounters(
        wall_s=time.perf_counter(),
        busy_ticks=busy,
        steal_ticks=steal,
        own_cpu_s=times.user + times.system,
        invol_switches=_invol_switches(),
        clock_ticks_per_s=_clock_ticks_per_s(),
    )


@dataclass(frozen=True)
class WindowSignals:
    """What happened on the machine between two snapshots, as averages over the window (cores, rates)."""

    wall_s: float
    other_cores: float
    own_cores: float
    steal_cores: float
    invol_switches_per_s: float

    def as_row(self) -> dict[str, float]:
        """Result-row columns, so a flagged row shows the figures behind its flag."""
        return {
            "other_cpu_cores": self.other_cores,
            "own_cpu_cores": self.own_cores,
            "steal_cores": self.steal_cores,
            "invol_switches_per_s": self.invol_switches_per_s,
            "window_s": self.wall_s,
        }


def window_signals(start: WindowCounters, end: WindowCounters) -> WindowSignals:
    """Average CPU use and preemption rate between ``start`` and ``end``; nan where a counter is missing."""
    wall = end.wall_s - start.wall_s
    if not wall > 0:
        return WindowSignals(wall, NAN, NAN, NAN, NAN)
    own_cpu = end.own_cpu_s - start.own_cpu_s
    busy_s = (end.busy_ticks - start.busy_ticks) / end.clock_ticks_per_s
    # Our own CPU time is inside the machine's busy ticks; what is left is other processes. The two clocks
    # tick differently, so a quiet window can come out slightly negative: that is none, not negative use.
    other = (busy_s - own_cpu) / wall
    return WindowSignals(
        wall_s=wall,
        other_cores=max(0.0, other) if not math.isnan(other) else NAN,
        own_cores=own_cpu / wall,
        steal_cores=(end.steal_ticks - start.steal_ticks) / end.clock_ticks_per_s / wall,
        invol_switches_per_s=(end.invol_switches - start.invol_switches) / wall,
    )


@dataclass
class TimedWindow:
    """The window being measured; ``signals`` is filled when the ``with`` block ends."""

    start: WindowCounters
    signals: WindowSignals | None = None


@contextmanager
def timed_window() -> Iterator[TimedWindow]:
    """Snapshot the counters around a ``with`` block; the signals are filled even if the block raises."""
    window = TimedWindow(read_counters())
    try:
        yield window
    finally:
        window.signals = window_signals(window.start, read_counters())


@dataclass(frozen=True)
class NoiseReason:
    """One sign of noise in one trial: which signal (a key of ``SIGNALS``) and its figure (a fraction for
    ``cv`` and ``drift``, cores for the CPU shares, a rate for ``invol_switches``)."""

    signal: str
    value: float

    def text(self) -> str:
        """The one-trial sentence, e.g. "other processes used 1.30 cores during the timed runs"."""
        return SIGNALS[self.signal].sentence(_figure(self.signal, self.value))


@dataclass(frozen=True)
class _Signal:
    template: str  # the sentence around one figure, "{}" where the figure (or range of figures) goes
    unit: str  # "%" for fractions shown as percentages, "" otherwise
    digits: int  # decimals of the figure
    signed: bool = False

    def sentence(self, figure: str) -> str:
        return self.template.format(figure)


# In the order a reader should see them: the samples themselves first, then what the machine did.
SIGNALS: dict[str, _Signal] = {
    "cv": _Signal(f"CV {{}} > {NOISY_CV:.0%}", "%", 0),
    "drift": _Signal("median drifted {} between the halves of the run", "%", 0, signed=True),
    "other_cores": _Signal("other processes used {} cores during the timed runs", "", 2),
    "steal_cores": _Signal("the hypervisor stole {} cores during the timed runs", "", 2),
    "own_cores": _Signal("this process got only {} cores of CPU time (descheduled)", "", 2),
    "invol_switches": _Signal("{} involuntary context switches per second", "", 0),
}
_NUMBER = r"([+-]?[0-9]+(?:\.[0-9]+)?)"


def _figure(signal: str, value: float) -> str:
    spec = SIGNALS[signal]
    scaled = value * 100 if spec.unit == "%" else value
    return f"{scaled:{'+' if spec.signed else ''}.{spec.digits}f}{spec.unit}"


def _span(signal: str, low: float, high: float) -> str:
    """The figures from ``low`` to ``high`` as "1.28–1.37", or one figure where both round alike; signed figures
    read "-3% to +6%", so that a minus sign is never taken for the dash of a range."""
    first, last = _figure(signal, low), _figure(signal, high)
    if first == last:
        return first
    return f"{first} to {last}" if SIGNALS[signal].signed else f"{first.removesuffix(SIGNALS[signal].unit)}–{last}"


def parse_reason(text: str) -> NoiseReason | None:
    """The ``NoiseReason`` a one-trial sentence (``NoiseReason.text``) was written from, or None for any other
    text. Trials run in worker processes send their reasons back as text; this recovers the figures."""
    import re

    for signal, spec in SIGNALS.items():
        pattern = re.escape(spec.sentence("\0")).replace(re.escape("\0"), _NUMBER + re.escape(spec.unit))
        match = re.fullmatch(pattern, text.strip())
        if match:
            value = float(match.group(1))
            return NoiseReason(signal, value / 100 if spec.unit == "%" else value)
    return None


def summarize_reasons(per_trial: Sequence[Sequence[NoiseReason | str]], n_trials: int | None = None) -> list[str]:
    """One line per signal over all trials of one model, e.g. "10/10 trials: other processes used 1.28–1.37
    cores during the timed runs", in ``SIGNALS`` order; empty when no trial had a reason.

    ``per_trial`` holds each trial's reasons (``noise_findings``, or the sentences of ``noise_reasons``, which are
    parsed back); ``n_trials`` is the number of trials measured (default: ``len(per_trial)``). A sentence that is
    no known signal's is kept as it is, with the number of trials that gave it.
    """
    n_trials = len(per_trial) if n_trials is None else n_trials
    values: dict[str, list[float]] = {}
    others: dict[str, int] = {}
    for reasons in per_trial:
        seen: set[str] = set()
        for reason in reasons:
            found = reason if isinstance(reason, NoiseReason) else parse_reason(reason)
            if found is None:
                text = str(reason).strip()
                if text and text not in seen:
                    others[text] = others.get(text, 0) + 1
                    seen.add(text)
            elif found.signal not in seen:
                values.setdefault(found.signal, []).append(found.value)
                seen.add(found.signal)
    lines = [
        f"{len(values[s])}/{n_trials} trials: {SIGNALS[s].sentence(_span(s, min(values[s]), max(values[s])))}"
        for s in SIGNALS
        if s in values
    ]
    return lines + [f"{count}/{n_trials} trials: {text}" for text, count in others.items()]


def noise_findings(
    samples_s: Sequence[float], signals: WindowSignals | None, threads: int, cores: int
) -> list[NoiseReason]:
    """Why a run's timings should not be trusted, as (signal, figure) pairs (empty: no sign of noise).

    ``threads`` is the number of CPU threads the runtime was asked for; pass 0 when the timed work does not
    run on the CPU (a GPU runtime whose host thread waits on the device), which turns off the check that
    this process kept its core. ``cores`` is the number of cores this process may use.
    """
    reasons = []
    summary = summarize(samples_s)
    if summary.cv > NOISY_CV:
        reasons.append(NoiseReason("cv", summary.cv))
    change = drift(samples_s)
    half = len(samples_s) // 2
    # With a trial's 20-odd runs, two halves' medians differ by a few percent by chance alone: drift is a shift
    # larger than NOISY_DRIFT that the halves' ranks also show (Mann–Whitney U, p < DRIFT_SIGNIFICANCE).
    if abs(change) > NOISY_DRIFT and mann_whitney_p(samples_s[:half], samples_s[half:]) < DRIFT_SIGNIFICANCE:
        reasons.append(NoiseReason("drift", change))
    if signals is None or not signals.wall_s >= MIN_WINDOW_S:
        return reasons
    # Comparisons with nan are false, so a missing counter raises no flag.
    if signals.other_cores > OTHER_CORES_LIMIT:
        reasons.append(NoiseReason("other_cores", signals.other_cores))
    if signals.steal_cores > STEAL_CORES_LIMIT:
        reasons.append(NoiseReason("steal_cores", signals.steal_cores))
    if threads >= 1 and signals.own_cores < OWN_SHARE_LIMIT:
        reasons.append(NoiseReason("own_cores", signals.own_cores))
    if threads < cores and signals.invol_switches_per_s > INVOL_SWITCHES_LIMIT:
        reasons.append(NoiseReason("invol_switches", signals.invol_switches_per_s))
    return reasons


def noise_reasons(samples_s: Sequence[float], signals: WindowSignals | None, threads: int, cores: int) -> list[str]:
    """``noise_findings`` as one sentence each, naming its figure (``summarize_reasons`` reads them back)."""
    return [reason.text() for reason in noise_findings(samples_s, signals, threads, cores)]
