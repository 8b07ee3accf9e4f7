"""PyTorch on a CUDA GPU, timed with CUDA events.

Each timed call is bracketed by two CUDA events recorded on the current stream; the end event is
synchronised before its elapsed time is read, so the time is the GPU's and the host's launch overhead is
included only as far as it delays the GPU (as in a real single-stream deployment). Warm-up (the measuring
loop's) covers cuDNN autotuning with ``cudnn.benchmark``, lazy initialisation, ``torch.compile`` and clock
ramp-up. TF32 is off by default so fp32 means fp32; every flag is recorded in the result row, with the GPU,
driver, CUDA and cuDNN versions and the clocks and temperature before and after the run.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import torch

from convbench.errors import UserInputError
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions
from convbench.runtimes.torch_cpu import build_module_and_input

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
GRAPH_WARMUP_CALLS = 3


def gpu_state() -> dict[str, object]:
    """Clocks, temperature and power from nvidia-smi (empty where it is not installed)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    fields = ["clocks.sm", "clocks.mem", "temperature.gpu", "power.draw"]
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={torch.cuda.current_device()}", f"--query-gpu={','.join(fields)}",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in out.split(",")]
    return dict(zip(["sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w"], values, strict=False))


def gpu_environment() -> dict[str, object]:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    driver = ""
    if shutil.which("nvidia-smi"):
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                text=True, timeout=10, check=True,
            ).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            driver = ""
    return {
        "gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "driver": driver,
    }


class TorchCUDAModel(PreparedModel):
    def __init__(self, model: str, options: RuntimeOptions) -> None:
        if options.precision not in PRECISIONS:
            raise UserInputError(f"unknown precision {options.precision!r}; choose from {', '.join(PRECISIONS)}")
        self.options = options
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
        torch.backends.cudnn.benchmark = options.cudnn_benchmark
        self.before = gpu_state()
        module, x, self.setup_seconds = build_module_and_input(model, options)
        memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.module = module.cuda().to(memory_format=memory_format)
        self.input = x.cuda().contiguous(memory_format=memory_format)
        if options.compile:
            self.module = torch.compile(self.module)
        self.call = self._capture_graph() if options.cuda_graphs else self._forward
        self.start_event = torch.cuda.Event(enable_timing=True)
        self.end_event = torch.cuda.Event(enable_timing=True)

    def _forward(self) -> torch.Tensor:
        dtype = PRECISIONS[self.options.precision]
        # no_grad rather than inference_mode: inference tensors cannot be used inside a CUDA graph capture
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
            return self.module(self.input)

    def _capture_graph(self) -> Callable[[], None]:
        """Capture one forward pass; replaying it launches every kernel with one call."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph, as capture requires
            for _ in range(GRAPH_WARMUP_CALLS):
                self._forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_output = self._forward()
        return graph.replay

    def timed_run(self) -> float:
        self.start_event.record()
        self.call()
        self.end_event.record()
        self.end_event.synchronize()
        return self.start_event.elapsed_time(self.end_event) / 1e3

    def settings(self) -> dict[str, object]:
        after = gpu_state()
        o = self.options
        return {
            "precision": o.precision, "channels_last": o.channels_last, "compile": o.compile, "tf32": o.tf32,
            "cudnn_benchmark": o.cudnn_benchmark, "cuda_graphs": o.cuda_graphs,
            "intra_op_threads": torch.get_num_threads(),
            **gpu_environment(),
            **{f"{k}_before": v for k, v in self.before.items()},
            **{f"{k}_after": v for k, v in after.items()},
        }

    def close(self) -> None:
        del self.module, self.input
        torch.cuda.empty_cache()


class TorchCUDA(Runtime):
    name = "torch"
    devices = ("cuda",)

    def prepare(self, model: str, options: RuntimeOptions) -> PreparedModel:
        return TorchCUDAModel(model, options)
