"""PyTorch eager on the CPU under ``torch.inference_mode``: how the CNN-MoD paper timed its CPU numbers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convbench.options import option
from convbench.runtimes.base import PreparedModel, RunSettings, Runtime, SetupPhases, register_runtime

if TYPE_CHECKING:
    import torch
    from torch import nn

    from convbench.models.spec import ResolvedModel


@dataclass(frozen=True)
class TorchOptions:
    """Options of every PyTorch runtime."""

    channels_last: bool = option(False, "channels-last memory format (torch).")
    compile: bool = option(False, "torch.compile the model (torch).")


def seeded_input(shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    from convbench.models.registry import DEFAULT_SEED

    return torch.randn(*shape, generator=torch.Generator().manual_seed(DEFAULT_SEED))


def build_module_and_input(
    model: ResolvedModel, settings: RunSettings, phases: SetupPhases, channels_last: bool = False
) -> tuple[nn.Module, torch.Tensor]:
    """The model (eval mode, seeded, calibrated) and a seeded random input batch, timed as the "build" phase."""
    import torch

    with phases.phase("build"):
        module = model.build(resolution=settings.input_shape[-1])
        x = seeded_input(settings.input_shape)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
    return module, x


class TorchCPUModel(PreparedModel):
    def __init__(self, model: ResolvedModel, settings: RunSettings, options: TorchOptions) -> None:
        import torch

        self.options = options
        torch.set_num_threads(settings.threads)
        self.phases = SetupPhases()
        self.module, self.input = build_module_and_input(model, settings, self.phases, options.channels_last)
        if options.compile:
            with self.phases.phase("compile"):  # lazy: most of the work happens in the first run
                self.module = torch.compile(self.module)

    def timed_run(self) -> float:
        import torch

        module, x = self.module, self.input
        with torch.inference_mode():
            start = time.perf_counter()
            module(x)
            return time.perf_counter() - start

    def settings(self) -> dict[str, object]:
        import torch

        return {
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "precision": "fp32",
            "channels_last": self.options.channels_last,
            "compile": self.options.compile,
        }

    def close(self) -> None:
        self.module = self.input = None


@register_runtime
class TorchCPU(Runtime):
    name = "torch"
    devices = ("cpu",)
    description = "PyTorch eager (or torch.compile) on the CPU"
    options_type = TorchOptions
    requires = ("torch",)
    install_hint = "pip install torch"

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        return TorchCPUModel(model, settings, options)
