"""PyTorch on a CUDA GPU, timed with CUDA events.

Timing. Each timed call is bracketed by two CUDA events recorded on the current stream; the end event is
synchronised before its elapsed time is read, so the time is the GPU's, and the host's launch overhead counts
only as far as it keeps the GPU waiting (as in a real single-stream deployment). The measuring loop's warm-up
covers cuDNN autotuning (``cudnn.benchmark``), lazy initialisation and clock ramp-up.

Precision. ``fp32`` is IEEE fp32: TF32 is off unless ``--tf32`` (set through the ``fp32_precision`` API of
torch 2.9 and later; the setting read back is what the row records). ``fp16`` and ``bf16`` convert the model
and the input once, before timing: a real half-precision model. ``amp-fp16`` and ``amp-bf16`` run the fp32
model under ``torch.autocast``: autocast keeps its casts of the weights only inside one autocast context (see
"Automatic Mixed Precision package - torch.amp", ``cache_enabled``), so every call, and every replay of a
captured graph, casts all weights again. That is what an autocast deployment pays; the amp modes measure it,
the cast modes do not. bf16 and amp-bf16 are refused on GPUs without native bfloat16 (before compute
capability 8.0), where torch would emulate it or fail at the first run.

CUDA graphs. ``--cuda-graphs`` captures one forward pass after warm-up calls on a side stream (as "CUDA
Graphs" in the PyTorch CUDA semantics notes describes), and each timed call replays it. With ``--compile`` as
well, nothing is captured by hand: the model is compiled with ``torch.compile(mode="reduce-overhead")``, whose
CUDA Graph Trees record and replay the compiled kernels themselves. A manual capture of a compiled module
would replay whatever kernels the capture call happened to run, bypassing the guards that decide which
compiled code applies; reduce-overhead is torch's supported way to combine the two ("CUDAGraph Trees" in
the torch.compiler documentation). It copies the input batch into the graph's static input buffer on every
call (one device-to-device copy, inside the timed region), and where Inductor cannot use graphs it runs
without them: the row's ``cudagraph_skips`` says how often that happened.

Setup and first run. Setup is timed per phase (``setup_build_ms``, ``setup_transfer_ms``,
``setup_compile_ms``, ``setup_capture_ms``). ``--compile`` runs the model once inside the compile phase, so
that phase holds the real compilation time; ``--cuda-graphs`` runs its warm-up calls and the capture inside
the capture phase. So with graphs, ``first_run_ms`` is the first replay of an already captured graph, not a
cold start; the cold start, the wall-clock time of the very first forward pass this model ran on the GPU
(lazy initialisation, cuDNN autotuning, compilation included), is ``cold_run_ms`` in every row, graphs or not.

Memory and GPU state. Memory is this model's own, although every model of a trial is resident while the others
run: ``cuda_model_mb`` is what its setup allocated (weights, input, a captured graph's pool),
``cuda_inference_mb`` the most its inference allocated on top of what was resident (activations, workspaces),
measured over its own warm-up (the allocator's peak is reset when that starts and read when it ends; only this
model runs in between, and its measured runs repeat the same inference), and ``cuda_peak_allocated_mb`` their
sum. Workspaces cuBLAS and cuDNN keep for the whole process count for the model that first needed them.
``cuda_peak_reserved_mb`` is the allocator's reserved peak over the same warm-up, which cannot be split by
model: it holds every resident model's cache. Clocks, temperature, power, NVML's clock throttle reasons and
the number of other processes on the GPU are sampled after the model's warm-up, when the GPU runs at its
working clocks, and after its last measured run (``*_before`` / ``*_after``), through
``convbench.runtimes.gpu``, with the GPU's name, UUID, CUDA, cuDNN and driver.

Clean-up. ``close`` releases the graph, its static output, the module and the input, in that order, then
synchronises and empties the caching allocator, so one model's memory (a graph's private pool included) is
back before the next model or batch size is prepared; a model whose setup fails (out of memory) is closed
before the error propagates. When the last compiled model closes, ``torch.compiler.reset()`` drops the
compile caches and the Graph Trees pool, so the next trial compiles afresh. Backend flags (TF32, cuDNN
benchmark) are process-wide and are left as set.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.options import option
from convbench.runtimes.base import (
    Gemm,
    OperatorProfile,
    PreparedModel,
    RunSettings,
    Runtime,
    SetupPhases,
    register_runtime,
)
from convbench.runtimes.torch_cpu import (
    TORCH_DTYPES,
    TorchOptions,
    build_module_and_input,
    profile_torch,
    seeded_operands,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from convbench.models.spec import ResolvedModel

#: precision -> (dtype of the weights and input, dtype autocast computes in or None)
PRECISIONS: dict[str, tuple[str, str | None]] = {
    "fp32": ("float32", None),
    "fp16": ("float16", None),
    "bf16": ("bfloat16", None),
    "amp-fp16": ("float32", "float16"),
    "amp-bf16": ("float32", "bfloat16"),
}
BF16_PRECISIONS = ("bf16", "amp-bf16")
#: per-model CUDA memory columns (MiB), see the module docstring.
MEMORY_FIELDS = ("cuda_model_mb", "cuda_inference_mb", "cuda_peak_allocated_mb", "cuda_peak_reserved_mb")
#: eager calls before a manual capture: cuDNN autotuning and lazy initialisation must not be captured.
GRAPH_WARMUP_CALLS = 3


@dataclass(frozen=True)
class TorchCudaOptions(TorchOptions):
    """Options of the PyTorch CUDA runtime (channels_last and compile come from ``TorchOptions``)."""

    tf32: bool = option(
        False,
        "Allow TensorFloat-32 in fp32 convolutions and matrix products; off, fp32 means IEEE fp32 (torch, cuda).",
    )
    cudnn_benchmark: bool = option(
        True,
        "Let cuDNN time its algorithms for each input shape and keep the fastest (torch, cuda).",
        flags=("--cudnn-benchmark/--no-cudnn-benchmark",),
    )
    cuda_graphs: bool = option(
        False,
        "Replay the forward pass as a CUDA graph (captured after warm-up); with --compile, "
        'torch.compile(mode="reduce-overhead") records the graphs instead of a manual capture (torch, cuda).',
    )


# Backend flags ------------------------------------------------------------------------------------------


def effective_fp32_precision() -> dict[str, str]:
    """What fp32 convolutions and matrix products run in now: ``"tf32"`` or ``"ieee"`` for each.

    torch resolves an op's ``"none"`` through its backend and then the generic setting before returning it;
    whatever is still ``"none"`` (or anything but ``"tf32"``) runs in full fp32 on CUDA.
    """
    import torch

    def resolved(value: str) -> str:
        return "tf32" if value == "tf32" else "ieee"

    return {
        "matmul_fp32_precision": resolved(torch.backends.cuda.matmul.fp32_precision),
        "conv_fp32_precision": resolved(torch.backends.cudnn.conv.fp32_precision),
    }


def apply_backend_flags(tf32: bool, cudnn_benchmark: bool) -> dict[str, Any]:
    """Set TF32 and cuDNN autotuning for every CUDA model of this process; the settings read back."""
    import torch

    precision = "tf32" if tf32 else "ieee"
    # set_float32_matmul_precision keeps torch's older matmul setting in step with the new one: Inductor still
    # reads it (torch.get_float32_matmul_precision), and torch raises when the two disagree.
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.fp32_precision = precision
    # torch's own default for cuDNN convolutions is "tf32": set explicitly, so fp32 means fp32.
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cudnn.benchmark = cudnn_benchmark
    flags: dict[str, Any] = effective_fp32_precision()
    flags["tf32"] = "tf32" in flags.values()
    flags["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    return flags


def place(
    module: nn.Module, x: torch.Tensor, device: str, precision: str, channels_last: bool
) -> tuple[nn.Module, torch.Tensor]:
    """``module`` and ``x`` on ``device`` in the dtype and memory format the precision and layout ask for."""
    import torch

    dtype = getattr(torch, PRECISIONS[precision][0])
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(device=device, dtype=dtype, memory_format=memory_format)
    x = x.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)
    return module, x


# Process-wide state ------------------------------------------------------------------------------------

# torch.compile's caches are process-wide: compiled code, guards that keep modules alive, and (reduce-overhead)
# one CUDA Graph Trees memory pool for all compiled functions. They can only be dropped once no compiled model
# is alive; dropping them then also makes the next trial compile afresh instead of hitting a cache.
_live_compiled = 0


# One warm-up and capture stream per device for the whole process: torch allocates a cuBLAS workspace for every
# stream it sees and keeps it, so a new stream per capture would leave a workspace behind for every model.
_side_streams: dict[int, Any] = {}


def _side_stream(device_index: int) -> Any:
    import torch

    if device_index not in _side_streams:
        _side_streams[device_index] = torch.cuda.Stream(device_index)
    return _side_streams[device_index]


def _acquire_compiled() -> None:
    global _live_compiled
    _live_compiled += 1


def _release_compiled() -> None:
    global _live_compiled
    _live_compiled = max(_live_compiled - 1, 0)
    if _live_compiled == 0:
        import torch

        torch.compiler.reset()


# The prepared model -------------------------------------------------------------------------------------


class TorchCUDAModel(PreparedModel):
    def __init__(self, model: ResolvedModel, settings: RunSettings, options: TorchCudaOptions) -> None:
        self.options = options
        self.precision = settings.precision
        self.phases = SetupPhases()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_output: Any = None
        self.module: Any = None
        self.input: torch.Tensor | None = None
        self.call: Callable[[], Any] | None = None
        self.start_event: Any = None
        self.end_event: Any = None
        self.device_index = 0
        self.cold_run: float | None = None
        self.before: dict[str, float | None] = {}
        self.after: dict[str, float | None] = {}
        self.peak: dict[str, float] = {}
        self.model_bytes: int | None = None  # what setup allocated on the GPU
        self._allocated_at_start = 0  # on the GPU when this model's warm-up began
        self.cudagraph_skips: int | None = None
        self._compiled = False
        self._closed = False
        try:
            self._setup(model, settings, options)
        except BaseException:
            # The caller never gets this object, so it cannot close it: release what was placed on the GPU
            # before the error (typically out of memory) propagates.
            self.close()
            raise

    def _setup(self, model: ResolvedModel, settings: RunSettings, options: TorchCudaOptions) -> None:
        import torch

        self.flags = apply_backend_flags(options.tf32, options.cudnn_benchmark)
        module, x = build_module_and_input(model, settings, self.phases)
        allocated_before = torch.cuda.memory_allocated()
        with self.phases.phase("transfer"):
            self.module, self.input = place(module, x, "cuda", settings.precision, options.channels_last)
            del module, x
            torch.cuda.synchronize()
        self.device_index = self.input.device.index or 0
        self.start_event = torch.cuda.Event(enable_timing=True)
        self.end_event = torch.cuda.Event(enable_timing=True)
        # inference_mode where nothing is captured; no_grad where graphs are, as capture rejects inference tensors
        self._grad_mode = torch.no_grad if options.cuda_graphs else torch.inference_mode
        if options.compile:
            skips_before = _cudagraph_skips()
            with self.phases.phase("compile"):
                mode = "reduce-overhead" if options.cuda_graphs else "default"
                self.module = torch.compile(self.module, mode=mode)
                _acquire_compiled()
                self._compiled = True
                self._cold_forward()  # compilation happens in the first call: time it here, as setup
        if options.cuda_graphs:
            with self.phases.phase("capture"):
                if options.compile:
                    # Graph Trees warm up on a function's first call, record on the next, replay after that.
                    for _ in range(GRAPH_WARMUP_CALLS):
                        self._forward()
                    torch.cuda.synchronize()
                    skips = _cudagraph_skips()
                    self.cudagraph_skips = None if skips is None or skips_before is None else skips - skips_before
                else:
                    self._capture()
        self.call = self.graph.replay if self.graph is not None else self._forward
        self.model_bytes = torch.cuda.memory_allocated(self.device_index) - allocated_before

    def _forward(self) -> Any:
        import torch

        autocast = PRECISIONS[self.precision][1]
        with self._grad_mode():
            if autocast is None:
                return self.module(self.input)
            with torch.autocast("cuda", dtype=getattr(torch, autocast)):
                return self.module(self.input)

    def _cold_forward(self) -> None:
        """The model's first forward pass, timed wall-clock to its end on the GPU."""
        import torch

        start = time.perf_counter()
        self._forward()
        torch.cuda.synchronize()
        self.cold_run = time.perf_counter() - start

    def _capture(self) -> None:
        """Capture one forward pass; replaying it launches every kernel with one call."""
        import torch

        side = _side_stream(self.device_index)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph, as capture requires
            for _ in range(GRAPH_WARMUP_CALLS):
                if self.cold_run is None:
                    self._cold_forward()
                else:
                    self._forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.graph = graph  # before capturing, so that close() releases a half-built graph too
        # Captured on the warm-up stream: the cuBLAS workspace torch keeps per stream then exists before the
        # capture, instead of being allocated inside this graph's private pool and outliving it.
        with torch.cuda.graph(graph, stream=side):
            self.static_output = self._forward()
        torch.cuda.synchronize()

    def timed_run(self) -> float:
        call, start, end = self.call, self.start_event, self.end_event
        if call is None:
            raise RuntimeError("timed_run on a closed model")
        cold = self.cold_run is None
        wall = time.perf_counter() if cold else 0.0
        start.record()
        call()
        end.record()
        end.synchronize()
        if cold:
            self.cold_run = time.perf_counter() - wall
        return start.elapsed_time(end) / 1e3

    def energy_counter(self) -> Any:
        from convbench.runtimes import gpu

        return gpu.nvml_energy_counter(self.device_index)  # the GPU's energy, not the host's RAPL

    def measurement_started(self) -> None:
        import torch

        # Only this model runs from here to warmup_finished, so the allocator's peak in between is its own.
        torch.cuda.reset_peak_memory_stats(self.device_index)
        self._allocated_at_start = torch.cuda.memory_allocated(self.device_index)

    def warmup_finished(self) -> None:
        import torch

        from convbench.runtimes import gpu

        inference = max(torch.cuda.max_memory_allocated(self.device_index) - self._allocated_at_start, 0)
        model = self.model_bytes or 0
        self.peak = {
            "cuda_model_mb": model / 2**20,
            "cuda_inference_mb": inference / 2**20,
            "cuda_peak_allocated_mb": (model + inference) / 2**20,
            "cuda_peak_reserved_mb": torch.cuda.max_memory_reserved(self.device_index) / 2**20,
        }
        self.before = gpu.gpu_state(self.device_index)  # after warm-up: the clocks the measured runs start at

    def measurement_finished(self) -> None:
        from convbench.runtimes import gpu

        self.after = gpu.gpu_state(self.device_index)

    def host_threads(self, threads: int) -> int:
        # Eager runs are bound by the host thread that launches every kernel, so another process taking that
        # core shows in the timings; a replayed CUDA graph is one launch, with nothing on the host to disturb.
        return 0 if self.options.cuda_graphs else 1

    def settings(self) -> dict[str, object]:
        import torch

        from convbench.runtimes import gpu

        o = self.options
        weights, autocast = PRECISIONS[self.precision]
        capture = ("torch.compile reduce-overhead" if o.compile else "manual") if o.cuda_graphs else ""
        return {
            "precision": self.precision,
            "weights_dtype": weights,
            "autocast_dtype": autocast or "",
            "channels_last": o.channels_last,
            "compile": o.compile,
            "compile_mode": ("reduce-overhead" if o.cuda_graphs else "default") if o.compile else "",
            "cuda_graphs": o.cuda_graphs,
            "cuda_graph_capture": capture,
            "cudagraph_skips": self.cudagraph_skips,
            **self.flags,
            "intra_op_threads": torch.get_num_threads(),
            "cold_run_ms": self.cold_run * 1e3 if self.cold_run is not None else None,
            **{k: self.peak.get(k) for k in MEMORY_FIELDS},
            **gpu.gpu_environment(self.device_index),
            **{f"{k}_before": self.before.get(k) for k in gpu.STATE_FIELDS},
            **{f"{k}_after": self.after.get(k) for k in gpu.STATE_FIELDS},
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.call = None
        graph, self.graph = self.graph, None
        if graph is not None:
            graph.reset()  # the captured kernels and the graph's hold on its private memory pool
        self.static_output = None
        self.module = None
        self.input = None
        self.start_event = self.end_event = None
        if self._compiled:
            self._compiled = False
            _release_compiled()
        gc.collect()  # modules (a compiled one above all) sit in reference cycles that hold GPU tensors
        import torch

        if torch.cuda.is_initialized():
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except RuntimeError:  # a sticky CUDA error: the caller reports the original failure, not this one
                pass


def _cudagraph_skips() -> int | None:
    """How often Inductor declined to use CUDA graphs so far in this process (a private counter)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["inductor"]["cudagraph_skips"])
    except Exception:
        return None


def _gpu_label() -> str:
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible here"
    try:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return f"this GPU ({props.name}, compute capability {props.major}.{props.minor}) has none"
    except Exception:
        return "this GPU has none"


@register_runtime
class TorchCUDA(Runtime):
    name = "torch"
    devices = ("cuda",)
    description = "PyTorch eager, torch.compile or CUDA graphs on an NVIDIA GPU, timed with CUDA events"
    options_type = TorchCudaOptions
    requires = ("torch",)
    install_hint = "pip install torch (a CUDA build)"
    precisions = tuple(PRECISIONS)

    def check(self, settings: RunSettings, options: Any) -> None:
        import torch

        if settings.precision not in PRECISIONS:
            raise UserInputError(
                f"--precision {settings.precision} is not supported by runtime torch on cuda; "
                f"it supports {', '.join(PRECISIONS)}"
            )
        # Without native support torch emulates bfloat16 (slowly) or fails at the first run; neither is a
        # measurement of bfloat16 inference.
        if settings.precision in BF16_PRECISIONS and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise UserInputError(
                f"--precision {settings.precision} needs native bfloat16 (compute capability 8.0 or later); "
                f"{_gpu_label()}. Use fp16 or amp-fp16."
            )
        if getattr(options, "tf32", False) and not torch.cuda.is_tf32_supported():
            raise UserInputError(f"--tf32 needs TensorFloat-32 (compute capability 8.0 or later); {_gpu_label()}")

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        # Trial workers prepare without the parent's check: refuse here too, before anything is built.
        self.check(settings, options)
        return TorchCUDAModel(model, settings, options)

    def device_name(self, device: str) -> str:
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else ""

    def peak_precisions(self, device: str) -> tuple[str, ...]:
        import torch

        if not torch.cuda.is_available():
            return ()
        found = ["fp32"]
        if torch.cuda.is_tf32_supported():
            found.append("tf32")
        found.append("fp16")
        if torch.cuda.is_bf16_supported(including_emulation=False):
            found.append("bf16")
        return tuple(found)

    def peak_precision(self, device: str, precision: str, options: Any) -> str | None:
        return peak_precision_of(precision, getattr(options, "tf32", False))

    def peak_gemm(self, n: int, threads: int, device: str, precision: str) -> Gemm:
        """A GEMM on the tensor cores where ``precision`` is tf32, fp16 or bf16; fp32 is IEEE fp32 (TF32 off)."""
        import torch

        matmul = torch.backends.cuda.matmul
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"
        try:
            a, b = seeded_operands(n, "cuda", getattr(torch, TORCH_DTYPES[precision]))
            out = torch.empty_like(a)
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        except BaseException:
            matmul.fp32_precision = previous
            raise

        def run() -> float:
            begin.record()
            torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1e3

        def restore() -> None:
            matmul.fp32_precision = previous

        return Gemm(run, restore)

    operator_profiler = "torch.profiler, CUDA kernel time"

    def operator_profile(self, model: ResolvedModel, settings: RunSettings, options: Any, runs: int) -> OperatorProfile:
        prepared = self.prepare(model, settings, options)
        try:
            return profile_torch(prepared.timed_run, runs, cuda=True, profiler=self.operator_profiler)
        finally:
            prepared.close()


def peak_precision_of(precision: str, tf32: bool) -> str | None:
    """The GEMM precision a CUDA row computes in: fp32 is IEEE fp32 unless ``--tf32``; the cast and autocast
    modes run their matrix products and convolutions on the tensor cores in their half type."""
    if precision == "fp32":
        return "tf32" if tf32 else "fp32"
    autocast = PRECISIONS.get(precision, (None, None))[1]
    half = autocast or PRECISIONS.get(precision, (None, None))[0]
    return {"float16": "fp16", "bfloat16": "bf16"}.get(half or "")
