import pytest

from convbench.errors import UserInputError
from convbench.runtimes.base import PreparedModel
from convbench.timing.energy import NoCounter
from convbench.timing.measure import TimingSettings, measure


class FakeModel(PreparedModel):
    """Returns fixed durations and records the global order of calls."""

    def __init__(self, name, duration, log):
        self.name, self.duration, self.log = name, duration, log

    def timed_run(self):
        self.log.append(self.name)
        return self.duration

    def energy_counter(self):
        # No energy window, so the call logs below hold on machines where RAPL is readable as well.
        return NoCounter("fake model")


def test_models_are_interleaved_in_blocks_after_warmup():
    log = []
    models = {"a": FakeModel("a", 0.001, log), "b": FakeModel("b", 0.002, log)}
    results = measure(models, TimingSettings(warmup=2, warmup_time=0, runs=6, min_time=0, block=3))
    # first run + 2 warm-up each, sequentially; then blocks of 3 alternating
    assert log[:6] == ["a"] * 3 + ["b"] * 3
    assert log[6:] == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert results["a"].samples == [0.001] * 6
    assert results["b"].first_run == 0.002


def test_minimum_time_extends_the_run():
    log = []
    results = measure(
        {"a": FakeModel("a", 0.25, log)},
        TimingSettings(warmup=0, warmup_time=0, runs=1, min_time=1.0, block=1),
    )
    assert len(results["a"].samples) == 4


@pytest.mark.parametrize("bad", [{"runs": 0}, {"warmup": -1}, {"min_time": -1.0}, {"block": 0}])
def test_invalid_settings_are_user_errors(bad):
    with pytest.raises(UserInputError):
        TimingSettings(**bad).validate()


def test_first_runs_taken_by_the_caller_are_not_repeated():
    log = []
    results = measure(
        {"a": FakeModel("a", 0.001, log)},
        TimingSettings(warmup=1, warmup_time=0, runs=2, min_time=0, block=2),
        first_runs={"a": 0.5},
    )
    assert log == ["a"] * 3  # one warm-up and two measured runs: no first run
    assert results["a"].first_run == 0.5 and results["a"].warmup_runs == 1
