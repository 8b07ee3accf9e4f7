"""The interface every runtime implements, so the measuring logic never knows which one it drives.

A runtime turns a registered model into a ``PreparedModel``: something that runs one inference on a fixed
input and returns how long that inference took, measured the way that runtime needs (a host clock around a
synchronous call on the CPU, CUDA events on a GPU).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class RuntimeOptions:
    """Settings shared by all runtimes; a runtime records the ones it applies."""

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    resolution: int | None = None
    exporter: str = "dynamo"
    overrides: dict[str, object] = field(default_factory=dict)
    # PyTorch runtimes
    precision: str = "fp32"  # fp32, or fp16 / bf16 autocast (CUDA)
    channels_last: bool = False
    compile: bool = False  # torch.compile
    # CUDA only
    tf32: bool = False  # off by default so that fp32 means fp32
    cudnn_benchmark: bool = True
    cuda_graphs: bool = False


class PreparedModel(ABC):
    """One model, loaded and ready to run on a fixed input."""

    #: seconds spent creating the session / loading the model, measured by the runtime.
    setup_seconds: float = 0.0

    @abstractmethod
    def timed_run(self) -> float:
        """Run one inference and return its duration in seconds."""

    def settings(self) -> dict[str, object]:
        """Runtime-specific settings for the result row (threads, providers, flags)."""
        return {}

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources."""


class Runtime(ABC):
    """A way to run models: ONNX Runtime on the CPU, PyTorch eager on the CPU, ..."""

    name: str
    devices: tuple[str, ...]

    @abstractmethod
    def prepare(self, model: str, options: RuntimeOptions) -> PreparedModel:
        """Build or load ``model`` and return it ready to be timed."""
