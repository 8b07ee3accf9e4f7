"""timing.machine: the cores this process may use, the one definition the thread default, the environment
record and the noise signals share."""

from __future__ import annotations

import os

import pytest

from convbench.results.files import environment
from convbench.timing import machine, noise


def test_the_affinity_mask_not_the_machine_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches counting the machine's cores (os.cpu_count) where a container or taskset allows only some."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert machine.available_cpu_ids() == [2, 5]
    assert machine.available_cores() == 2
    assert environment()["cores"] == 2  # the environment records the same budget


def test_without_an_affinity_call_every_core_and_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches an AttributeError off Linux (no sched_getaffinity), and None where cpu_count cannot tell."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert machine.available_cpu_ids() == [] and machine.available_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert machine.available_cores() == 1


def test_noise_reads_the_counters_of_the_allowed_cpus_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the noise signals reading the whole machine's busy time while the process may use two cores."""
    lines = {f"cpu{i}": [str(i)] * 8 for i in range(4)} | {"cpu": ["99"] * 8}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1, 3}, raising=False)
    assert noise._our_cpu_rows(lines) == [lines["cpu1"], lines["cpu3"]]
