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


@dataclass(frozen=True)
class Speedup:
    """median(baseline) / median(candidate) with a bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float = CONFIDENCE


def speedup(baseline_s: Sequence[float], candidate_s: Sequence[float], seed: int = 0) -> Speedup:
    """Speed-up of ``candidate`` over ``baseline`` (> 1: candidate is faster), percentile bootstrap CI."""
    a = np.asarray(baseline_s, dtype=np.float64)
    b = np.asarray(candidate_s, dtype=np.float64)
    ratio = float(np.median(a) / np.median(b))
    if a.size < 2 or b.size < 2:
        return Speedup(ratio, float("nan"), float("nan"))

    def median_ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    result = sps.bootstrap(
        (a, b), median_ratio, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
        method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed),
    )
    return Speedup(ratio, float(result.confidence_interval.low), float(result.confidence_interval.high))
