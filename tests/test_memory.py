"""Peak resident memory per phase: the kernel's high-water mark, reset between phases where Linux allows it."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from convbench.timing import memory

MB = 2**20


def _touched_array(mb: int) -> np.ndarray:
    # np.ones writes every page, so all of it is resident (np.empty would only reserve address space).
    return np.ones(mb * MB // 8)


# A /proc/self/status with every memory field different, so reading the wrong one (or the wrong unit) shows.
FAKE_STATUS = """Name:\tpython
VmPeak:\t 4194304 kB
VmSize:\t 3145728 kB
VmHWM:\t  307200 kB
VmRSS:\t  102400 kB
RssAnon:\t   51200 kB
"""


def _kernel_resets_the_mark() -> bool:
    """What ``peak_rss_mb()`` relies on: the last reset reached the kernel and ``VmHWM`` can be read."""
    memory.reset_peak()
    return bool(memory._reset_works) and not math.isnan(memory._status_kib("VmHWM"))


def test_peak_and_current_read_their_own_status_fields_in_mib(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Catches reading the wrong field (VmPeak, the virtual-size peak, or VmRSS for the peak; VmHWM for the
    current size) and a KiB/MiB slip."""
    status, clear_refs = tmp_path / "status", tmp_path / "clear_refs"
    status.write_text(FAKE_STATUS)
    clear_refs.write_text("")
    monkeypatch.setattr(memory, "_STATUS", status)
    monkeypatch.setattr(memory, "_CLEAR_REFS", clear_refs)
    memory.reset_peak()
    assert clear_refs.read_text() == "5"  # the value that resets only the high-water mark
    assert memory.rss_mb() == pytest.approx(100.0)
    assert memory.peak_rss_mb() == pytest.approx(300.0)
    monkeypatch.undo()
    memory.reset_peak()  # leave the module as other tests expect it


def test_peak_follows_an_allocation_and_drops_after_reset() -> None:
    if not _kernel_resets_the_mark():
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


@pytest.mark.skipif(sys.platform != "linux", reason="reads getrusage's ru_maxrss in KiB, as Linux reports it")
def test_a_refused_reset_after_a_working_one_falls_back_to_the_lifetime_peak(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Catches a refused reset that leaves the earlier reset's state in place: VmHWM would then be reported
    as this phase's peak although the kernel never reset it. A clear_refs path that cannot be opened stands
    for a kernel or /proc that refuses the reset; the fake status's VmHWM is far below any real lifetime peak."""
    import resource

    status, clear_refs = tmp_path / "status", tmp_path / "clear_refs"
    status.write_text(FAKE_STATUS.replace("307200", "1024"))
    clear_refs.write_text("")
    monkeypatch.setattr(memory, "_STATUS", status)
    monkeypatch.setattr(memory, "_CLEAR_REFS", clear_refs)
    memory.reset_peak()
    assert memory.peak_rss_mb() == pytest.approx(1.0)  # the reset worked: the (fake) phase mark
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    memory.reset_peak()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = memory.peak_rss_mb()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert before <= peak <= after
    monkeypatch.undo()
    memory.reset_peak()  # leave the module as other tests expect it


def test_nan_where_nothing_can_be_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(memory, "_STATUS", tmp_path / "no-status")
    assert math.isnan(memory.rss_mb())
