"""One convbench result row for the merge tests, with the columns merge reads; extras override or add columns."""

from __future__ import annotations

from typing import Any

from convbench.results.files import SCHEMA_VERSION


def result_row(
    model: str, baseline: str, run_id: str, speedup: float, *, cpu: str = "cpu", host: str = "h", **extra: Any
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "model": model,
        "batch_size": 1,
        "median_ms": 2.0,
        "baseline": baseline,
        "speedup": speedup,
        "speedup_low": speedup * 0.9,
        "speedup_high": speedup * 1.1,
        "speedup_trial_min": speedup * 0.95,
        "speedup_trial_max": speedup * 1.05,
        "p_value": 0.01,
        "significant": True,
        "verdict": "baseline" if model == baseline else "faster",
        "cpu": cpu,
        "host": host,
        "cores": 8,
        "git_commit": "abc1234",
        "git_dirty": "no",
        **extra,
    }
