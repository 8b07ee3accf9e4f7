"""PyTorch eager on the CPU under ``torch.inference_mode``: how the CNN-MoD paper timed its CPU numbers."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.options import option
from convbench.runtimes.base import (
    Gemm,
    OperatorProfile,
    OperatorTime,
    PreparedModel,
    RunSettings,
    Runtime,
    SetupPhases,
    register_runtime,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from convbench.models.spec import ResolvedModel


@dataclass(frozen=True)
class TorchOptions:
    """Options of every PyTorch runtime."""

    channels_last: bool = option(False, "channels-last memory format (torch).")
    compile: bool = option(False, "torch.compile the model (torch).")


def build_module_and_input(
    model: ResolvedModel, settings: RunSettings, phases: SetupPhases, channels_last: bool = False
) -> tuple[nn.Module, torch.Tensor]:
    """The model (eval mode, seeded, calibrated) and a seeded random input batch, timed as the "build" phase."""
    import torch

    from convbench.models.inputs import seeded_tensor

    with phases.phase("build"):
        module = model.build(resolution=settings.input_shape[-1])
        x = seeded_tensor(settings.input_shape)
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

    def peak_precisions(self, device: str) -> tuple[str, ...]:
        return ("fp32", "bf16") if native_cpu_bf16() else ("fp32",)

    def peak_precision(self, device: str, precision: str, options: Any) -> str | None:
        return "fp32" if precision == "fp32" else None

    def peak_gemm(self, n: int, threads: int, device: str, precision: str) -> Gemm:
        import torch

        if precision not in self.peak_precisions(device):
            raise UserInputError(f"peak: torch on the CPU here runs {', '.join(self.peak_precisions(device))}")
        a, b = seeded_operands(n, "cpu", getattr(torch, TORCH_DTYPES[precision]))
        out = torch.empty_like(a)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)

        def run() -> float:
            with torch.inference_mode():
                start = time.perf_counter()
                torch.matmul(a, b, out=out)
                return time.perf_counter() - start

        return Gemm(run, lambda: torch.set_num_threads(previous))

    operator_profiler = "torch.profiler, CPU time"

    def operator_profile(self, model: ResolvedModel, settings: RunSettings, options: Any, runs: int) -> OperatorProfile:
        prepared = self.prepare(model, settings, options)
        try:
            return profile_torch(prepared.timed_run, runs, cuda=False, profiler=self.operator_profiler)
        finally:
            prepared.close()


#: peak precision -> torch dtype name
TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively in torch's oneDNN kernels (AVX-512 BF16 or AMX); elsewhere
    torch emulates it, which measures no ceiling."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or a torch that moved the query
        return False


def seeded_operands(n: int, device: str, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded n x n matrices of ``dtype`` on ``device``: the operands of a peak GEMM."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator) for _ in range(2))
    return a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)


# Operator profiles (torch.profiler) -------------------------------------------------------------------------

#: the annotation each profiled forward pass runs under; the operators it calls directly are "top-level".
FORWARD_ANNOTATION = "convbench::forward"


def profile_torch(call: Callable[[], Any], runs: int, cuda: bool, profiler: str) -> OperatorProfile:
    """Profile ``runs`` calls of ``call`` (one forward pass each) with torch.profiler; see ``summarize_events``."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    if runs < 1:
        raise UserInputError(f"profiling needs at least one run, got {runs}")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    call()  # lazy initialisation and autotuning stay out of the profile
    with profile(activities=activities) as prof:
        for _ in range(runs):
            with record_function(FORWARD_ANNOTATION):
                call()
        if cuda:
            torch.cuda.synchronize()
    return summarize_events(prof.events(), runs, cuda, profiler)


def _kind(event: Any) -> str:
    """``cpu_op``, ``user_annotation``, ``cuda_runtime``, ``kernel``, ``memcpy``/``memset`` or other kinds."""
    from torch.autograd import DeviceType

    kind = getattr(event, "activity_type", None)
    if isinstance(kind, str) and kind:
        return {"gpu_memcpy": "memcpy", "gpu_memset": "memset"}.get(kind, kind)
    if event.device_type != DeviceType.CPU:  # a torch without activity types: tell device events by name
        return (
            "memcpy" if event.name.startswith("Memcpy") else "memset" if event.name.startswith("Memset") else "kernel"
        )
    if event.is_user_annotation:
        return "user_annotation"
    return "cuda_runtime" if event.name.startswith("cuda") else "cpu_op"


def summarize_events(events: Iterable[Any], runs: int, cuda: bool, profiler: str) -> OperatorProfile:
    """Time and calls per top-level operator type (the operators the forward pass calls itself: ``aten::conv2d``,
    ``aten::topk``), from torch.profiler's events of ``runs`` forward passes.

    On the CPU the time is the operators' own CPU time (nested calls included). On a GPU it is the time of the
    kernels their nested calls launched (torch.profiler ties each kernel to the operator that launched it), and
    kernels no operator launched (a replayed CUDA graph) form one row of their own. Per forward pass: top-level
    operator calls, and on a GPU kernels launched.
    """
    calls: dict[str, int] = defaultdict(int)
    time_us: dict[str, float] = defaultdict(float)
    kernels: dict[str, int] = defaultdict(int)
    device_kernels, device_kernel_us = 0, 0.0
    for event in events:
        kind = _kind(event)
        if kind == "kernel":
            device_kernels += 1
            device_kernel_us += event.time_range.elapsed_us()
            continue
        if kind != "cpu_op":
            continue
        top = event
        while top.cpu_parent is not None and _kind(top.cpu_parent) == "cpu_op":
            top = top.cpu_parent
        if top is event:
            calls[event.name] += 1
            if not cuda:
                time_us[event.name] += event.cpu_time_total
        if cuda:
            launched = [k for k in event.kernels if not k.name.startswith(("Memcpy", "Memset"))]
            kernels[top.name] += len(launched)
            time_us[top.name] += sum(k.duration for k in launched)
    names = set(calls) | ({n for n, k in kernels.items() if k} if cuda else set())
    if cuda:
        names = {n for n in names if kernels.get(n)}
        unattributed = device_kernels - sum(kernels.values())
        if unattributed > 0:
            name = "(kernels no operator launched: CUDA graph replay)"
            calls[name], kernels[name] = 0, unattributed
            time_us[name] = max(device_kernel_us - sum(time_us[n] for n in names), 0.0)
            names.add(name)
    total = sum(time_us[n] for n in names)
    rows = [
        OperatorTime(
            op_type=n,
            ms_per_run=time_us[n] / runs / 1e3,
            share=time_us[n] / total if total else 0.0,
            calls=calls[n] / runs,
            kernels=kernels[n] / runs if cuda else None,
        )
        for n in names
    ]
    rows.sort(key=lambda r: (-r.ms_per_run, r.op_type))
    per_run = {"operator calls per forward pass": sum(calls.values()) / runs}
    if cuda:
        # Where the profiler lists no device events of its own, the kernels tied to operators are all there is.
        per_run["kernels per forward pass"] = max(device_kernels, sum(kernels.values())) / runs
    return OperatorProfile(profiler, rows, runs, per_run)
