"""Runtimes (backends) behind one interface, found by registration rather than listed here.

Every module of this package is imported once (cheaply: runtimes import their heavy libraries inside
``prepare``), and so is every entry point of the ``convbench.runtimes`` group, so a runtime is one new file
(or one plugin package) and nothing else changes. ``runtime_class`` picks one by name and device, and
``check_device`` says whether that device is there.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from convbench.errors import UserInputError
from convbench.runtimes.base import (
    NoOptions,
    PreparedModel,
    RunSettings,
    Runtime,
    RuntimeKey,
    register_runtime,
    registered,
    unknown_runtime,
)

DEVICES = ("cpu", "cuda")
DEFAULT_RUNTIME = {"cpu": "onnxruntime", "cuda": "torch"}


@functools.cache
def discover() -> dict[RuntimeKey, type[Runtime]]:
    """Import every runtime module of the package and of installed plugins; the registered runtimes."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    for entry in entry_points(group="convbench.runtimes"):
        entry.load()
    return registered()


def runtime_names(device: str | None = None) -> list[str]:
    return sorted({k.name for k in discover() if device is None or k.device == device})


def runtime_help() -> str:
    """One line per registered runtime for ``--runtime``'s help: devices, and whether it is installed."""
    by_name: dict[str, type[Runtime]] = {}
    devices: dict[str, list[str]] = {}
    for key, cls in discover().items():
        by_name.setdefault(key.name, cls)
        devices.setdefault(key.name, []).append(key.device)
    parts = []
    for name in sorted(by_name):
        cls = by_name[name]
        state = "" if cls.installed() else f", not installed: {cls.install_hint}"
        parts.append(f"{name} ({'/'.join(devices[name])}{state})")
    defaults = ", ".join(f"{d}: {r}" for d, r in DEFAULT_RUNTIME.items())
    return f"Runtime: {'; '.join(parts)}. Default per device: {defaults}."


def all_runtime_classes() -> list[type[Runtime]]:
    return list(dict.fromkeys(discover().values()))


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise UserInputError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise UserInputError(
                f"--device cuda: CUDA is not available here (torch {torch.__version__}, {build}, "
                "no GPU visible); use --device cpu"
            )


def runtime_class(name: str | None, device: str) -> type[Runtime]:
    """The registered runtime class ``name`` for ``device`` (``None``: the device's default); no device check."""
    if device not in DEVICES:
        raise UserInputError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    name = name or DEFAULT_RUNTIME[device]
    runtimes = discover()
    cls = runtimes.get(RuntimeKey(name, device))
    if cls is None:
        if name not in runtime_names():
            raise unknown_runtime(name)
        runs_on = ", ".join(k.device for k in runtimes if k.name == name)
        raise UserInputError(f"runtime {name!r} does not run on {device!r} (it runs on {runs_on})")
    if not cls.installed():
        missing = ", ".join(m for m in cls.requires if importlib.util.find_spec(m) is None)
        raise UserInputError(f"runtime {name!r} needs {missing}, which is not installed; {cls.install_hint}")
    return cls


def reference_session(model: str | Path | bytes, threads: int = 0) -> Any:
    """An ONNX model (a path or serialized ONNX) run by ONNX Runtime on the CPU, for reference outputs: parity
    checks of exports and of other runtimes, accuracy of ONNX files. ``threads`` 0: every core. Calling the
    result with an input array (and further named inputs) returns every output
    (``convbench.runtimes.onnxruntime.ReferenceSession``)."""
    from convbench.runtimes.onnxruntime import reference_session as build

    return build(model, threads)


__all__ = [
    "DEVICES",
    "NoOptions",
    "PreparedModel",
    "RunSettings",
    "Runtime",
    "RuntimeKey",
    "check_device",
    "discover",
    "reference_session",
    "register_runtime",
    "runtime_class",
    "runtime_names",
]
