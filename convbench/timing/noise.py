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
    try:
        names = [f"cpu{i}" for i in sorted(os.sched_getaffinity(0))]
    except (AttributeError, OSError):
        names = []
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


def noise_reasons(samples_s: Sequence[float], signals: WindowSignals | None, threads: int, cores: int) -> list[str]:
    """Why a run's timings should not be trusted, each naming its figure (empty: no sign of noise).

    ``threads`` is the number of CPU threads the runtime was asked for; pass 0 when the timed work does not
    run on the CPU (a GPU runtime whose host thread waits on the device), which turns off the check that
    this process kept its core. ``cores`` is the number of cores this process may use.
    """
    reasons = []
    summary = summarize(samples_s)
    if summary.cv > NOISY_CV:
        reasons.append(f"CV {summary.cv:.0%} > {NOISY_CV:.0%}")
    change = drift(samples_s)
    half = len(samples_s) // 2
    # With a trial's 20-odd runs, two halves' medians differ by a few percent by chance alone: drift is a shift
    # larger than NOISY_DRIFT that the halves' ranks also show (Mann–Whitney U, p < DRIFT_SIGNIFICANCE).
    if abs(change) > NOISY_DRIFT and mann_whitney_p(samples_s[:half], samples_s[half:]) < DRIFT_SIGNIFICANCE:
        reasons.append(f"median drifted {change:+.0%} between the halves of the run")
    if signals is None or not signals.wall_s >= MIN_WINDOW_S:
        return reasons
    # Comparisons with nan are false, so a missing counter raises no flag.
    if signals.other_cores > OTHER_CORES_LIMIT:
        reasons.append(f"other processes used {signals.other_cores:.2f} cores during the timed runs")
    if signals.steal_cores > STEAL_CORES_LIMIT:
        reasons.append(f"the hypervisor stole {signals.steal_cores:.2f} cores during the timed runs")
    if threads >= 1 and signals.own_cores < OWN_SHARE_LIMIT:
        reasons.append(f"this process got only {signals.own_cores:.2f} cores of CPU time (descheduled)")
    if threads < cores and signals.invol_switches_per_s > INVOL_SWITCHES_LIMIT:
        reasons.append(f"{signals.invol_switches_per_s:.0f} involuntary context switches per second")
    return reasons
