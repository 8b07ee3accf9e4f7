"""Energy per image (convbench.timing.energy): counters, wrap-around, the window, the row columns, and measure().

Counters here are fakes (a list of readings, or a powercap tree written to a temporary folder), so the logic is
checked on machines without RAPL or NVML, like this one.
"""

import math

import pytest

from convbench.errors import UserInputError
from convbench.runtimes.base import PreparedModel
from convbench.timing.energy import (
    EnergyCounter,
    EnergyWindow,
    NoCounter,
    counter_delta,
    energy_columns,
    energy_window,
    rapl_counter,
)
from convbench.timing.measure import TimingSettings, measure

FAST = TimingSettings(warmup=0, warmup_time=0, runs=2, min_time=0, block=2)


class FakeCounter(EnergyCounter):
    """Returns the given readings (joules, one domain) in turn; wraps at ``wrap``."""

    source = "fake"

    def __init__(self, readings, wrap=None):
        self.readings, self.wrap, self.closed = list(readings), wrap, False

    def read(self):
        return (self.readings.pop(0),)

    def wrap_ranges(self):
        return (self.wrap,)

    def close(self):
        self.closed = True


class FakeClock:
    """A clock that advances by ``step`` seconds each time it is read."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


class FakeModel(PreparedModel):
    def __init__(self, duration, counter, log):
        self.duration, self.counter, self.log = duration, counter, log

    def timed_run(self):
        self.log.append(self.duration)
        return self.duration

    def energy_counter(self):
        return self.counter


def test_a_wrapped_counter_is_undone_with_its_range():
    """Fails if a reading lower than the one before is taken as negative energy instead of one wrap."""
    assert counter_delta(10.0, 25.0, 100.0) == 15.0
    assert counter_delta(90.0, 5.0, 100.0) == 15.0
    assert math.isnan(counter_delta(90.0, 5.0, None))  # no known range: no number rather than a wrong one


def test_the_window_runs_at_least_the_minimum_time_and_reads_around_it():
    """Fails if the window is shorter than min_seconds, or its energy and power use the wrong readings."""
    log = []
    counter = FakeCounter([1000.0, 1050.0])
    window = energy_window(lambda: log.append(1) or 0.0, counter, min_seconds=1.0, clock=FakeClock(0.1))
    assert window.seconds >= 1.0 and window.runs == len(log) and window.runs >= 9
    assert window.joules == 50.0
    assert window.watts == pytest.approx(50.0 / window.seconds)
    assert window.per_image(batch_size=4) == pytest.approx(50.0 / (4 * window.runs))


def test_the_window_across_a_wrap_around():
    """Fails if the end reading after the counter wrapped gives a negative or huge energy."""
    counter = FakeCounter([262_000.0, 30.0], wrap=262_143.0)
    window = energy_window(lambda: 0.5, counter, min_seconds=1.0, clock=FakeClock(0.0))
    assert window.joules == pytest.approx(173.0)
    assert window.runs == 2  # reached through the runs' own durations (0.5 s each)


def test_columns_sum_over_trials_and_never_report_zero_without_a_counter():
    """Fails if a missing counter shows as 0 J, or trials are averaged per trial instead of over all images."""
    windows = [EnergyWindow(10.0, 1.0, 10, "fake"), EnergyWindow(30.0, 2.0, 10, "fake").as_dict()]
    row = energy_columns(windows, "", batch_size=2)
    assert row["energy_j_per_image"] == pytest.approx(40.0 / 40)
    assert row["power_w"] == pytest.approx(40.0 / 3.0)
    assert row["energy_note"] == "" and row["energy_source"] == "fake"
    none = energy_columns([None, None], NoCounter("no RAPL").note, batch_size=2)
    assert math.isnan(none["energy_j_per_image"]) and math.isnan(none["power_w"])
    assert none["energy_note"] == "energy: not available (no RAPL)"
    broken = energy_columns([EnergyWindow(float("nan"), 1.0, 10, "fake")], "", batch_size=1)
    assert math.isnan(broken["energy_j_per_image"]) and "wrap" in broken["energy_note"]


def _powercap(root, packages):
    for i, (energy, wrap, name) in enumerate(packages):
        domain = root / f"intel-rapl:{i}"
        domain.mkdir(parents=True)
        (domain / "name").write_text(f"{name}\n")
        (domain / "energy_uj").write_text(f"{energy}\n")
        (domain / "max_energy_range_uj").write_text(f"{wrap}\n")
    return root


def test_rapl_sums_packages_handles_wrap_and_skips_subdomains_and_psys(tmp_path):
    """Fails if package subdomains or psys are counted twice, or a package's wrap-around is not undone."""
    root = _powercap(tmp_path, [(900_000, 1_000_000, "package-0"), (5_000_000, 10_000_000, "package-1")])
    _powercap(tmp_path / "intel-rapl:0", [(123, 1000, "core")])  # intel-rapl:0:0, a subdomain
    psys = tmp_path / "intel-rapl:2"
    psys.mkdir()
    (psys / "name").write_text("psys\n")
    (psys / "energy_uj").write_text("1\n")
    counter = rapl_counter(root)
    assert isinstance(counter, EnergyCounter)
    assert counter.source == "rapl: package-0+package-1"
    start = counter.read()
    (root / "intel-rapl:0" / "energy_uj").write_text("100000\n")  # wrapped: 0.1 J + (1 J - 0.9 J)
    (root / "intel-rapl:1" / "energy_uj").write_text("6000000\n")  # +1 J
    assert counter.joules(start, counter.read()) == pytest.approx(1.2)


def test_rapl_says_why_it_is_missing(tmp_path):
    """Fails if a machine without powercap gets a counter (and later a zero) instead of a reason."""
    missing = rapl_counter(tmp_path / "nothing")
    assert isinstance(missing, NoCounter) and "no " in missing.reason
    empty = rapl_counter(tmp_path)
    assert isinstance(empty, NoCounter) and "RAPL" in empty.reason


def test_measure_keeps_energy_runs_out_of_the_latency_samples():
    """Fails if the energy window's runs are mixed into the samples, or its figures are not in the Measurement."""
    log = []
    counter = FakeCounter([0.0, 3.0])
    results = measure({"a": FakeModel(0.25, counter, log)}, FAST)
    m = results["a"]
    assert len(m.samples) == 2  # the timed runs only
    assert m.energy is not None and m.energy.joules == 3.0 and m.energy.runs >= 2
    assert len(log) == 1 + 2 + m.energy.runs  # first run, samples, energy window
    assert m.energy_note == "" and counter.closed


def test_measure_notes_a_missing_counter_and_require_energy_refuses_it():
    """Fails if a missing counter is silently a zero, or --require-energy measures anyway."""
    log = []
    results = measure({"a": FakeModel(0.001, NoCounter("no RAPL"), log)}, FAST)
    assert results["a"].energy is None
    assert results["a"].energy_note == "energy: not available (no RAPL)"
    assert len(log) == 3  # no energy window

    opened = FakeCounter([0.0, 1.0])
    models = {"a": FakeModel(0.001, opened, log), "b": FakeModel(0.001, NoCounter("no RAPL"), log)}
    log.clear()
    required = TimingSettings(warmup=0, warmup_time=0, runs=2, min_time=0, block=2, require_energy=True)
    with pytest.raises(UserInputError, match=r"--require-energy: energy: not available \(no RAPL\)"):
        measure(models, required)
    assert log == [] and opened.closed  # refused before any run, and the other model's counter released


def test_the_default_counter_is_rapl(monkeypatch, tmp_path):
    """Fails if a CPU runtime's model gets no counter where RAPL exists (the base hook must supply it)."""
    import convbench.timing.energy as energy

    root = _powercap(tmp_path, [(1, 1000, "package-0")])
    monkeypatch.setattr(energy.rapl_counter, "__defaults__", (root,))

    class Plain(PreparedModel):
        def timed_run(self):
            return 0.0

    counter = Plain().energy_counter()
    assert isinstance(counter, EnergyCounter) and counter.source == "rapl: package-0"


def test_require_energy_on_the_command_line_is_one_line_and_writes_nothing(monkeypatch, tmp_path):
    """Fails if --require-energy without a counter gives a traceback, exit 0, or a half-written result file."""
    from typer.testing import CliRunner

    import convbench.timing.energy as energy
    from convbench.cli.main import app

    monkeypatch.setattr(energy.rapl_counter, "__defaults__", (tmp_path / "no-powercap",))
    out = tmp_path / "rows.csv"
    tiny = ["--trials", "1", "--isolate", "session", "--runs", "1", "--min-time", "0", "--warmup", "0"]
    result = CliRunner().invoke(
        app,
        [
            "profile",
            "resnet18-cifar10",
            *tiny,
            "--warmup-time",
            "0",
            "--threads",
            "1",
            "--require-energy",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "energy: not available" in lines[0], result.output
    assert not out.exists()


class FakeNvml:
    """pynvml's energy calls: a total in millijoules, or NotSupported as on GPUs before Volta."""

    def __init__(self, readings_mj, supported=True):
        self.readings, self.supported, self.sessions = list(readings_mj), supported, 0

    def nvmlInit(self):
        self.sessions += 1

    def nvmlShutdown(self):
        self.sessions -= 1

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return uuid

    def nvmlDeviceGetName(self, handle):
        return b"Fake GPU"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise RuntimeError("Not Supported")
        return self.readings.pop(0)


def test_the_nvml_counter_reads_millijoules_and_says_when_unsupported(monkeypatch):
    """Fails if NVML's millijoules are taken as joules, a session leaks, or an unsupported GPU gets a counter."""
    from convbench.runtimes import gpu

    monkeypatch.setattr(gpu, "device_ids", lambda index: ("GPU-fake", ""))
    nvml = FakeNvml([5_000, 5_000, 7_500])  # the first reading checks that the counter works
    monkeypatch.setattr(gpu, "_nvml", lambda: nvml)
    counter = gpu.nvml_energy_counter(0)
    assert isinstance(counter, EnergyCounter) and counter.source == "nvml: Fake GPU"
    start = counter.read()
    assert counter.joules(start, counter.read()) == pytest.approx(2.5)
    counter.close()
    assert nvml.sessions == 0

    unsupported = FakeNvml([], supported=False)
    monkeypatch.setattr(gpu, "_nvml", lambda: unsupported)
    missing = gpu.nvml_energy_counter(0)
    assert isinstance(missing, NoCounter) and "NVML" in missing.reason and unsupported.sessions == 0
    monkeypatch.setattr(gpu, "_nvml", lambda: None)
    assert "nvidia-ml-py" in gpu.nvml_energy_counter(0).reason
