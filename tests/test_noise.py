"""Noise flags from the timed window's CPU counters: the decision logic on recorded counters, and one live run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from convbench.timing import noise
from convbench.timing.noise import (
    INVOL_SWITCHES_LIMIT,
    OTHER_CORES_LIMIT,
    STEAL_CORES_LIMIT,
    NoiseReason,
    WindowCounters,
    noise_findings,
    noise_reasons,
    parse_reason,
    read_counters,
    summarize_reasons,
    timed_window,
    window_signals,
)

STEADY = [0.010, 0.0101, 0.0099, 0.0100] * 10
START = WindowCounters(
    wall_s=100.0,
    busy_ticks=50_000.0,
    steal_ticks=300.0,
    own_cpu_s=20.0,
    invol_switches=40.0,
    clock_ticks_per_s=100.0,
)


def after(wall=2.0, busy=200.0, steal=0.0, own=2.0, invol=6.0, start=START):
    """The end snapshot ``wall`` seconds after ``start``, with the given increments."""
    return WindowCounters(
        wall_s=start.wall_s + wall,
        busy_ticks=start.busy_ticks + busy,
        steal_ticks=start.steal_ticks + steal,
        own_cpu_s=start.own_cpu_s + own,
        invol_switches=start.invol_switches + invol,
        clock_ticks_per_s=start.clock_ticks_per_s,
    )


def test_quiet_window_raises_no_flag():
    # One core busy for 2 s, all of it ours; a few preemptions.
    signals = window_signals(START, after())
    assert signals.other_cores == pytest.approx(0.0)
    assert signals.own_cores == pytest.approx(1.0)
    assert signals.steal_cores == 0.0 and signals.invol_switches_per_s == pytest.approx(3.0)
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == []


def test_own_time_beyond_busy_ticks_is_no_negative_use():
    # The tick-based busy counter can lag our precise CPU time by a tick or two.
    assert window_signals(START, after(busy=198.0)).other_cores == 0.0


def test_other_processes_flagged_with_their_cores():
    signals = window_signals(START, after(busy=380.0))  # 3.8 s of CPU in 2 s, 2 s of it ours
    assert signals.other_cores == pytest.approx(0.9)
    assert signals.other_cores > OTHER_CORES_LIMIT
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == [
        "other processes used 0.90 cores during the timed runs"
    ]


def test_steal_flagged():
    signals = window_signals(START, after(steal=60.0))
    assert signals.steal_cores == pytest.approx(0.3) and signals.steal_cores > STEAL_CORES_LIMIT
    reasons = noise_reasons(STEADY, signals, threads=1, cores=2)
    assert reasons == ["the hypervisor stole 0.30 cores during the timed runs"]


def test_descheduled_process_flagged_unless_it_does_not_run_on_the_cpu():
    signals = window_signals(START, after(busy=400.0, own=1.0))  # we got half a core, others 1.5
    reasons = noise_reasons(STEADY, signals, threads=1, cores=2)
    assert "this process got only 0.50 cores of CPU time (descheduled)" in reasons
    assert any("other processes used 1.50 cores" in r for r in reasons)
    # A GPU runtime's host thread waits on the device: low CPU use is expected there.
    gpu = window_signals(START, after(busy=100.0, own=1.0))
    assert noise_reasons(STEADY, gpu, threads=0, cores=2) == []
    assert noise_reasons(STEADY, gpu, threads=1, cores=2) != []


def test_involuntary_switches_flagged_only_with_a_spare_core():
    signals = window_signals(START, after(invol=2 * (INVOL_SWITCHES_LIMIT + 10)))
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == ["30 involuntary context switches per second"]
    # With every core running one of our threads, they preempt each other on a quiet machine too.
    assert noise_reasons(STEADY, signals, threads=2, cores=2) == []


def test_high_cv_on_a_quiet_machine_gives_the_cv_reason_only():
    rng = np.random.default_rng(0)
    jittery = list(rng.permutation(STEADY + [0.030] * 8))
    reasons = noise_reasons(jittery, window_signals(START, after()), threads=1, cores=2)
    assert len(reasons) == 1 and reasons[0].startswith("CV ")


def test_drift_still_flagged():
    slowing = [0.010] * 20 + [0.012] * 20
    reasons = noise_reasons(slowing, window_signals(START, after()), threads=1, cores=2)
    assert reasons == ["median drifted +20% between the halves of the run"]


def test_without_signals_only_the_samples_are_judged():
    assert noise_reasons(STEADY, None, threads=1, cores=2) == []
    assert noise_reasons([0.010] * 20 + [0.012] * 20, None, threads=1, cores=2) != []


def test_too_short_a_window_is_not_judged_on_counters():
    signals = window_signals(START, after(wall=0.1, busy=100.0, own=0.01))  # tick-sized noise looks huge
    assert signals.other_cores > OTHER_CORES_LIMIT
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == []


def test_missing_counters_give_nan_and_no_flag(monkeypatch):
    def no_proc_stat(*args, **kwargs):
        raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(noise, "open", no_proc_stat, raising=False)
    monkeypatch.setattr(noise, "resource", None)
    start = read_counters()
    time.sleep(0.01)
    end = read_counters()
    assert math.isnan(start.busy_ticks) and math.isnan(start.steal_ticks) and math.isnan(start.invol_switches)
    shifted = WindowCounters(
        end.wall_s + 1.0,
        end.busy_ticks,
        end.steal_ticks,
        end.own_cpu_s + 1.0,
        end.invol_switches,
        end.clock_ticks_per_s,
    )
    signals = window_signals(start, shifted)
    assert math.isnan(signals.other_cores) and math.isnan(signals.steal_cores)
    assert math.isnan(signals.invol_switches_per_s)
    assert signals.own_cores > 0
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == []


def test_old_kernel_without_steal_column():
    busy, steal = noise._ticks([["10", "0", "5", "100", "1", "2", "3"]])
    assert busy == 20.0 and math.isnan(steal)
    assert all(math.isnan(v) for v in noise._ticks([["10", "0"]]))
    assert all(math.isnan(v) for v in noise._ticks([]))


def test_zero_length_window_is_nan_not_an_error():
    signals = window_signals(START, START)
    assert all(math.isnan(v) for v in (signals.other_cores, signals.own_cores, signals.steal_cores))
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == []


def test_signals_as_row():
    row = window_signals(START, after(busy=380.0)).as_row()
    assert set(row) == {"other_cpu_cores", "own_cpu_cores", "steal_cores", "invol_switches_per_s", "window_s"}
    assert row["other_cpu_cores"] == pytest.approx(0.9) and row["window_s"] == pytest.approx(2.0)


def test_timed_window_fills_signals_even_when_the_block_raises():
    with pytest.raises(RuntimeError), timed_window() as window:
        assert window.signals is None
        raise RuntimeError("runtime failed")
    assert window.signals is not None and window.signals.wall_s > 0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux CPU counters")
def test_cpu_time_this_process_spends_shows_in_its_own_and_its_cores_counters():
    """Catches own CPU time read from the wrong clock (children's times, wall time) and busy ticks read from the
    wrong /proc/stat columns or rows: between two snapshots, both grow by the CPU time this process spent
    (getrusage, read independently), whatever else the machine runs. CPU accounting, not a latency."""
    import resource

    def used_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start, used_at_start = read_counters(), used_s()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    end, used = read_counters(), used_s() - used_at_start
    slack = 3 / start.clock_ticks_per_s * max(len(noise._our_cpu_rows(noise._cpu_lines())), 1)  # tick rounding
    assert end.own_cpu_s - start.own_cpu_s == pytest.approx(used, abs=slack)
    assert (end.busy_ticks - start.busy_ticks) / start.clock_ticks_per_s >= used - slack
    assert end.invol_switches >= start.invol_switches


# Each busy process stops itself after this long, even if the test is killed before its clean-up.
BUSY_DEADLINE_S = 20
BUSY_LOOP = f"import time\nend = time.monotonic() + {BUSY_DEADLINE_S}\nwhile time.monotonic() < end: pass"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"), reason="reads Linux CPU counters"
)
def test_busy_neighbours_are_flagged_during_a_real_measurement():
    from convbench.runtimes.base import PreparedModel
    from convbench.timing.measure import TimingSettings, measure

    class SortModel(PreparedModel):
        """About 2 ms of single-threaded numpy work per run."""

        def __init__(self) -> None:
            self.data = np.random.default_rng(0).random(60_000)

        def timed_run(self) -> float:
            start = time.perf_counter()
            np.sort(self.data)
            return time.perf_counter() - start

    cores = len(os.sched_getaffinity(0))
    timing = TimingSettings(warmup=1, warmup_time=0.1, runs=10, min_time=1.5, block=5)
    busy = []
    try:
        # timeout bounds them from outside too; terminate() reaches the loop through it (SIGTERM is passed on).
        busy = [
            subprocess.Popen(["timeout", str(BUSY_DEADLINE_S + 5), sys.executable, "-c", BUSY_LOOP])
            for _ in range(cores)
        ]
        time.sleep(0.3)  # let them get past interpreter start-up
        with timed_window() as window:
            samples = measure({"sort": SortModel()}, timing)["sort"].samples
    finally:
        for process in busy:
            process.terminate()
        for process in busy:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    reasons = noise_reasons(samples, window.signals, threads=1, cores=cores)
    assert any(r.startswith("other processes used") for r in reasons), (reasons, window.signals)


# --- one line per signal over trials --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (NoiseReason("cv", 0.28), "CV 28% > 10%"),
        (NoiseReason("drift", -0.07), "median drifted -7% between the halves of the run"),
        (NoiseReason("other_cores", 1.3), "other processes used 1.30 cores during the timed runs"),
        (NoiseReason("steal_cores", 0.3), "the hypervisor stole 0.30 cores during the timed runs"),
        (NoiseReason("own_cores", 0.5), "this process got only 0.50 cores of CPU time (descheduled)"),
        (NoiseReason("invol_switches", 30.0), "30 involuntary context switches per second"),
    ],
)
def test_every_signal_reads_back_from_its_sentence(reason, text):
    # Bug guarded: a sentence changed in one place and not the other, so reasons sent back by worker processes
    # (as text) would no longer be recognised and aggregated.
    assert reason.text() == text
    assert parse_reason(text) == reason
    assert parse_reason("trial 1: " + text) is None


def test_findings_and_sentences_say_the_same():
    signals = window_signals(START, after(busy=400.0, own=1.0))
    findings = noise_findings(STEADY, signals, threads=1, cores=2)
    assert [f.signal for f in findings] == ["other_cores", "own_cores"]
    assert noise_reasons(STEADY, signals, threads=1, cores=2) == [f.text() for f in findings]


def test_reasons_are_one_line_per_signal_with_the_range_over_trials():
    # Bug guarded: the old "trial 1: ...; trial 2: ..." list, one entry per trial and signal (2,000+ characters
    # for 10 trials), or a range that drops the extreme trials.
    per_trial = [[NoiseReason("cv", 0.28 + 0.002 * t), NoiseReason("other_cores", 1.28 + 0.01 * t)] for t in range(10)]
    lines = summarize_reasons(per_trial, 10)
    assert lines == [
        "10/10 trials: CV 28–30% > 10%",
        "10/10 trials: other processes used 1.28–1.37 cores during the timed runs",
    ]
    # The same reasons as the sentences trials send back from their worker processes give the same lines.
    assert summarize_reasons([[r.text() for r in reasons] for reasons in per_trial]) == lines


def test_trials_without_a_reason_count_in_the_denominator_and_signs_stay_readable():
    # Bug guarded: counting only trials that had reasons ("2/2" of 10), or a negative drift read as a range.
    per_trial = [[], ["median drifted -7% between the halves of the run"], [], [NoiseReason("drift", 0.06)], []]
    assert summarize_reasons(per_trial, 5) == ["2/5 trials: median drifted -7% to +6% between the halves of the run"]
    assert summarize_reasons([[NoiseReason("steal_cores", 0.301)], [NoiseReason("steal_cores", 0.299)]]) == [
        "2/2 trials: the hypervisor stole 0.30 cores during the timed runs"
    ]
    assert summarize_reasons([[], []], 2) == []


def test_unknown_reasons_are_kept_and_counted_once_per_trial():
    # Bug guarded: a reason from elsewhere (a GPU runtime's own note) silently dropped, or counted twice for a
    # trial that reported it twice.
    per_trial = [["GPU clock throttled", "GPU clock throttled"], [], ["GPU clock throttled", "CV 12% > 10%"]]
    assert summarize_reasons(per_trial, 3) == ["1/3 trials: CV 12% > 10%", "2/3 trials: GPU clock throttled"]
