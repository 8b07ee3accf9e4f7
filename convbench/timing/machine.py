"""The CPUs this process may run on: the default thread budget, what the environment records, and the cores
whose counters the noise signals read.

The affinity mask (``sched_getaffinity(2)``), not the machine's core count, is what a benchmark can use: a
container, ``taskset`` or a batch scheduler may restrict the process to a few of the machine's cores.
"""

from __future__ import annotations

import os


def available_cpu_ids() -> list[int]:
    """The ids of the CPUs this process may run on, ascending; empty where the platform does not say (not Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def available_cores() -> int:
    """How many cores this process may run on: the thread budget a benchmark uses unless told otherwise.

    The affinity mask where the platform has one, else every core of the machine (at least 1).
    """
    return len(available_cpu_ids()) or os.cpu_count() or 1
