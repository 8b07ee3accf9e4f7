"""Energy per image: a hardware energy counter read around a window of back-to-back runs.

A counter is supplied by the runtime (``PreparedModel.energy_counter``): on the CPU, RAPL's package energy
(``/sys/class/powercap/intel-rapl:N/energy_uj``, the Linux powercap interface, "Power Capping Framework" in the
kernel documentation); on a CUDA GPU, NVML's total energy since the driver loaded
(``nvmlDeviceGetTotalEnergyConsumption``, in ``convbench.runtimes.gpu``). Both are cumulative counters; RAPL's
wraps at ``max_energy_range_uj``, so a reading lower than the one before it is taken as one wrap.

The window. After a model's timed samples, it runs back to back, outside the latency samples, for at least
``MIN_WINDOW_S`` (counters update every millisecond or so, RAPL, up to tens of milliseconds, NVML: a shorter
window would be mostly quantisation), and the counter is read right before and after. Joules per image are
the window's energy over its images; mean power is its energy over its wall-clock time. A counter measures
a whole package or board, so other work on the machine at the same time counts too, and idle power is
included: the figure is what running this model costs the device, not the model's marginal energy.

Where no counter exists (a VM without powercap, energy readable by root only, no NVML), the reason is recorded
as ``energy: not available (<reason>)`` and the figures are NaN, never zero.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIN_WINDOW_S = 1.0
POWERCAP = Path("/sys/class/powercap")
COLUMNS = ("energy_j_per_image", "power_w", "energy_source", "energy_note")


class EnergyCounter(ABC):
    """A cumulative energy counter with one or more domains (CPU packages), read in joules."""

    #: what is measured, for the row (e.g. "rapl: package-0+package-1", "nvml: NVIDIA H100").
    source: str = ""

    @abstractmethod
    def read(self) -> tuple[float, ...]:
        """The counter of each domain now, in joules."""

    def wrap_ranges(self) -> tuple[float | None, ...]:
        """Where each domain's counter wraps to zero, in joules (None: it does not wrap)."""
        return (None,) * len(self.read())

    def joules(self, start: Sequence[float], end: Sequence[float]) -> float:
        """Energy between two readings, summed over domains, a wrap-around in each domain undone."""
        return sum(counter_delta(a, b, wrap) for a, b, wrap in zip(start, end, self.wrap_ranges(), strict=True))

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what reading needed (an NVML session)."""


@dataclass(frozen=True)
class NoCounter:
    """No energy counter here, and why."""

    reason: str

    @property
    def note(self) -> str:
        return f"energy: not available ({self.reason})"


def counter_delta(start: float, end: float, wrap: float | None) -> float:
    """``end - start`` of a counter that wraps to zero at ``wrap``; a wrapped counter without a known range is
    NaN (a wrong number would look like a measurement)."""
    if end >= start:
        return end - start
    if wrap is None or wrap <= 0:
        return float("nan")
    return end + wrap - start


@dataclass
class EnergyWindow:
    """The energy of ``runs`` back-to-back inferences over ``seconds`` of wall-clock time."""

    joules: float
    seconds: float
    runs: int
    source: str

    def per_image(self, batch_size: int) -> float:
        images = self.runs * batch_size
        return self.joules / images if images else float("nan")

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def energy_window(
    run: Callable[[], float],
    counter: EnergyCounter,
    *,
    min_seconds: float = MIN_WINDOW_S,
    min_runs: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> EnergyWindow:
    """Run ``run`` back to back for at least ``min_runs`` runs and ``min_seconds``, reading ``counter`` around.

    The length is wall-clock time, or the sum of the durations ``run`` returns where that is reached first (a
    runtime that returns device time, or a test's fake model that returns durations without taking them).
    """
    runs, timed = 0, 0.0
    start_reading = counter.read()
    start = clock()
    while runs < min_runs or (clock() - start < min_seconds and timed < min_seconds):
        timed += run()
        runs += 1
    seconds = clock() - start
    joules = counter.joules(start_reading, counter.read())
    return EnergyWindow(joules=joules, seconds=seconds, runs=runs, source=counter.source)


# RAPL --------------------------------------------------------------------------------------------------


class RaplCounter(EnergyCounter):
    """RAPL package domains (``intel-rapl:N``; their subdomains and ``psys``, which contain them, left out so
    nothing is counted twice)."""

    def __init__(self, domains: Sequence[Path]) -> None:
        self.domains = list(domains)
        names = [_read_text(d / "name") or d.name for d in self.domains]
        self.source = "rapl: " + "+".join(names)
        self._ranges = tuple(_read_number(d / "max_energy_range_uj") for d in self.domains)

    def read(self) -> tuple[float, ...]:
        return tuple(int((d / "energy_uj").read_text()) / 1e6 for d in self.domains)

    def wrap_ranges(self) -> tuple[float | None, ...]:
        return tuple(r / 1e6 if r is not None else None for r in self._ranges)


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _read_number(path: Path) -> int | None:
    text = _read_text(path)
    return int(text) if text.isdigit() else None


def rapl_counter(root: Path = POWERCAP) -> EnergyCounter | NoCounter:
    """The RAPL package counter of this machine, or why there is none."""
    if not root.is_dir():
        return NoCounter(f"no {root} (no RAPL powercap interface on this machine or VM)")
    domains = sorted(
        p
        for p in root.glob("intel-rapl:*")
        if p.name.count(":") == 1 and _read_text(p / "name") != "psys" and (p / "energy_uj").exists()
    )
    if not domains:
        return NoCounter(f"no RAPL package domain under {root}")
    try:
        counter = RaplCounter(domains)
        counter.read()
    except PermissionError:
        # Readable by root only since Linux 5.10 (the PLATYPUS power side channel, CVE-2020-8694).
        return NoCounter(f"{domains[0] / 'energy_uj'} is readable by root only")
    except (OSError, ValueError) as exc:
        return NoCounter(f"cannot read {domains[0] / 'energy_uj'}: {exc}")
    return counter


# Result columns ----------------------------------------------------------------------------------------


def energy_columns(
    windows: Sequence[EnergyWindow | dict[str, Any] | None], note: str, batch_size: int
) -> dict[str, Any]:
    """The row's energy columns from every trial's window (``EnergyWindow`` or its ``as_dict``).

    ``energy_j_per_image`` is the total energy over the total images and ``power_w`` the total energy over the
    total time; with no window, both are NaN and ``energy_note`` says why (``note``, from the trials).
    """
    measured = [EnergyWindow(**w) if isinstance(w, dict) else w for w in windows if w]
    found = [w for w in measured if not math.isnan(w.joules)]
    if not found:
        if measured:
            note = "energy: not available (the counter went back without a known wrap range)"
        return {
            "energy_j_per_image": float("nan"),
            "power_w": float("nan"),
            "energy_source": "",
            "energy_note": note or "energy: not available (no energy window was measured)",
        }
    joules = sum(w.joules for w in found)
    images = sum(w.runs for w in found) * batch_size
    seconds = sum(w.seconds for w in found)
    return {
        "energy_j_per_image": joules / images if images else float("nan"),
        "power_w": joules / seconds if seconds > 0 else float("nan"),
        "energy_source": found[0].source,
        "energy_note": "",
    }
