"""PyTorch eager on the CPU under ``torch.inference_mode``: how the CNN-MoD paper timed its CPU numbers."""

from __future__ import annotations

import time

import torch
from torch import nn

from convbench.errors import UserInputError
from convbench.models.registry import DEFAULT_SEED, create_model, get_entry
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions


def build_module_and_input(model: str, options: RuntimeOptions) -> tuple[nn.Module, torch.Tensor, float]:
    """The model (eval mode, seeded) and a seeded random input batch; also the seconds building took."""
    entry = get_entry(model)
    channels, height, width = entry.input_size
    if options.resolution is not None:
        height = width = options.resolution
    start = time.perf_counter()
    module = create_model(model, **options.overrides)
    seconds = time.perf_counter() - start
    generator = torch.Generator().manual_seed(DEFAULT_SEED)
    x = torch.randn(options.batch_size, channels, height, width, generator=generator)
    if options.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return module, x, seconds


class TorchCPUModel(PreparedModel):
    def __init__(self, model: str, options: RuntimeOptions) -> None:
        if options.precision != "fp32":
            raise UserInputError(f"--precision {options.precision} is for --device cuda; the CPU runs fp32")
        self.options = options
        torch.set_num_threads(options.threads)
        self.module, self.input, self.setup_seconds = build_module_and_input(model, options)
        if options.compile:
            self.module = torch.compile(self.module)

    def timed_run(self) -> float:
        module, x = self.module, self.input
        with torch.inference_mode():
            start = time.perf_counter()
            module(x)
            return time.perf_counter() - start

    def settings(self) -> dict[str, object]:
        return {
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "precision": "fp32",
            "channels_last": self.options.channels_last,
            "compile": self.options.compile,
        }


class TorchCPU(Runtime):
    name = "torch"
    devices = ("cpu",)

    def prepare(self, model: str, options: RuntimeOptions) -> PreparedModel:
        return TorchCPUModel(model, options)
