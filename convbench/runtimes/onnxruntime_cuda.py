"""ONNX Runtime on an NVIDIA GPU through its CUDA execution provider, from the same verified ONNX export the CPU
runtime loads.

Install. The CUDA provider ships only in the ``onnxruntime-gpu`` distribution, which installs the same
``onnxruntime`` module as the CPU-only ``onnxruntime`` distribution. With both installed, one build's files
overwrite the other's and ``import onnxruntime`` typically offers the CPU provider alone; uninstalling either
then removes files the other needs. So the GPU build goes in *in place of* the CPU one:
``pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu`` (the ``ort-gpu`` extra names the
package; it cannot remove the CPU build that convbench itself depends on). The CUDA and cuDNN libraries come
from a torch build for the same CUDA major version (imported first, as ONNX Runtime's ``preload_dlls``
documentation describes), else from ``onnxruntime.preload_dlls()``, which looks in the ``nvidia-*`` wheels.

Refusing a CPU fallback. Asked for a provider it cannot load, ONNX Runtime logs the loader's error and runs the
model on the CPU provider instead, which would be timed and reported as a GPU result. So: ``check`` refuses, before
anything is exported, an ONNX Runtime whose ``get_available_providers()`` lacks the provider (naming the
installed distributions, and the both-installed case); the session is created with the Python-level
fallback disabled, with the native stderr captured, and refused unless ``session.get_providers()`` contains the
provider, in one line that names the library the loader could not open (``libcudnn.so.9``,
``libnvinfer.so.10``, ...). Warnings ONNX Runtime logs while creating the session (nodes placed on the CPU, memory
copies inserted) are kept in the row's ``ort_warnings``.

Timing. The input is copied to the GPU once and bound with IO binding; outputs are preallocated on the GPU and
bound too, so no timed run copies anything between host and device. Each timed call is
``run_with_iobinding`` then ``synchronize_outputs``, timed by the host clock: ONNX Runtime runs its kernels on
its own CUDA stream, so CUDA events recorded on another stream would not bracket them, and the call returns
only once the GPU is done. The host's launch overhead is in the time, as it is in a deployment that calls
ONNX Runtime once per batch.

CUDA graphs. ``--ort-cuda-graph`` sets the provider's ``enable_cuda_graph``: ONNX Runtime captures the whole
graph on an early run and replays it afterwards. It needs every node on the GPU and fixed input and output
addresses (hence the preallocated outputs); a model with CPU nodes is refused by ONNX Runtime itself when the
session is created. The capture runs happen during setup (``setup_capture_ms``), so the measured runs replay.

Precision. fp32 only, and fp32 means IEEE fp32: the provider's ``use_tf32`` (on by default in ONNX Runtime) is
turned off unless ``--ort-tf32``, as the torch runtime's ``--tf32``. ONNX Runtime runs a graph in the types the
graph was exported in, so fp16 would need a second, converted export with its own parity check; that is not
offered here. ``onnxruntime-trt --precision fp16`` lets TensorRT pick fp16 kernels instead.

Not measured: the GPU memory peak (ONNX Runtime's CUDA allocator has no Python API for its statistics).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.options import one_of, option
from convbench.runtimes.base import PreparedModel, RunSettings, Runtime, SetupPhases, register_runtime
from convbench.runtimes.onnxruntime import OPTIMIZATION_LEVELS

if TYPE_CHECKING:
    import onnxruntime as ort

    from convbench.export import ExportResult
    from convbench.models.spec import ResolvedModel

CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
#: distributions that install the ``onnxruntime`` module; only the GPU one has the CUDA and TensorRT providers.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-training",
)
GPU_DISTRIBUTION = "onnxruntime-gpu"
INSTALL_GPU_BUILD = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
#: cuDNN search modes of the CUDA provider (``cudnn_conv_algo_search``); exhaustive is its default.
CONV_ALGO_SEARCH = {"exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"}
#: runs made during setup when a CUDA graph is requested: ONNX Runtime captures after its own warm-up runs.
GRAPH_WARMUP_CALLS = 3
#: numpy dtypes of the ONNX tensor types this runtime can feed and preallocate.
TENSOR_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


@dataclass(frozen=True)
class OrtCudaOptions:
    """ONNX Runtime CUDA provider options that change GPU latency (all recorded in every row)."""

    ort_optimization: str = option(
        "all",
        "ONNX Runtime graph optimisation level: all, extended, basic or disabled (onnxruntime runtimes).",
        check=one_of(OPTIMIZATION_LEVELS),
    )
    ort_cuda_graph: bool = option(
        False,
        "Capture the whole graph as a CUDA graph during setup and replay it (onnxruntime-cuda: enable_cuda_graph; "
        "onnxruntime-trt: trt_cuda_graph_enable).",
    )
    ort_tf32: bool = option(
        False,
        "Allow TensorFloat-32 in fp32 convolutions and matrix products; off, fp32 means IEEE fp32 "
        "(use_tf32; onnxruntime-cuda).",
    )
    ort_cudnn_conv_algo: str = option(
        "exhaustive",
        "How the CUDA provider picks cuDNN convolution algorithms: exhaustive (time them all), heuristic or "
        "default (cudnn_conv_algo_search; onnxruntime-cuda).",
        check=one_of(CONV_ALGO_SEARCH),
    )
    ort_nhwc: bool = option(
        False,
        "Run convolutions in NHWC layout where the CUDA provider has NHWC kernels (prefer_nhwc; onnxruntime-cuda).",
    )


def cuda_provider_options(options: OrtCudaOptions, device_id: int = 0) -> dict[str, str]:
    """The CUDA provider's options for ``options``, as ONNX Runtime takes them (strings)."""
    return {
        "device_id": str(device_id),
        "use_tf32": "1" if options.ort_tf32 else "0",
        "cudnn_conv_algo_search": CONV_ALGO_SEARCH[options.ort_cudnn_conv_algo],
        "enable_cuda_graph": "1" if options.ort_cuda_graph else "0",
        "prefer_nhwc": "1" if options.ort_nhwc else "0",
    }


# What is installed -----------------------------------------------------------------------------------------


def installed_distributions() -> dict[str, str]:
    """Distribution name -> version of every installed distribution that provides the ``onnxruntime`` module."""
    found = {}
    for name in ORT_DISTRIBUTIONS:
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            continue
    return found


def ort_version() -> str:
    """``name version`` of the installed ONNX Runtime build(s), GPU build first; ``""`` where there is none."""
    dists = installed_distributions()
    names = sorted(dists, key=lambda n: (n != GPU_DISTRIBUTION, n))
    return ", ".join(f"{n} {dists[n]}" for n in names)


def ort_cuda_major() -> int | None:
    """The CUDA major version the installed ONNX Runtime was built for (``None``: a CPU build, or unknown)."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        return None
    text = str(getattr(info, "cuda_version", "") or "")
    match = re.match(r"(\d+)", text)
    return int(match.group(1)) if match else None


def provider_unavailable(runtime: str, provider: str, available: list[str], dists: dict[str, str]) -> str:
    """Why ``provider`` is missing from ONNX Runtime's available providers, and the command that fixes it."""
    offered = ", ".join(available) or "none"
    if "onnxruntime" in dists and GPU_DISTRIBUTION in dists:
        return (
            f"runtime {runtime} needs ONNX Runtime's {provider}, but both 'onnxruntime' {dists['onnxruntime']} "
            f"(CPU only) and 'onnxruntime-gpu' {dists[GPU_DISTRIBUTION]} are installed: they share one onnxruntime "
            f"module and the CPU build's files are the ones in place (providers: {offered}); remove both, then "
            "install the GPU build alone: pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    if GPU_DISTRIBUTION in dists:
        return (
            f"runtime {runtime} needs ONNX Runtime's {provider}, which 'onnxruntime-gpu' {dists[GPU_DISTRIBUTION]} "
            f"does not offer here (providers: {offered}); reinstall it: pip install --force-reinstall onnxruntime-gpu"
        )
    if "onnxruntime" in dists:
        return (
            f"runtime {runtime} needs ONNX Runtime's {provider}, which the installed 'onnxruntime' "
            f"{dists['onnxruntime']} (the CPU-only build) lacks; install the GPU build in its place: "
            f"{INSTALL_GPU_BUILD}"
        )
    builds = ", ".join(f"'{n}' {v}" for n, v in dists.items()) or "an ONNX Runtime of unknown origin"
    return (
        f"runtime {runtime} needs ONNX Runtime's {provider}, which {builds} lacks (providers: {offered}); "
        f"install the GPU build in its place: pip uninstall -y {' '.join(dists) or 'onnxruntime'} && "
        "pip install onnxruntime-gpu"
    )


def require_available(runtime: str, provider: str) -> None:
    """Refuse, in one line, an ONNX Runtime build without ``provider``."""
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    if provider not in available:
        raise UserInputError(provider_unavailable(runtime, provider, available, installed_distributions()))


# Loader errors ---------------------------------------------------------------------------------------------

_MISSING_LIBRARY = re.compile(r"(lib[\w+.-]*?\.so(?:\.\d+)*): cannot open shared object file")
_UNDEFINED = re.compile(r"undefined symbol: (\S+)")
_ORT_LOG_LINE = re.compile(r"\[([EW]):onnxruntime:[^\]]*\]\s*(.*)")


def missing_library(text: str) -> str | None:
    """The first shared library the dynamic loader could not open, from an error text or ONNX Runtime's log."""
    match = _MISSING_LIBRARY.search(text)
    return match.group(1) if match else None


def library_hint(library: str, cuda_major: int | None) -> str:
    """What installs ``library`` (a soname) for an ONNX Runtime built for CUDA ``cuda_major``."""
    cu = f"cu{cuda_major}" if cuda_major else "cuXX"
    cuda = f"CUDA {cuda_major}" if cuda_major else "the CUDA version of this ONNX Runtime"
    major = library.rsplit(".so.", 1)[-1] if ".so." in library else ""
    if library.startswith("libcuda.so"):
        return "the NVIDIA driver is not installed or not visible in this environment"
    if library.startswith("libcudnn"):
        return f"install cuDNN {major or '9'} for {cuda}: pip install nvidia-cudnn-{cu}"
    if library.startswith(("libnvinfer", "libnvonnxparser")):
        pin = f">={major},<{int(major) + 1}" if major.isdigit() else ""
        return f"install the TensorRT {major} libraries for {cuda}: pip install 'tensorrt-{cu}-libs{pin}'"
    if library.startswith(("libcudart", "libcublas", "libcurand", "libcufft", "libnvrtc")):
        return (
            f"install the {cuda} runtime libraries: a torch build for {cuda} brings them, "
            "or pip install 'onnxruntime-gpu[cuda,cudnn]'"
        )
    return "install the library, or add its directory to LD_LIBRARY_PATH"


def first_error(text: str) -> str:
    """The first error ONNX Runtime logged in ``text`` (one line), else its first non-empty line."""
    for line in text.splitlines():
        match = _ORT_LOG_LINE.search(line)
        if match and match.group(1) == "E":
            return match.group(2).strip()
    for line in text.splitlines():
        if "Warning: " in line:  # a Python warning ONNX Runtime's wrapper issued: its message, not its source path
            return line.split("Warning: ", 1)[1].strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def load_failure(runtime: str, provider: str, text: str, cuda_major: int | None) -> str:
    """One line: ``provider`` did not load, with the library the loader missed where ``text`` names one."""
    library = missing_library(text)
    if library:
        return (
            f"runtime {runtime}: ONNX Runtime could not load its {provider} ({library} not found) and would have "
            f"run the model on the CPU; {library_hint(library, cuda_major)}"
        )
    symbol = _UNDEFINED.search(text)
    if symbol:
        reason = f"undefined symbol {symbol.group(1)}: libraries of mismatched versions"
    else:
        reason = first_error(text)[:300] or "no reason logged"
    return (
        f"runtime {runtime}: ONNX Runtime could not load its {provider} ({reason}) and would have run the model on "
        "the CPU; refused"
    )


def warnings_of(text: str) -> str:
    """ONNX Runtime's warning lines in ``text``, deduplicated and joined with `` | `` for a result row."""
    found: list[str] = []
    for line in text.splitlines():
        match = _ORT_LOG_LINE.search(line)
        if match and match.group(1) == "W" and match.group(2).strip() not in found:
            found.append(match.group(2).strip())
    return " | ".join(found)[:1000]


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (ONNX Runtime's default logger) during the block;
    the list holds the text once the block is left, also when it raised."""
    captured: list[str] = []
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # Python's own writes in the block belong to the capture too
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


# Libraries and sessions ------------------------------------------------------------------------------------


def load_cuda_libraries() -> str:
    """Make the CUDA and cuDNN libraries loadable for ONNX Runtime's CUDA provider; says how.

    A torch built for the same CUDA major version has loaded them when imported (convbench imports torch anyway);
    otherwise ``onnxruntime.preload_dlls`` loads them from the ``nvidia-*`` wheels where they are installed.
    """
    torch_cuda = None
    try:
        import torch

        torch_cuda = torch.version.cuda
    except ImportError:
        pass
    import onnxruntime as ort

    ort_major = ort_cuda_major()
    if torch_cuda and ort_major and torch_cuda.split(".")[0] == str(ort_major):
        return f"torch (CUDA {torch_cuda})"
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return "system loader"
    # preload_dlls prints each library it cannot find; a missing one is reported by the session, in one line.
    with contextlib.redirect_stdout(io.StringIO()):
        preload(cuda=True, cudnn=True, msvc=False)
    return "onnxruntime.preload_dlls"


def open_session(
    path: str,
    session_options: ort.SessionOptions,
    providers: list[tuple[str, dict[str, str]]],
    runtime: str,
    required: str,
) -> tuple[ort.InferenceSession, str]:
    """An InferenceSession on ``providers`` that really uses ``required``, and the warnings ONNX Runtime logged.

    Anything else is a one-line refusal: an exception while creating the session that names a library the loader
    could not open, or a session created without ``required`` (ONNX Runtime's own fallback to the CPU).
    """
    import onnxruntime as ort

    cuda_major = ort_cuda_major()
    failure: Exception | None = None
    with native_stderr() as log:
        try:
            # enable_fallback=0: ONNX Runtime's Python wrapper would otherwise retry on the CPU provider alone.
            session = ort.InferenceSession(path, session_options, providers=providers, enable_fallback=0)
        except Exception as exc:
            failure = exc
    text = log[0] if log else ""
    if failure is not None:
        message = str(failure)
        if missing_library(message) or "Failed to load library" in message:
            raise UserInputError(load_failure(runtime, required, f"{message}\n{text}", cuda_major)) from None
        sys.stderr.write(text)  # not a loader problem: what ONNX Runtime logged belongs with the error
        raise failure
    loaded = list(session.get_providers())
    if required not in loaded:
        raise UserInputError(load_failure(runtime, required, text, cuda_major) + f" (loaded: {', '.join(loaded)})")
    return session, warnings_of(text)


def gpu_session_options(threads: int, optimization: str) -> ort.SessionOptions:
    """Session options of a GPU runtime: the graph optimisation level, ``threads`` for nodes left on the CPU
    (without spinning, so idle pool threads do not hold cores while the GPU works), and warnings logged."""
    import onnxruntime as ort

    session = ort.SessionOptions()
    session.intra_op_num_threads = threads
    session.inter_op_num_threads = 1
    session.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    session.log_severity_level = 2  # warnings: nodes placed on the CPU and inserted copies end up in the row
    session.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return session


def _tensor_dtype(onnx_type: str, what: str) -> str:
    dtype = TENSOR_TYPES.get(onnx_type)
    if dtype is None:
        raise UserInputError(f"{what} is {onnx_type}; the ONNX Runtime GPU runtimes feed float or float16 tensors")
    return dtype


class OrtDeviceModel(PreparedModel):
    """An ONNX model in an ONNX Runtime session on ``providers``, its input and outputs bound on the device.

    ``ort_device`` is where the bound tensors live (``"cuda"``; ``"cpu"`` exercises the same code on the CPU
    provider where no GPU is at hand).
    """

    def __init__(
        self,
        exported: ExportResult,
        settings: RunSettings,
        *,
        runtime: str,
        providers: list[tuple[str, dict[str, str]]],
        required: str,
        optimization: str,
        cuda_graph: bool,
        phases: SetupPhases,
        record: dict[str, object],
        ort_device: str = "cuda",
    ) -> None:
        import onnxruntime as ort

        from convbench.models.inputs import seeded_input

        self.exported = exported
        self.runtime = runtime
        self.required = required
        self.provider_option_keys = tuple(dict(providers).get(required, {}))
        self.threads = settings.threads
        self.cuda_graph = cuda_graph
        self.phases = phases
        self.record = dict(record)
        self.device_index = 0
        self.cold_run: float | None = None
        self.before: dict[str, float | None] = {}
        self.after: dict[str, float | None] = {}
        self.ort_device = ort_device
        self.session: Any = None
        self.binding: Any = None
        self._values: list[Any] = []
        with self.phases.phase("session"):
            options = gpu_session_options(settings.threads, optimization)
            self.session, self.warnings = open_session(str(exported.path), options, providers, runtime, required)
        try:
            with self.phases.phase("transfer"):
                first = self.session.get_inputs()[0]
                dtype = _tensor_dtype(first.type, f"input {first.name!r}")
                x = seeded_input(exported.input_shape, dtype)
                value = ort.OrtValue.ortvalue_from_numpy(x, ort_device, self.device_index)
                self._values.append(value)
                self.binding = self.session.io_binding()
                self.binding.bind_ortvalue_input(first.name, value)
                self._bind_outputs(cuda_graph)
                self.binding.synchronize_inputs()
            if cuda_graph:
                with self.phases.phase("capture"):
                    for _ in range(GRAPH_WARMUP_CALLS):
                        self.timed_run()
        except BaseException:
            self.close()
            raise

    def _bind_outputs(self, fixed_required: bool) -> None:
        import onnxruntime as ort

        for out in self.session.get_outputs():
            shape = list(out.shape or [])
            static = bool(shape) and all(isinstance(d, int) and d > 0 for d in shape)
            if static and out.type in TENSOR_TYPES:
                value = ort.OrtValue.ortvalue_from_shape_and_type(
                    shape, TENSOR_TYPES[out.type], self.ort_device, self.device_index
                )
                self._values.append(value)
                self.binding.bind_ortvalue_output(out.name, value)
            elif fixed_required:
                raise UserInputError(
                    f"--ort-cuda-graph needs outputs of fixed shape and float type; output {out.name!r} of "
                    f"{self.exported.path.name} is {out.type} {shape}"
                )
            else:
                # Symbolic dimensions: ONNX Runtime allocates the output on the device at each run.
                self.binding.bind_output(out.name, self.ort_device, self.device_index)

    def timed_run(self) -> float:
        session, binding = self.session, self.binding
        if session is None:
            raise RuntimeError("timed_run on a closed model")
        cold = self.cold_run is None
        start = time.perf_counter()
        try:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
        except Exception as exc:
            # cuDNN and cuBLAS load some of their libraries only at the first convolution or product.
            library = missing_library(str(exc))
            if library:
                raise UserInputError(
                    f"runtime {self.runtime}: the first run could not load {library}; "
                    f"{library_hint(library, ort_cuda_major())}"
                ) from None
            raise
        elapsed = time.perf_counter() - start
        if cold:
            self.cold_run = elapsed
        return elapsed

    def host_threads(self, threads: int) -> int:
        # One host thread launches every kernel; a replayed CUDA graph is one launch.
        return 0 if self.cuda_graph else 1

    def energy_counter(self) -> Any:
        from convbench.runtimes import gpu

        # The GPU's energy (NVML), not the host's RAPL counter that the CPU runtimes read.
        return gpu.nvml_energy_counter(self.device_index) if self.ort_device == "cuda" else super().energy_counter()

    def measurement_started(self) -> None:
        if self.ort_device == "cuda":
            from convbench.runtimes import gpu

            self.before = gpu.gpu_state(self.device_index)

    def measurement_finished(self) -> None:
        if self.ort_device == "cuda":
            from convbench.runtimes import gpu

            self.after = gpu.gpu_state(self.device_index)

    def effective_provider_options(self) -> str:
        """The required provider's options as the session reports them (what ONNX Runtime applied)."""
        try:
            applied = self.session.get_provider_options().get(self.required, {})
        except Exception:
            return ""
        keys = sorted(k for k in applied if k in self.provider_option_keys)
        return ";".join(f"{k}={applied[k]}" for k in keys)

    def settings(self) -> dict[str, object]:
        from convbench.runtimes import gpu

        row: dict[str, object] = dict(self.record)
        row.update(
            {
                "providers": ",".join(self.session.get_providers()) if self.session is not None else "",
                "provider_options_applied": self.effective_provider_options() if self.session is not None else "",
                "intra_op_threads": self.threads,
                "ort_warnings": self.warnings,
                "exporter": self.exported.exporter,
                "opset": self.exported.opset,
                "onnx_max_abs_diff": self.exported.max_abs_diff,
                "onnx_file_mb": self.exported.path.stat().st_size / 2**20,
                "cold_run_ms": self.cold_run * 1e3 if self.cold_run is not None else None,
            }
        )
        if self.ort_device == "cuda":
            row.update(gpu.gpu_environment(self.device_index))
            row.update({f"{k}_before": self.before.get(k) for k in gpu.STATE_FIELDS})
            row.update({f"{k}_after": self.after.get(k) for k in gpu.STATE_FIELDS})
        return row

    def close(self) -> None:
        self.binding = None
        self._values = []
        self.session = None


def gpu_name(device_index: int = 0) -> str:
    """The CUDA device's name as torch reports it; ``""`` without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device_index)
    except Exception:
        pass
    return ""


class OrtGpuRuntime(Runtime):
    """What the ONNX Runtime GPU runtimes share: the export, the provider checks, the version."""

    requires = ("onnxruntime",)
    install_hint = f"{INSTALL_GPU_BUILD} (the GPU build in place of the CPU one)"
    runs_onnx = True
    provider = CUDA_PROVIDER

    def check(self, settings: RunSettings, options: Any) -> None:
        require_available(self.name, self.provider)

    def prefetch(self, model: ResolvedModel, settings: RunSettings) -> None:
        from convbench.export import export_for_runtime

        export_for_runtime(model, settings)

    def version(self) -> str:
        return ort_version()

    def device_name(self, device: str) -> str:
        return gpu_name() if device == "cuda" else ""


@register_runtime
class OnnxRuntimeCUDA(OrtGpuRuntime):
    name = "onnxruntime-cuda"
    devices = ("cuda",)
    description = "ONNX Runtime, CUDA execution provider, IO binding on the GPU, from the verified ONNX export"
    options_type = OrtCudaOptions
    provider = CUDA_PROVIDER

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        from convbench.export import export_for_runtime

        # Trial workers prepare without the parent's check: refuse here too, before anything is built.
        self.check(settings, options)
        options = options or OrtCudaOptions()
        phases = SetupPhases()
        with phases.phase("export"):
            exported = export_for_runtime(model, settings)
        libraries = load_cuda_libraries()
        provider_options = cuda_provider_options(options)
        record = {
            "runtime": self.name,
            "precision": settings.precision,
            **asdict(options),
            "ort_build": ort_version(),
            "cuda_libraries_from": libraries,
            "providers_requested": f"{CUDA_PROVIDER},{CPU_PROVIDER}",
        }
        return OrtDeviceModel(
            exported,
            settings,
            runtime=self.name,
            providers=[(CUDA_PROVIDER, provider_options), (CPU_PROVIDER, {})],
            required=CUDA_PROVIDER,
            optimization=options.ort_optimization,
            cuda_graph=options.ort_cuda_graph,
            phases=phases,
            record=record,
        )
