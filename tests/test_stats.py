import numpy as np
import pytest

from convbench.timing.stats import speedup, summarize


def test_summary_of_known_samples():
    s = summarize([0.001, 0.002, 0.003, 0.004, 0.010])
    assert s.n == 5
    assert s.median_ms == pytest.approx(3.0)
    assert s.mean_ms == pytest.approx(4.0)
    assert s.min_ms == pytest.approx(1.0) and s.max_ms == pytest.approx(10.0)
    assert s.iqr_ms == pytest.approx(2.0)
    assert s.cv == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1) / 4.0)


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
    from convbench.timing.stats import median_interval

    low, high = median_interval(samples)
    assert low < np.median(samples) * 1e3 < high
    assert median_interval([0.001] * 5) == (1.0, 1.0)


def test_drift_and_noise_reasons():
    from convbench.timing.noise import noise_reasons
    from convbench.timing.stats import drift

    steady = [0.010] * 20
    assert drift(steady) == 0.0 and noise_reasons(steady, None, threads=1, cores=2) == []
    slowing = [0.010] * 10 + [0.012] * 10
    assert drift(slowing) == pytest.approx(0.2)
    assert any("drifted" in r for r in noise_reasons(slowing, None, threads=1, cores=2))


def test_mann_whitney_verdicts():
    from convbench.timing.stats import mann_whitney_p

    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 1, 50), rng.normal(10, 1, 50)
    assert mann_whitney_p(a, b) > 0.05
    assert speedup(a, b).verdict() == "no significant difference"
    assert speedup(a, a * 0.8).verdict() == "faster"
    assert speedup(a, a * 1.25).verdict() == "slower"


# --- independent trials: hierarchical bootstrap -------------------------------------------------------------

TRIALS, PER_TRIAL = 8, 100


def _trials(rng, median, sigma=0.03, factors=None, n=PER_TRIAL):
    """``len(factors)`` trials of lognormal latencies around ``median``, each scaled by its trial's factor."""
    factors = np.ones(TRIALS) if factors is None else factors
    return [median * f * rng.lognormal(0.0, sigma, n) for f in factors]


def test_between_trial_offsets_widen_the_interval():
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(10)
    base = _trials(rng, 0.010)
    same = _trials(rng, 0.008)
    shifted = _trials(rng, 0.008, factors=np.linspace(0.97, 1.03, TRIALS))
    narrow = hierarchical_speedup(base, same)
    wide = hierarchical_speedup(base, shifted)
    assert wide.n_trials == narrow.n_trials == TRIALS
    # The trial offsets are invisible within any one trial; only the top-level resampling of trials sees them.
    assert wide.half_width_pct > 1.8 * narrow.half_width_pct
    assert wide.trial_high - wide.trial_low > 2 * (narrow.trial_high - narrow.trial_low)


def test_identical_trials_give_about_the_pooled_interval():
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(11)
    base, cand = _trials(rng, 0.010), _trials(rng, 0.008)
    hier = hierarchical_speedup(base, cand)
    pooled = speedup(np.concatenate(base), np.concatenate(cand))
    assert hier.ratio == pytest.approx(pooled.ratio)
    # Resampling at both levels counts the within-trial noise a second time, at most doubling the variance.
    assert 0.7 * pooled.half_width_pct < hier.half_width_pct < 1.5 * pooled.half_width_pct
    assert hier.low < 1.25 < hier.high and hier.significant and hier.verdict() == "faster"


def test_hierarchical_interval_covers_the_true_ratio_at_about_the_nominal_rate():
    from convbench.timing.stats import hierarchical_speedup

    big = np.random.default_rng(99)
    # The candidate's median over infinitely many trials: its trial factors are part of its distribution.
    truth = 0.010 / np.median(0.008 * big.lognormal(0, 0.03, 400_000) * big.uniform(0.95, 1.05, 400_000))
    covered = 0
    for experiment in range(100):
        rng = np.random.default_rng(1000 + experiment)
        base = _trials(rng, 0.010, n=30)
        cand = _trials(rng, 0.008, factors=rng.uniform(0.95, 1.05, TRIALS), n=30)
        s = hierarchical_speedup(base, cand, seed=experiment, resamples=400)
        covered += s.low <= truth <= s.high
    # A one-level bootstrap of the pooled samples covers only about 60 % here.
    assert covered >= 85


def test_a_trial_where_one_model_has_no_samples_is_dropped_with_its_partner():
    """Catches such a trial kept (a NaN ratio), or the empty trial dropped from one model's list only, which
    pairs the remaining trials with the wrong session. Trial 0 is the only complete pair; trials 1 and 2 each
    miss one model (it failed in that session), so the result is trial 0's alone."""
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(12)
    a, b = rng.normal(10, 0.5, 80), rng.normal(9, 0.5, 60)
    orphans = rng.normal(30, 0.5, 60), rng.normal(5, 0.5, 60)
    kept = hierarchical_speedup([a, [], orphans[0]], [b, orphans[1], []], seed=3)
    plain = speedup(a, b, seed=3)
    assert kept.n_trials == 1
    assert (kept.ratio, kept.low, kept.high, kept.p_value) == (plain.ratio, plain.low, plain.high, plain.p_value)


def test_shared_trial_effect_cancels_in_paired_resampling():
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(13)
    session = rng.uniform(0.8, 1.2, TRIALS)  # e.g. a slow session slows both models alike
    base, cand = _trials(rng, 0.010, factors=session), _trials(rng, 0.008, factors=session)
    paired = hierarchical_speedup(base, cand)
    # The same samples with the pairing broken (candidate trial i-1 beside baseline trial i): the session
    # effect no longer cancels. Drawing different trial indices for the two models would look like this.
    unpaired = hierarchical_speedup(base, cand[-1:] + cand[:-1])
    assert paired.half_width_pct < 0.25 * unpaired.half_width_pct
    assert paired.half_width_pct < 2.5  # against a ±20 % session effect
    assert paired.low < 1.25 < paired.high


def test_trials_of_different_sizes():
    from convbench.timing.stats import hierarchical_median_interval, hierarchical_speedup

    rng = np.random.default_rng(14)
    base = [0.010 * rng.lognormal(0, 0.03, n) for n in (20, 150, 60, 7)]
    cand = [0.008 * rng.lognormal(0, 0.03, n) for n in (90, 5, 33, 120)]
    s = hierarchical_speedup(base, cand)
    assert s.ratio == pytest.approx(np.median(np.concatenate(base)) / np.median(np.concatenate(cand)))
    assert s.low < s.ratio < s.high and s.low < 1.25 < s.high
    low, high = hierarchical_median_interval(base)
    assert low < np.median(np.concatenate(base)) * 1e3 < high


def test_pooled_medians_of_unequal_trials_are_exact():
    from convbench.timing.stats import _pooled_median_resamples

    # Constant trials make every resample's pooled median depend on the drawn trials only.
    trials = [np.array([1.0]), np.array([3.0, 3.0, 3.0]), np.array([2.0, 2.0])]
    idx = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 1], [0, 2, 2], [0, 0, 2], [2, 0, 1]])
    # pooled: [1,1,1] [3]*9 [1,1,3,3,3] [1,2,2,2,2] [1,1,2,2] [2,2,1,3,3,3]
    expected = [1.0, 3.0, 3.0, 2.0, 1.5, 2.5]
    medians = _pooled_median_resamples(trials, idx, np.random.default_rng(0))
    np.testing.assert_array_equal(medians, expected)


def test_hierarchical_degenerate_input_is_quiet():
    import warnings

    from convbench.timing.stats import hierarchical_median_interval, hierarchical_speedup

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = hierarchical_speedup([[0.002] * 5] * 3, [[0.002] * 5] * 3)
        assert (flat.ratio, flat.low, flat.high, flat.p_value) == (1.0, 1.0, 1.0, 1.0)
        assert not flat.significant and flat.half_width_pct == 0.0
        singles = hierarchical_speedup([[0.002], [0.003]], [[0.002], [0.002]])
        assert singles.n_trials == 2 and singles.low <= singles.ratio <= singles.high
        one_sample = hierarchical_speedup([[0.002]], [[0.001]])
        assert one_sample.ratio == 2.0 and np.isnan(one_sample.low) and not one_sample.significant
        empty = hierarchical_speedup([[], []], [[0.001], []])
        assert empty.n_trials == 0 and np.isnan(empty.ratio) and not empty.significant
        assert np.isnan(empty.half_width_pct)
        assert hierarchical_median_interval([[0.001] * 3, [0.001]]) == (1.0, 1.0)
        assert all(np.isnan(hierarchical_median_interval([[], []])))
    with pytest.raises(ValueError):
        hierarchical_speedup([[0.001]], [[0.001], [0.001]])


def test_hierarchical_p_value():
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(15)
    base = _trials(rng, 0.010)
    assert hierarchical_speedup(base, _trials(rng, 0.008), resamples=500).p_value == pytest.approx(1 / 500)
    null = hierarchical_speedup(base, _trials(rng, 0.010))
    assert null.p_value > 0.05 and not null.significant and null.verdict() == "no significant difference"


def test_significance_with_trials_rests_on_the_interval():
    from convbench.timing.stats import Speedup

    assert Speedup(1.10, 1.05, 1.15, p_value=0.5, n_trials=4).significant
    assert not Speedup(1.10, 1.05, 1.15, p_value=0.5).significant  # one trial: the U-test must agree too
    assert Speedup(1.10, 1.05, 1.15, p_value=0.01).significant
    assert not Speedup(1.10, 0.99, 1.15, p_value=0.001, n_trials=4).significant
    assert not Speedup(1.10, float("nan"), float("nan"), n_trials=4).significant
    assert Speedup(0.8, 0.7, 0.9, n_trials=3).verdict() == "slower"
    assert Speedup(1.25, 1.2, 1.3).half_width_pct == pytest.approx(4.0)


def test_hierarchical_median_interval():
    from convbench.timing.stats import hierarchical_median_interval, median_interval

    rng = np.random.default_rng(16)
    same = _trials(rng, 0.010)
    shifted = _trials(rng, 0.010, factors=np.linspace(0.97, 1.03, TRIALS))
    low, high = hierarchical_median_interval(same)
    assert low < 10.0 < high
    shifted_low, shifted_high = hierarchical_median_interval(shifted)
    assert shifted_high - shifted_low > 1.8 * (high - low)
    assert hierarchical_median_interval(same[:1], seed=4) == median_interval(same[0], seed=4)


# --- few trials: Student's t over trials ---------------------------------------------------------------------


def _coverage(n_trials: int, experiments: int, sigma_between: float, interval: str) -> float:
    """Share of simulated experiments whose 95% interval holds the true value, for ``n_trials`` trials of 30
    lognormal runs each (within-trial sigma 0.02) whose medians move by lognormal(0, ``sigma_between``) factors,
    drawn independently for the two models, so the variation between trials is real and does not cancel."""
    from convbench.timing.stats import hierarchical_median_interval, hierarchical_speedup

    rng = np.random.default_rng(2024 + n_trials)
    hits = 0
    for experiment in range(experiments):
        base = [0.010 * f * rng.lognormal(0, 0.02, 30) for f in rng.lognormal(0, sigma_between, n_trials)]
        cand = [0.008 * f * rng.lognormal(0, 0.02, 30) for f in rng.lognormal(0, sigma_between, n_trials)]
        if interval == "speedup":
            s = hierarchical_speedup(base, cand, seed=experiment, resamples=200)
            hits += s.low <= 1.25 <= s.high
        else:
            low, high = hierarchical_median_interval(base, seed=experiment)
            hits += low <= 10.0 <= high
    return hits / experiments


@pytest.mark.parametrize("n_trials", [2, 3])
@pytest.mark.parametrize("interval", ["speedup", "median"])
def test_few_trials_cover_a_known_between_trial_spread(n_trials, interval):
    # Bug guarded: the two-level bootstrap at 2-3 trials, which sees (n-1)/n of the between-trial variance and
    # draws from 3 (two trials) or 10 (three) combinations; it covers about half the time in this set-up.
    assert _coverage(n_trials, 300, sigma_between=0.04, interval=interval) >= 0.9


def test_few_trials_are_no_wider_than_needed_when_trials_agree():
    # Bug guarded: a small-n interval so crude it is useless (e.g. the within-trial floor counted n times over):
    # with no between-trial spread, 3 trials of 30 runs still separate a 25 % speed-up from none.
    from convbench.timing.stats import hierarchical_speedup

    rng = np.random.default_rng(5)
    base = [0.010 * rng.lognormal(0, 0.02, 30) for _ in range(3)]
    cand = [0.008 * rng.lognormal(0, 0.02, 30) for _ in range(3)]
    s = hierarchical_speedup(base, cand)
    assert s.n_trials == 3 and s.low <= s.ratio <= s.high
    assert s.significant and s.verdict() == "faster" and s.half_width_pct < 5
