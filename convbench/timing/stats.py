"""Summaries of latency samples and comparisons between models.

Medians are the headline figure: latency distributions on a shared machine are right-skewed (preemption,
interrupts), and the median is robust to those outliers where the mean is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NOISY_CV = 0.10  # coefficient of variation above which a run is flagged noisy (torch.utils.benchmark's 10%)
NOISY_DRIFT = 0.05  # first vs second half of the run: medians differing by more than this flag drift
SIGNIFICANCE = 0.05
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
# Below this many trials the interval over trials is t-based (``_small_n_interval``), not bootstrapped: the
# two-level bootstrap's top level has only n^n / n! distinct draws there and sees (n-1)/n of the variance.
SMALL_N_TRIALS = 5


@dataclass(frozen=True)
class LatencySummary:
    """Statistics of one model's per-inference latencies, in milliseconds."""

    n: int
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p90_ms: float
    p99_ms: float
    iqr_ms: float
    cv: float


def summarize(samples_s: Sequence[float]) -> LatencySummary:
    """Summarize latencies given in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no samples")
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencySummary(
        n=int(ms.size),
        median_ms=float(q50),
        mean_ms=mean,
        std_ms=std,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        p90_ms=float(q90),
        p99_ms=float(q99),
        iqr_ms=float(q75 - q25),
        cv=std / mean if mean > 0 else 0.0,
    )


def median_interval(samples_s: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of the median, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size < 2 or np.ptp(ms) == 0:
        value = float(np.median(ms))
        return value, value
    from scipy import stats as sps

    result = sps.bootstrap(
        (ms,),
        np.median,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def drift(samples_s: Sequence[float]) -> float:
    """Relative change of the median from the first half of the run to the second."""
    x = np.asarray(samples_s, dtype=np.float64)
    if x.size < 4:
        return 0.0
    half = x.size // 2
    return float(np.median(x[half:]) / np.median(x[:half]) - 1.0)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann–Whitney U p-value: do the two latency samples come from one distribution?"""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    from scipy import stats as sps

    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Speedup:
    """median(baseline) / median(candidate) with a bootstrap confidence interval.

    ``trial_low`` / ``trial_high`` are the smallest and largest per-trial speed-ups when the comparison was
    repeated in independent trials: their spread shows how much a single session could have misled.
    """

    ratio: float
    low: float
    high: float
    p_value: float = float("nan")
    confidence: float = CONFIDENCE
    trial_low: float = float("nan")
    trial_high: float = float("nan")
    n_trials: int = 1

    @property
    def significant(self) -> bool:
        """True when the interval excludes 1 (and, for a single trial, the U-test also rejects equality).

        With several trials the hierarchical interval already carries the between-session variance, and a
        U-test on pooled samples would not (it treats every sample as independent), so the interval alone
        decides. A single trial keeps the older two-part rule so that one-trial results do not change.
        """
        if math.isnan(self.low) or math.isnan(self.high):
            return False
        excludes_one = not self.low <= 1.0 <= self.high
        if self.n_trials > 1:
            return excludes_one
        return bool(self.p_value < SIGNIFICANCE and excludes_one)

    @property
    def half_width_pct(self) -> float:
        """Half the interval's width as a percentage of the ratio: the "± x %" a reader compares across rows."""
        if not math.isfinite(self.ratio) or self.ratio == 0:
            return float("nan")
        return 100.0 * (self.high - self.low) / 2.0 / self.ratio

    def verdict(self) -> str:
        if not self.significant:
            return "no significant difference"
        return "faster" if self.ratio > 1 else "slower"

    def as_row(self, baseline: bool = False) -> dict[str, object]:
        """The result-row columns of this speed-up (``results.SPEEDUP_COLUMNS``, the MAC ratio aside)."""
        return {
            "speedup": self.ratio,
            "speedup_low": self.low,
            "speedup_high": self.high,
            "speedup_trial_min": self.trial_low,
            "speedup_trial_max": self.trial_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "verdict": "baseline" if baseline else self.verdict(),
        }


def speedup(baseline_s: Sequence[float], candidate_s: Sequence[float], seed: int = 0) -> Speedup:
    """Speed-up of ``candidate`` over ``baseline`` (> 1: candidate is faster), percentile bootstrap CI."""
    a = np.asarray(baseline_s, dtype=np.float64)
    b = np.asarray(candidate_s, dtype=np.float64)
    ratio = float(np.median(a) / np.median(b))
    if a.size < 2 or b.size < 2:
        return Speedup(ratio, float("nan"), float("nan"))
    p_value = mann_whitney_p(a, b)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Speedup(ratio, ratio, ratio, p_value)

    def median_ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    from scipy import stats as sps

    result = sps.bootstrap(
        (a, b),
        median_ratio,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Speedup(ratio, low, high, p_value)


# Bootstrap draws are made in chunks of resamples holding at most this many values per model, so that long
# runs (thousands of samples per trial) do not need one gigabyte-sized array.
_CHUNK_VALUES = 2_000_000


def _trial_arrays(trials: Sequence[Sequence[float]]) -> list[np.ndarray]:
    return [np.asarray(t, dtype=np.float64).ravel() for t in trials]


def _pooled_median_resamples(trials: list[np.ndarray], trial_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Median of each two-level bootstrap resample: trials ``trial_idx[r]``, then samples within each trial.

    Trials may hold different numbers of samples, so a resample's pooled size varies; each row is padded
    with +inf up to the largest possible size and its median read from the sorted row at its own length.
    """
    lengths = np.array([t.size for t in trials])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate(trials)
    n_resamples, n_trials = trial_idx.shape
    width = int(lengths.max())
    chunk = max(1, _CHUNK_VALUES // (n_trials * width))
    medians = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        idx = trial_idx[start : start + chunk]
        n = lengths[idx][..., None]  # (r, trials, 1): size of each chosen trial
        within = rng.integers(0, n, size=(*idx.shape, width))  # in range even in padding columns
        values = flat[offsets[idx][..., None] + within]
        values[np.arange(width) >= n] = np.inf
        values = np.sort(values.reshape(len(idx), -1), axis=1)
        count = n[..., 0].sum(axis=1)
        rows = np.arange(len(idx))
        medians[start : start + chunk] = (values[rows, (count - 1) // 2] + values[rows, count // 2]) / 2.0
    return medians


def _percentile_interval(values: np.ndarray) -> tuple[float, float]:
    tail = 100.0 * (1.0 - CONFIDENCE) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def hierarchical_speedup(
    baseline_trials: Sequence[Sequence[float]],
    candidate_trials: Sequence[Sequence[float]],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Speedup:
    """Speed-up over independent, paired trials, with a two-level (hierarchical) bootstrap interval.

    A single session's samples share its memory layout, arena state and core placement, so resampling them
    alone gives an interval that reruns routinely miss. Following Saravanan, Berman and Sober, "Application
    of the hierarchical bootstrap to multi-level data in neuroscience" (Neurons, Behavior, Data analysis and
    Theory, 2020), each resample first draws trials with replacement and then samples within each drawn
    trial, so the interval carries the between-trial variance too. Trial ``i`` of both lists is the same
    session (both models interleaved in it), so both models get the same trial indices: an effect that hits
    both models in a session cancels in the ratio instead of widening the interval.

    The bootstrap is not conservative with few trials: its top level estimates the between-trial variance
    with divisor n instead of n - 1 (so it sees (n-1)/n of it) and draws from only a few distinct
    combinations (3 with two trials). From ``SMALL_N_TRIALS`` trials on, the within-trial resampling, which
    counts that noise a second time, roughly makes up for it (``tests/test_stats.py`` checks coverage at 8
    trials). Below it, 2 to 4 trials, the interval is instead Student's t on the per-trial log speed-ups
    (``_small_n_interval``): valid for any number of trials from two, and as wide as two trials honestly allow.

    A trial in which either model has no samples carries no pairing and is dropped. A single trial falls
    back to ``speedup`` (within-session bootstrap and U-test), so one-trial results are unchanged.
    """
    if len(baseline_trials) != len(candidate_trials):
        raise ValueError(f"{len(baseline_trials)} baseline trials but {len(candidate_trials)} candidate trials")
    pairs = [
        (a, b)
        for a, b in zip(_trial_arrays(baseline_trials), _trial_arrays(candidate_trials), strict=True)
        if a.size and b.size
    ]
    nan = float("nan")
    if not pairs:
        return Speedup(nan, nan, nan, n_trials=0)
    base = [a for a, _ in pairs]
    cand = [b for _, b in pairs]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_trial = [float(np.median(a) / np.median(b)) for a, b in pairs]
        if len(pairs) == 1:
            one = speedup(base[0], cand[0], seed)
            return Speedup(one.ratio, one.low, one.high, one.p_value, trial_low=one.ratio, trial_high=one.ratio)
        ratio = float(np.median(np.concatenate(base)) / np.median(np.concatenate(cand)))
        trial_range = {"trial_low": min(per_trial), "trial_high": max(per_trial), "n_trials": len(pairs)}
        if len(pairs) < SMALL_N_TRIALS:
            return _small_n_speedup(ratio, base, cand, trial_range)
        trial_rng, base_rng, cand_rng = np.random.default_rng(seed).spawn(3)
        trial_idx = trial_rng.integers(0, len(pairs), size=(resamples, len(pairs)))
        ratios = _pooled_median_resamples(base, trial_idx, base_rng) / _pooled_median_resamples(
            cand, trial_idx, cand_rng
        )
    ratios = ratios[~np.isnan(ratios)]
    if ratios.size == 0:
        return Speedup(ratio, nan, nan, **trial_range)
    low, high = _percentile_interval(ratios)
    # Two-sided bootstrap p-value: how far 1 sits in a tail of the resampled ratios. Ties at exactly 1 count
    # on both sides, so identical constant samples give p = 1, not the floor.
    tail = min(np.mean(ratios <= 1.0), np.mean(ratios >= 1.0))
    p_value = float(min(1.0, max(2.0 * tail, 1.0 / resamples)))
    return Speedup(ratio, low, high, p_value, **trial_range)


def interval_method(n_trials: int) -> str:
    """How ``hierarchical_speedup`` and ``hierarchical_median_interval`` form their interval for ``n_trials``
    trials, in words for a caption or a row: "bootstrap" (one trial: its runs), "t over trials" (2 to 4),
    "two-level bootstrap" (from ``SMALL_N_TRIALS``)."""
    if n_trials <= 1:
        return "bootstrap"
    return "t over trials" if n_trials < SMALL_N_TRIALS else "two-level bootstrap"


def hierarchical_median_interval(trials: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float]:
    """Two-level bootstrap 95% interval of one model's median latency over trials, in milliseconds.

    The same resampling as ``hierarchical_speedup`` (trials, then samples within them), so the interval
    reflects how much the median moves between sessions, not only within one; with 2 to 4 trials it is
    Student's t on the per-trial log medians instead (see ``hierarchical_speedup``). A single trial falls back
    to ``median_interval`` so one-trial results are unchanged.
    """
    arrays = [a * 1e3 for a in _trial_arrays(trials) if a.size]
    if not arrays:
        return float("nan"), float("nan")
    if len(arrays) == 1:
        return median_interval(arrays[0] / 1e3, seed)
    pooled = np.concatenate(arrays)
    if pooled.size < 2 or np.ptp(pooled) == 0:
        value = float(np.median(pooled))
        return value, value
    if len(arrays) < SMALL_N_TRIALS:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = [np.log(a) for a in arrays]
            centre, half, _ = _small_n_interval(
                np.array([np.median(x) for x in logs]), np.array([_log_median_se(x) ** 2 for x in logs])
            )
        value = float(np.median(pooled))
        if not math.isfinite(centre + half):  # a zero or negative latency: no log scale
            return float("nan"), float("nan")
        return min(value, math.exp(centre - half)), max(value, math.exp(centre + half))
    trial_rng, sample_rng = np.random.default_rng(seed).spawn(2)
    trial_idx = trial_rng.integers(0, len(arrays), size=(BOOTSTRAP_RESAMPLES, len(arrays)))
    return _percentile_interval(_pooled_median_resamples(arrays, trial_idx, sample_rng))


def _log_median_se(log_samples: np.ndarray) -> float:
    """Standard error of the median of ``log_samples`` from its distribution-free 95% interval, the order
    statistics n/2 -/+ 1.96 sqrt(n)/2 (binomial normal approximation), divided by 2 x 1.96; 0 for one sample."""
    n = log_samples.size
    if n < 2:
        return 0.0
    x = np.sort(log_samples)
    reach = 1.96 * math.sqrt(n) / 2.0
    low = max(0, math.floor(n / 2.0 - reach) - 1)  # 1-based order statistics -> 0-based indices
    high = min(n - 1, math.ceil(n / 2.0 + reach) - 1)
    return float(x[high] - x[low]) / (2 * 1.96)


def _small_n_interval(values: np.ndarray, within_var: np.ndarray) -> tuple[float, float, float]:
    """(mean, half-width, p-value against 0) of Student's t interval for the mean of per-trial ``values``.

    Each value's spread between trials already contains its within-trial noise, so the sample variance alone
    estimates the variance of the mean without bias and the t quantile with n - 1 degrees of freedom makes the
    interval exact for normal values whatever n (here log medians, near normal for a trial's dozens of runs).
    Two trials that agree by chance would give a near-zero width, which their within-trial noise
    (``within_var``, each value's squared standard error) rules out: the variance used is never below its mean.
    That floor only widens the interval, so it stays valid.
    """
    from scipy import stats as sps

    n = values.size
    mean = float(values.mean())
    variance = max(float(values.var(ddof=1)), float(within_var.mean())) / n
    if not variance > 0:  # identical trials without spread inside them: the value itself, p = 1 unless it moved
        return mean, 0.0, 1.0 if mean == 0 else 0.0
    quantile = float(sps.t.ppf(0.5 + CONFIDENCE / 2.0, n - 1))
    t_stat = mean / math.sqrt(variance)
    p_value = float(2.0 * sps.t.sf(abs(t_stat), n - 1))
    return mean, quantile * math.sqrt(variance), p_value


def _small_n_speedup(
    ratio: float, base: list[np.ndarray], cand: list[np.ndarray], trial_range: dict[str, float | int]
) -> Speedup:
    """``hierarchical_speedup`` for 2 to 4 trials: Student's t on the per-trial log speed-ups (paired, so a
    session effect on both models cancels), widened where needed to contain the pooled ``ratio``."""
    nan = float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_base = [np.log(a) for a in base]
        log_cand = [np.log(b) for b in cand]
        values = np.array([np.median(a) - np.median(b) for a, b in zip(log_base, log_cand, strict=True)])
        within = np.array(
            [_log_median_se(a) ** 2 + _log_median_se(b) ** 2 for a, b in zip(log_base, log_cand, strict=True)]
        )
    if not np.isfinite(values).all() or not np.isfinite(within).all():  # a zero latency: no log scale
        return Speedup(ratio, nan, nan, **trial_range)
    centre, half, p_value = _small_n_interval(values, within)
    low, high = math.exp(centre - half), math.exp(centre + half)
    return Speedup(ratio, min(low, ratio), max(high, ratio), p_value, **trial_range)
