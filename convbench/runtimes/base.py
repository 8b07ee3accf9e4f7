"""The interface every runtime implements, so the measuring logic never knows which one it drives.

A runtime turns a resolved model (``convbench.models.spec.ResolvedModel``) into a ``PreparedModel``: something
that runs one inference on a fixed input and returns how long that inference took, measured the way that
runtime needs (a host clock around a synchronous call on the CPU, CUDA events on a GPU).

Each runtime is one module in this package that defines a ``Runtime`` subclass decorated with
``@register_runtime`` and, if it has settings of its own, an options dataclass declared with
``convbench.options.option`` (those fields become command-line flags of ``profile``, ``compare``, ``reproduce``
and run specs without any other file changing). Runtime modules import their heavy libraries lazily, inside
``prepare``, so that listing runtimes (``--help``, errors) costs nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from convbench.errors import UserInputError

if TYPE_CHECKING:
    from convbench.models.spec import ResolvedModel
    from convbench.timing.energy import EnergyCounter, NoCounter


@dataclass(frozen=True)
class NoOptions:
    """The options of a runtime that has none of its own."""


@dataclass(frozen=True)
class RunSettings:
    """What every runtime receives, whichever it is: the input and the budget it may use."""

    device: str
    threads: int
    input_shape: tuple[int, ...]  # (batch, channels, height, width)
    exporter: str = "dynamo"
    precision: str = "fp32"

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]


@dataclass
class SetupPhases:
    """Seconds and peak resident memory of each setup phase a runtime goes through (build, export, session,
    transfer, compile, capture). Runtimes wrap each phase in ``phase(name)``.

    Memory is the process's resident high-water mark during the phase (``convbench.timing.memory``: reset at the start
    of each phase where the kernel allows it), in MiB, and ``rss_start_mb`` is the resident size before the
    first phase, so ``peak - rss_start_mb`` is what preparing this model added on top of what the process held.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    rss_start_mb: float = float("nan")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        from convbench.timing import memory

        if not self.seconds:
            self.rss_start_mb = memory.rss_mb()
        memory.reset_peak()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            peak = memory.peak_rss_mb()
            if peak == peak:  # NaN where the kernel does not report it
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), peak)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def as_row(self) -> dict[str, float]:
        row: dict[str, float] = {"setup_ms": self.total_seconds * 1e3, "rss_start_mb": self.rss_start_mb}
        row.update({f"setup_{k}_ms": v * 1e3 for k, v in self.seconds.items()})
        row.update({f"peak_{k}_mb": v for k, v in self.peak_mb.items()})
        return row


class PreparedModel(ABC):
    """One model, loaded and ready to run on a fixed input."""

    #: time (and memory) per setup phase, measured by the runtime while preparing the model.
    phases: SetupPhases

    @abstractmethod
    def timed_run(self) -> float:
        """Run one inference and return its duration in seconds."""

    def settings(self) -> dict[str, object]:
        """Runtime-specific settings for the result row (threads, providers, flags): what actually ran."""
        return {}

    def measurement_started(self) -> None:  # noqa: B027  (optional hook)
        """Called right before this model's warm-up (e.g. to reset a device's peak-memory counters)."""

    def warmup_finished(self) -> None:  # noqa: B027  (optional hook)
        """Called right after this model's own warm-up, before the interleaved measured runs of all models
        (e.g. to read the memory peak of its own inference, and clocks of a warmed-up device)."""

    def measurement_finished(self) -> None:  # noqa: B027  (optional hook)
        """Called right after this model's last measured run."""

    def energy_counter(self) -> EnergyCounter | NoCounter:
        """The energy counter of the device this model runs on, or why there is none (``convbench.timing.energy``).
        By default the CPU's RAPL package counter; a GPU runtime returns its device's (``runtimes.gpu``)."""
        from convbench.timing.energy import rapl_counter

        return rapl_counter()

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources (sessions, GPU memory). Called once, also after a failure."""

    def host_threads(self, threads: int) -> int:
        """The host threads this model's runs keep busy, for the CPU-contention signals (0: none to watch).

        A CPU runtime uses its whole thread budget; a GPU runtime overrides this (one launching thread in eager
        mode, none worth watching where a captured graph replays).
        """
        return threads


class Runtime(ABC):
    """A way to run models: ONNX Runtime on the CPU, PyTorch eager on the CPU or a GPU, ..."""

    name: ClassVar[str]
    devices: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    #: the dataclass of this runtime's own options (fields declared with ``convbench.options.option``).
    options_type: ClassVar[type] = NoOptions
    #: importable modules the runtime needs; checked without importing them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: how to get what ``requires`` names, shown when it is missing.
    install_hint: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: whether the runtime runs ONNX files (``model.onnx`` given directly) and PyTorch modules.
    runs_onnx: ClassVar[bool] = False
    runs_torch: ClassVar[bool] = True

    @classmethod
    def installed(cls) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    def check(self, settings: RunSettings, options: Any) -> None:  # noqa: B027  (optional hook)
        """Refuse impossible combinations of settings and options before anything is built."""

    def limit_threads(self, threads: int) -> None:
        """Hold the whole process to the run's thread budget before any model is prepared.

        torch's intra-op pool too, whichever runtime is measured: models are built in torch before an ONNX
        runtime times them. Only where torch is loaded already, so an ONNX-file trial does not import it.
        """
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` says this runtime ran out of memory; that model's row then records it, the others
        are still measured. The default knows the wording of the common allocators."""
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
            return True
        text = str(exc).lower()
        return any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc", "bad allocation"))

    def prefetch(self, model: ResolvedModel, settings: RunSettings) -> None:  # noqa: B027  (optional hook)
        """Produce once, in the main process, what every trial will load (an export), so trials reuse it."""

    @abstractmethod
    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        """Build or load ``model`` and return it ready to be timed."""

    # Optional hooks: what only the runtime knows. The defaults say "this runtime has none".

    def version(self) -> str:
        """The version of the library this runtime runs on (part of the peak cache key)."""
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        try:
            return package_version(self.requires[0]) if self.requires else ""
        except PackageNotFoundError:
            return ""

    def device_name(self, device: str) -> str:
        """The accelerator this runtime runs on as ``device`` (a GPU's name), ``""`` on the CPU."""
        return ""

    def peak_precisions(self, device: str) -> tuple[str, ...]:
        """The compute precisions (``fp32``, ``tf32``, ``fp16``, ``bf16``) whose GEMM peak this runtime can
        measure on ``device`` of this machine; empty where it has no peak GEMM."""
        return ()

    def peak_gemm(self, n: int, threads: int, device: str, precision: str) -> Gemm:
        """One n x n by n x n GEMM in ``precision``, built and ready to be timed (``convbench peak``)."""
        raise UserInputError(f"runtime {self.name!r} has no peak GEMM")

    def peak_precision(self, device: str, precision: str, options: Any) -> str | None:
        """The peak precision that a model run on ``device`` in ``precision`` with ``options`` computes in: whose
        GEMM is its ceiling. ``None`` where this runtime measures no peak for it. Asks no hardware."""
        return None

    #: the profiler ``operator_profile`` uses, in words ("" where the runtime has none).
    operator_profiler: ClassVar[str] = ""

    def operator_profile(self, model: ResolvedModel, settings: RunSettings, options: Any, runs: int) -> OperatorProfile:
        """Time and count per operator type over ``runs`` inferences (``--op-profile``)."""
        raise UserInputError(f"--op-profile: runtime {self.name!r} has no operator profiler")


@dataclass
class Gemm:
    """One runtime's n x n GEMM, built: ``run()`` times one product in seconds; ``restore()`` undoes any global
    setting the GEMM changed (thread pools, math modes)."""

    run: Callable[[], float]
    restore: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class OperatorTime:
    """The time one operator type took per inference, and how often it ran."""

    op_type: str
    ms_per_run: float
    share: float  # of the profile's total time
    calls: float  # per inference: graph nodes (ONNX Runtime), operator calls (torch)
    kernels: float | None = None  # GPU kernels launched per inference; None on the CPU


@dataclass(frozen=True)
class OperatorProfile:
    """A runtime's operator profile of one model: rows sorted by time, and counts per forward pass."""

    profiler: str  # "ONNX Runtime's profiler", "torch.profiler (CUDA kernel time)", ...
    rows: list[OperatorTime]
    runs: int
    #: e.g. {"kernels per forward pass": 312.0}; empty where the profiler counts nothing more.
    per_run: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeKey:
    name: str
    device: str


_RUNTIMES: dict[RuntimeKey, type[Runtime]] = {}
_ORIGINS: dict[str, str] = {}  # runtime name -> module that registered it


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: make ``cls`` available as ``--runtime cls.name`` on each of ``cls.devices``."""
    for device in cls.devices:
        key = RuntimeKey(cls.name, device)
        if key in _RUNTIMES and _RUNTIMES[key] is not cls:
            raise ValueError(f"runtime {cls.name!r} on {device!r} registered twice")
        _RUNTIMES[key] = cls
    _ORIGINS.setdefault(cls.name, cls.__module__)
    return cls


def registered() -> dict[RuntimeKey, type[Runtime]]:
    return dict(_RUNTIMES)


def unknown_runtime(name: str) -> UserInputError:
    names = sorted({k.name for k in _RUNTIMES})
    return UserInputError(f"unknown runtime {name!r}; registered: {', '.join(names)}")
