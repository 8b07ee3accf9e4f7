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
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from convbench.errors import UserInputError

if TYPE_CHECKING:
    from convbench.models.spec import ResolvedModel


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

    @property
    def setup_seconds(self) -> float:
        phases = getattr(self, "phases", None)
        return phases.total_seconds if phases else 0.0

    @abstractmethod
    def timed_run(self) -> float:
        """Run one inference and return its duration in seconds."""

    def settings(self) -> dict[str, object]:
        """Runtime-specific settings for the result row (threads, providers, flags): what actually ran."""
        return {}

    def measurement_started(self) -> None:  # noqa: B027  (optional hook)
        """Called right before this model's warm-up and measured runs (e.g. to sample GPU clocks)."""

    def measurement_finished(self) -> None:  # noqa: B027  (optional hook)
        """Called right after this model's last measured run."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources (sessions, GPU memory). Called once, also after a failure."""


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

    def prefetch(self, model: ResolvedModel, settings: RunSettings) -> None:  # noqa: B027  (optional hook)
        """Produce once, in the main process, what every trial will load (an export), so trials reuse it."""

    @abstractmethod
    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        """Build or load ``model`` and return it ready to be timed."""


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
