"""TensorRT on an NVIDIA GPU through ONNX Runtime's TensorRT execution provider, from the verified ONNX export.

Why ONNX Runtime's provider rather than torch-tensorrt. Checked from PyPI for this project's Python 3.11 and
torch 2.14.1+cu130 (no GPU was at hand, so neither could be run):

- The TensorRT libraries are the same hurdle for both: ``tensorrt-cu13-libs`` (10.x and 11.x alike) is on PyPI
  only as a placeholder that downloads the real wheel from pypi.nvidia.com while installing, so it fails
  wherever that host is unreachable.
- torch-tensorrt 2.14.0 pins ``torch>=2.14,<2.15`` and ``tensorrt-cu13>=11.1,<11.2`` and ships a C++ extension
  built against one torch build. It matches today's torch, but every torch release breaks or downgrades it, and
  a torch of another build fails at ``import torch_tensorrt`` with an undefined symbol (the pytorch/TensorRT
  tracker's most frequent installation report). It would also compile the model through a second front end
  (``torch.export`` and its own converters) whose output convbench does not check.
- onnxruntime-gpu 1.31.1 (CUDA 13, the same major as torch here) is a self-contained wheel whose TensorRT
  provider links ``libnvinfer.so.10``, and it also carries the CUDA provider that ``onnxruntime-cuda`` uses:
  one install, one provider check, one IO-binding timing path, and the same ONNX file every other runtime runs,
  checked against PyTorch when exported. Its pitfalls (the TensorRT major version must be 10, while plain
  ``pip install tensorrt`` now gives 11; pip puts the libraries in site-packages, not on the loader path; the
  CPU ``onnxruntime`` next to the GPU build) are fixed or named in one line here, before anything is exported.

So this runtime uses ONNX Runtime's provider. The libraries of the ``tensorrt-cuXX-libs`` wheel (where it is
installed) are loaded from site-packages before the session is created; a TensorRT installed system-wide is
found by the loader as usual.

Precision. ``fp32`` builds the engine with TensorRT's default flags (TF32 allowed on GPUs that have it; ONNX
Runtime offers no switch for it). ``fp16`` sets ``trt_fp16_enable``: TensorRT may then pick fp16 kernels
per layer where they are faster, with fp32 inputs and outputs, which is what a TensorRT fp16 deployment does.

Engine cache. Building an engine takes seconds to minutes. With ``--trt-engine-cache`` (the default) engines and
TensorRT's timing cache go under convbench's cache directory, in a folder keyed by the ONNX file, the GPU, the
ONNX Runtime and TensorRT versions and the build settings, so only the first trial builds; the row says whether
the engine came from the cache (``trt_engine_cached``). ``--no-trt-engine-cache`` builds afresh in every trial,
so that build-to-build differences in the chosen kernels show in the spread between trials. Nodes TensorRT cannot
take run on the CUDA provider, as ONNX Runtime's own TensorRT setup does.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import re
from dataclasses import asdict, dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.options import between, option
from convbench.runtimes.base import PreparedModel, RunSettings, SetupPhases, register_runtime
from convbench.runtimes.onnxruntime_cuda import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    TENSORRT_PROVIDER,
    OrtCudaOptions,
    OrtDeviceModel,
    OrtGpuRuntime,
    cuda_provider_options,
    gpu_name,
    library_hint,
    load_cuda_libraries,
    missing_library,
    ort_cuda_major,
    ort_version,
    require_available,
)

if TYPE_CHECKING:
    from convbench.export import ExportResult
    from convbench.models.spec import ResolvedModel

PRECISIONS = ("fp32", "fp16")
#: the TensorRT libraries ONNX Runtime's provider links (their sonames end in the TensorRT major version).
TENSORRT_LIBRARIES = ("libnvinfer", "libnvinfer_plugin", "libnvonnxparser")


@dataclass(frozen=True)
class OrtTensorRTOptions:
    """TensorRT provider options (all recorded in every row)."""

    ort_cuda_graph: bool = option(
        False,
        "Capture the whole graph as a CUDA graph during setup and replay it (onnxruntime-cuda: enable_cuda_graph; "
        "onnxruntime-trt: trt_cuda_graph_enable).",
    )
    trt_engine_cache: bool = option(
        True,
        "Keep TensorRT engines and timing caches in convbench's cache, so only the first trial builds "
        "(onnxruntime-trt).",
        flags=("--trt-engine-cache/--no-trt-engine-cache",),
    )
    trt_opt_level: int = option(
        3,
        "TensorRT builder optimisation level, 0-5: higher builds longer and searches more kernels "
        "(trt_builder_optimization_level; onnxruntime-trt).",
        check=between(0, 5),
    )


def trt_provider_options(
    options: OrtTensorRTOptions, precision: str, cache: Path | None, device_id: int = 0
) -> dict[str, str]:
    """The TensorRT provider's options, as ONNX Runtime takes them (strings); ``cache`` is the engine folder."""
    provider = {
        "device_id": str(device_id),
        "trt_fp16_enable": "1" if precision == "fp16" else "0",
        "trt_builder_optimization_level": str(options.trt_opt_level),
        "trt_cuda_graph_enable": "1" if options.ort_cuda_graph else "0",
        "trt_engine_cache_enable": "1" if cache is not None else "0",
        "trt_timing_cache_enable": "1" if cache is not None else "0",
    }
    if cache is not None:
        provider["trt_engine_cache_path"] = str(cache)
        provider["trt_timing_cache_path"] = str(cache)
    return provider


def tensorrt_versions() -> dict[str, str]:
    """Installed TensorRT Python distributions (``tensorrt``, ``tensorrt-cu13-libs``, ...) and their versions."""
    found = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("tensorrt"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def required_tensorrt_major() -> int | None:
    """The TensorRT major version the installed ONNX Runtime's TensorRT provider links (``libnvinfer.so.N``)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        library = Path(folder) / "capi" / "libonnxruntime_providers_tensorrt.so"
        if library.is_file():
            match = re.search(rb"libnvinfer\.so\.(\d+)", library.read_bytes())
            return int(match.group(1)) if match else None
    return None


def tensorrt_wheel_folder() -> Path | None:
    """Where the ``tensorrt_libs`` wheel (``tensorrt-cuXX-libs``) keeps its libraries; ``None`` if not installed."""
    try:
        spec = importlib.util.find_spec("tensorrt_libs")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def load_tensorrt(major: int | None) -> str:
    """Load TensorRT's libraries (major version ``major``) so the provider finds them; where they came from.

    pip puts the ``tensorrt-cuXX-libs`` libraries in site-packages, where the loader does not look: they are
    loaded from there by path first. Then ``libnvinfer.so.<major>`` is opened by name, as the provider will open
    it, so a missing or wrong-major TensorRT is refused here, naming the library, before anything is exported.
    """
    folder = tensorrt_wheel_folder()
    suffix = f".so.{major}" if major else ".so"
    if folder is not None:
        for stem in TENSORRT_LIBRARIES:
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    try:
        ctypes.CDLL(f"libnvinfer{suffix}", mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        library = missing_library(str(exc)) or f"libnvinfer{suffix}"
        installed = ", ".join(f"{n} {v}" for n, v in tensorrt_versions().items()) or "none"
        raise UserInputError(
            f"runtime onnxruntime-trt: ONNX Runtime's TensorRT provider needs {library}, which cannot be loaded "
            f"(TensorRT wheels installed: {installed}); {library_hint(library, ort_cuda_major())}"
        ) from None
    return str(folder) if folder is not None else "system loader"


def engine_folder(exported: ExportResult, precision: str, options: OrtTensorRTOptions) -> Path:
    """The engine-cache folder of one ONNX file, GPU, library versions and build settings."""
    from convbench.cache import writable_cache_dir

    stat = exported.path.stat()
    key = json.dumps(
        {
            "onnx": str(exported.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "onnxruntime": ort_version(),
            "tensorrt": tensorrt_versions(),
            "gpu": gpu_name(),
            "precision": precision,
            "opt_level": options.trt_opt_level,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-." else "_" for c in exported.path.parent.name)[-60:]
    return writable_cache_dir("tensorrt", f"{stem}-{digest}")


@register_runtime
class OnnxRuntimeTensorRT(OrtGpuRuntime):
    name = "onnxruntime-trt"
    devices = ("cuda",)
    description = "TensorRT through ONNX Runtime's TensorRT execution provider (engine cached), from the ONNX export"
    options_type = OrtTensorRTOptions
    precisions = PRECISIONS
    provider = TENSORRT_PROVIDER

    def check(self, settings: RunSettings, options: Any) -> None:
        if settings.precision not in PRECISIONS:
            raise UserInputError(
                f"--precision {settings.precision} is not supported by runtime {self.name} on cuda; "
                f"it supports {', '.join(PRECISIONS)}"
            )
        require_available(self.name, TENSORRT_PROVIDER)
        load_tensorrt(required_tensorrt_major())

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        from convbench.export import export_for_runtime

        # Trial workers prepare without the parent's check: refuse here too, before anything is built.
        self.check(settings, options)
        options = options or OrtTensorRTOptions()
        phases = SetupPhases()
        with phases.phase("export"):
            exported = export_for_runtime(model, settings)
        libraries = load_cuda_libraries()
        cache = engine_folder(exported, settings.precision, options) if options.trt_engine_cache else None
        cached = cache is not None and any(cache.glob("*.engine"))
        trt = trt_provider_options(options, settings.precision, cache)
        # The CUDA provider takes what TensorRT cannot; IEEE fp32 there, as in onnxruntime-cuda by default.
        cuda = {k: v for k, v in cuda_provider_options(OrtCudaOptions()).items() if k != "enable_cuda_graph"}
        record = {
            "runtime": self.name,
            "precision": settings.precision,
            **asdict(options),
            "ort_build": ort_version(),
            "tensorrt": ", ".join(f"{n} {v}" for n, v in tensorrt_versions().items()),
            "cuda_libraries_from": libraries,
            "providers_requested": f"{TENSORRT_PROVIDER},{CUDA_PROVIDER},{CPU_PROVIDER}",
            "trt_engine_cache_path": str(cache) if cache is not None else "",
            "trt_engine_cached": cached,
        }
        return OrtDeviceModel(
            exported,
            settings,
            runtime=self.name,
            providers=[(TENSORRT_PROVIDER, trt), (CUDA_PROVIDER, cuda), (CPU_PROVIDER, {})],
            required=TENSORRT_PROVIDER,
            optimization="all",
            cuda_graph=options.ort_cuda_graph,
            phases=phases,
            record=record,
        )
