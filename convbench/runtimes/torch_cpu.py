"""PyTorch eager on the CPU under ``torch.inference_mode``: how the CNN-MoD paper timed its CPU numbers."""

from __future__ import annotations

import time

import torch

from convbench.models.registry import DEFAULT_SEED, create_model, get_entry
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions


class TorchCPUModel(PreparedModel):
    def __init__(self, model: str, options: RuntimeOptions) -> None:
        entry = get_entry(model)
        channels, height, width = entry.input_size
        if options.resolution is not None:
            height = width = options.resolution
        self.threads = options.threads
        torch.set_num_threads(options.threads)
        start = time.perf_counter()
        self.module = create_model(model, **options.overrides)
        self.setup_seconds = time.perf_counter() - start
        generator = torch.Generator().manual_seed(DEFAULT_SEED)
        self.input = torch.randn(options.batch_size, channels, height, width, generator=generator)

    def timed_run(self) -> float:
        module, x = self.module, self.input
        with torch.inference_mode():
            start = time.perf_counter()
            module(x)
            return time.perf_counter() - start

    def settings(self) -> dict[str, object]:
        return {"intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads()}


class TorchCPU(Runtime):
    name = "torch"
    devices = ("cpu",)

    def prepare(self, model: str, options: RuntimeOptions) -> PreparedModel:
        return TorchCPUModel(model, options)
