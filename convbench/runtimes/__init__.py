"""Runtimes (backends) behind one interface; ``get_runtime`` picks one by name and device."""

from __future__ import annotations

import torch

from convbench.errors import UserInputError
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions

DEVICES = ("cpu", "cuda")
DEFAULT_RUNTIME = {"cpu": "onnxruntime", "cuda": "torch"}


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise UserInputError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UserInputError(f"--device cuda: CUDA is not available here (torch {torch.__version__}, {build}, "
                             "no GPU visible); use --device cpu")


def get_runtime(name: str | None, device: str) -> Runtime:
    """The runtime ``name`` for ``device`` (``None``: the device's default)."""
    check_device(device)
    name = name or DEFAULT_RUNTIME[device]
    if name == "onnxruntime":
        from convbench.runtimes.onnxruntime import OnnxRuntimeCPU

        runtime: Runtime = OnnxRuntimeCPU()
    elif name == "torch" and device == "cuda":
        from convbench.runtimes.torch_cuda import TorchCUDA

        runtime = TorchCUDA()
    elif name == "torch":
        from convbench.runtimes.torch_cpu import TorchCPU

        runtime = TorchCPU()
    else:
        raise UserInputError(f"unknown runtime {name!r}; choose from onnxruntime, torch")
    if device not in runtime.devices:
        runs_on = ", ".join(runtime.devices)
        raise UserInputError(f"runtime {name!r} does not run on {device!r} yet (it runs on {runs_on})")
    return runtime


__all__ = ["DEVICES", "PreparedModel", "Runtime", "RuntimeOptions", "check_device", "get_runtime"]
