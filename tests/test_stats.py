import numpy as np
import pytest

from convbench.stats import speedup, summarize


def test_summary_of_known_samples():
    s = summarize([0.001, 0.002, 0.003, 0.004, 0.010])
    assert s.n == 5
    assert s.median_ms == pytest.approx(3.0)
    assert s.mean_ms == pytest.approx(4.0)
    assert s.min_ms == pytest.approx(1.0) and s.max_ms == pytest.approx(10.0)
    assert s.iqr_ms == pytest.approx(2.0)
    assert s.cv == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1) / 4.0)
    assert s.noisy


def test_summary_rejects_empty():
    with pytest.raises(ValueError):
        summarize([])


def test_speedup_interval_brackets_the_true_ratio():
    rng = np.random.default_rng(0)
    slow = rng.normal(10.0, 0.3, 200)
    fast = rng.normal(8.0, 0.3, 200)
    s = speedup(slow, fast)
    assert s.low < 1.25 < s.high
    assert s.low <= s.ratio <= s.high
    assert s.high - s.low < 0.05


def test_speedup_of_identical_distributions_includes_one():
    rng = np.random.default_rng(1)
    s = speedup(rng.normal(5, 0.5, 100), rng.normal(5, 0.5, 100))
    assert s.low < 1.0 < s.high


def test_median_interval_brackets_the_median():
    rng = np.random.default_rng(2)
    samples = rng.normal(0.010, 0.001, 200)
    from convbench.stats import median_interval

    low, high = median_interval(samples)
    assert low < np.median(samples) * 1e3 < high
    assert median_interval([0.001] * 5) == (1.0, 1.0)


def test_drift_and_noise_reasons():
    from convbench.stats import drift, noise_reasons

    steady = [0.010] * 20
    assert drift(steady) == 0.0 and noise_reasons(steady, 0.1, 0.2, cores=2) == []
    slowing = [0.010] * 10 + [0.012] * 10
    assert drift(slowing) == pytest.approx(0.2)
    reasons = noise_reasons(slowing, 0.1, 5.0, cores=2)
    assert any("drifted" in r for r in reasons) and any("load average 5.0" in r for r in reasons)


def test_mann_whitney_verdicts():
    from convbench.stats import mann_whitney_p

    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 1, 50), rng.normal(10, 1, 50)
    assert mann_whitney_p(a, b) > 0.05
    assert speedup(a, b).verdict() == "no significant difference"
    assert speedup(a, a * 0.8).verdict() == "faster"
    assert speedup(a, a * 1.25).verdict() == "slower"
