"""Summaries of latency samples and comparisons between models.

Medians are the headline figure: latency distributions on a shared machine are right-skewed (preemption,
interrupts), and the median is robust to those outliers where the mean is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

NOISY_CV = 0.10  # coefficient of variation above which a run is flagged noisy (torch.utils.benchmark's 10%)
NOISY_DRIFT = 0.05  # first vs second half of the run: medians differing by more than this flag drift
NOISY_LOAD_PER_CORE = 1.0  # load average per available core above which the machine was busy
SIGNIFICANCE = 0.05
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


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

    @property
    def noisy(self) -> bool:
        return self.cv > NOISY_CV


def summarize(samples_s: Sequence[float]) -> LatencySummary:
    """Summarize latencies given in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no samples")
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencySummary(
        n=int(ms.size), median_ms=float(q50), mean_ms=mean, std_ms=std, min_ms=float(ms.min()),
        max_ms=float(ms.max()), p90_ms=float(q90), p99_ms=float(q99), iqr_ms=float(q75 - q25),
        cv=std / mean if mean > 0 else 0.0,
    )


def median_interval(samples_s: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of the median, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size < 2 or np.ptp(ms) == 0:
        value = float(np.median(ms))
        return value, value
    result = sps.bootstrap(
        (ms,), np.median, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def drift(samples_s: Sequence[float]) -> float:
    """Relative change of the median from the first half of the run to the second."""
    x = np.asarray(samples_s, dtype=np.float64)
    if x.size < 4:
        return 0.0
    half = x.size // 2
    return float(np.median(x[half:]) / np.median(x[:half]) - 1.0)


def noise_reasons(
    samples_s: Sequence[float], load_before: float, load_after: float, cores: int
) -> list[str]:
    """Why a run's timings should not be trusted, if they should not (empty: no sign of noise)."""
    reasons = []
    summary = summarize(samples_s)
    if summary.cv > NOISY_CV:
        reasons.append(f"CV {summary.cv:.0%} > {NOISY_CV:.0%}")
    change = drift(samples_s)
    if abs(change) > NOISY_DRIFT:
        reasons.append(f"median drifted {change:+.0%} between the halves of the run")
    busiest = max(load_before, load_after)
    if busiest > NOISY_LOAD_PER_CORE * cores:
        reasons.append(f"load average {busiest:.1f} on {cores} core(s)")
    return reasons


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann–Whitney U p-value: do the two latency samples come from one distribution?"""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Speedup:
    """median(baseline) / median(candidate) with a bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    p_value: float = float("nan")
    confidence: float = CONFIDENCE

    @property
    def significant(self) -> bool:
        """True when the U-test rejects equality and the interval excludes 1."""
        return bool(self.p_value < SIGNIFICANCE and not self.low <= 1.0 <= self.high)

    def verdict(self) -> str:
        if not self.significant:
            return "no significant difference"
        return "faster" if self.ratio > 1 else "slower"


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

    result = sps.bootstrap(
        (a, b), median_ratio, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
        method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Speedup(ratio, low, high, p_value)
