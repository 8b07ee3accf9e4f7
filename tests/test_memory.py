"""Peak resident memory per phase: the kernel's high-water mark, reset between phases where Linux allows it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convbench.timing import memory

MB = 2**20


def _touched_array(mb: int) -> np.ndarray:
    # np.ones writes every page, so all of it is resident (np.empty would only reserve address space).
    return np.ones(mb * MB // 8)


def test_current_and_peak_are_numbers_and_never_raise() -> None:
    memory.reset_peak()
    assert memory.rss_mb() > 0
    assert memory.peak_rss_mb() >= memory.rss_mb() - 1  # the mark is never below what is resident now
    assert isinstance(memory.peak_is_per_phase(), bool)


def test_peak_follows_an_allocation_and_drops_after_reset() -> None:
    if not memory.peak_is_per_phase():
        pytest.skip(
            "the kernel refuses to reset the high-water mark here (/proc/self/clear_refs not writable "
            "or older than Linux 4.0); peak_rss_mb() is the lifetime peak"
        )
    memory.reset_peak()
    baseline = memory.peak_rss_mb()
    block = _touched_array(150)
    with_block = memory.peak_rss_mb()
    assert with_block - baseline >= 100, (baseline, with_block)
    del block
    memory.reset_peak()
    after = memory.peak_rss_mb()
    assert after < with_block - 100, (with_block, after)


def test_falls_back_to_lifetime_peak_when_reset_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # A clear_refs path that cannot be opened stands for a kernel or /proc that refuses the reset.
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    memory.reset_peak()
    assert not memory.peak_is_per_phase()
    peak = memory.peak_rss_mb()
    assert math.isnan(peak) or peak > 0
    monkeypatch.undo()
    memory.reset_peak()  # leave the module as other tests expect it


def test_nan_where_nothing_can_be_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(memory, "_STATUS", tmp_path / "no-status")
    assert math.isnan(memory.rss_mb())
