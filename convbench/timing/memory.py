"""Peak resident memory of this process, per phase, read from the kernel so the timed loop is not perturbed.

Nothing here samples memory while a model runs: a sampling thread would compete with the runtime's threads
for the cores being measured. The kernel already keeps the high-water mark of the resident set (``VmHWM`` in
``/proc/self/status``), and since Linux 4.0 writing ``5`` to ``/proc/self/clear_refs`` resets that mark to the
current resident size (proc(5), "/proc/pid/clear_refs" and "/proc/pid/status"), so the peak of one phase is
one reset before it and one read after it. The other values ``clear_refs`` accepts (1-4) clear page
referenced/soft-dirty bits, which costs page faults later; ``5`` touches only the counter.

Where the reset is refused (a kernel before 4.0, a locked-down ``/proc``, not Linux) the only peak left is the
lifetime one, ``getrusage(RUSAGE_SELF).ru_maxrss`` (getrusage(2)): never lower than the phase's peak, but it
includes every earlier phase; ``peak_rss_mb()`` falls back to it after a refused reset. Where neither can be
read the answer is NaN; nothing in this module raises.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20

# Whether the last reset reached the kernel; None until a reset has been tried.
_reset_works: bool | None = None


def _status_kib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmHWM``) in KiB; NaN where it cannot be read."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return float("nan")
    prefix = field + ":"
    for line in text.splitlines():
        if line.startswith(prefix):
            parts = line[len(prefix) :].split()
            try:
                return float(parts[0])
            except (IndexError, ValueError):
                return float("nan")
    return float("nan")


def _lifetime_peak_mb() -> float:
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError, ValueError):
        return float("nan")
    # getrusage(2): Linux reports ru_maxrss in KiB, macOS in bytes.
    return maxrss / MIB if sys.platform == "darwin" else maxrss / 1024


def reset_peak() -> None:
    """Reset the process's resident-memory high-water mark to the current resident size, where permitted."""
    global _reset_works
    try:
        with _CLEAR_REFS.open("w") as handle:
            handle.write("5")
        _reset_works = True
    except OSError:  # EACCES/EPERM where /proc is locked down, EINVAL before Linux 4.0, ENOENT off Linux
        _reset_works = False


def peak_rss_mb() -> float:
    """The resident-memory high-water mark since the last ``reset_peak()``, in MiB.

    Where the last reset was refused (or none was tried) this is the lifetime peak; NaN where neither can be
    read.
    """
    if _reset_works:
        hwm = _status_kib("VmHWM")
        if not math.isnan(hwm):
            return hwm / 1024
    return _lifetime_peak_mb()


def rss_mb() -> float:
    """The current resident size of the process in MiB; NaN where it cannot be read."""
    return _status_kib("VmRSS") / 1024  # NaN stays NaN
