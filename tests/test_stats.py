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
