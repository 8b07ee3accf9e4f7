"""OpenVINO on the CPU, from the same verified ONNX export as ONNX Runtime, so the two differ only in runtime.

The model is compiled for a fixed input shape with the settings that decide CPU latency set explicitly rather
than left to OpenVINO's defaults, because several defaults depend on the machine: the inference precision
hint defaults to bf16 on CPUs with AMX ("Inference Precision", OpenVINO documentation, "CPU Device"), which
would silently compare a bf16 model against ONNX Runtime's fp32 one, and the number of streams and threads
follows the performance hint and the core count. Every setting is read back from the compiled model and
recorded in the row, so the row says what actually ran.

OpenVINO's output is checked against ONNX Runtime's on the same seeded input before any timing: the export
was already checked against PyTorch with ONNX Runtime, so this closes the chain PyTorch -> ONNX -> OpenVINO.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from convbench.errors import ConvbenchError, UserInputError
from convbench.options import Check, option
from convbench.runtimes.base import Gemm, PreparedModel, RunSettings, Runtime, SetupPhases, register_runtime

if TYPE_CHECKING:
    import numpy as np

    from convbench.export import ExportResult
    from convbench.models.spec import ResolvedModel

NAME = "openvino"
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# convbench's precision names -> OpenVINO's element types, and the OPTIMIZATION_CAPABILITIES entry the CPU
# plugin reports when it can execute that precision natively.
PRECISIONS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}
# Parity with ONNX Runtime: |openvino - ort| <= ATOL + RTOL * max|ort|, the export's rule
# (convbench.export). Reduced precisions keep about 3 significant digits (bf16: 8 bits of mantissa) and the
# rounding compounds over the layers, so they only get a check that catches a wrong graph, not rounding.
ATOL, RTOL = 1e-4, 1e-4
REDUCED_ATOL, REDUCED_RTOL = 1e-2, 1e-1


def _one_of_for_openvino(choices: dict[str, str]) -> Check:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(choices)} (openvino), got {value!r}"
        return None

    return check


def _streams_check(value: Any) -> str | None:
    if value < 0:
        return f"must be 0 (let the performance hint choose) or a number of streams (openvino), got {value}"
    return None


@dataclass(frozen=True)
class OpenVINOOptions:
    """OpenVINO CPU plugin settings that change latency (all recorded in every row)."""

    ov_hint: str = option(
        "latency",
        "OpenVINO performance hint: latency or throughput (openvino).",
        check=_one_of_for_openvino(HINTS),
    )
    ov_streams: int = option(
        1,
        "OpenVINO CPU streams; the timed loop runs one request, so more streams split --threads between idle "
        "streams. 0: let the performance hint choose (openvino).",
        check=_streams_check,
    )
    ov_pinning: bool = option(
        True,
        "Pin OpenVINO's inference threads to cores (ENABLE_CPU_PINNING; openvino).",
        flags=("--ov-pinning/--no-ov-pinning",),
    )


def compile_config(settings: RunSettings, options: OpenVINOOptions) -> dict[str, Any]:
    """The ``compile_model`` configuration for ``settings`` and ``options`` (property names as strings, which
    every OpenVINO release since 2022 accepts; the ``openvino.properties`` helpers moved between releases)."""
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": settings.threads,
        "PERFORMANCE_HINT": HINTS[options.ov_hint],
        "INFERENCE_PRECISION_HINT": PRECISIONS[settings.precision][0],
        "ENABLE_CPU_PINNING": options.ov_pinning,
    }
    if options.ov_streams:
        config["NUM_STREAMS"] = options.ov_streams
    return config


def cpu_capabilities() -> tuple[str, ...]:
    """What the OpenVINO CPU plugin can execute natively here (FP32, BF16, FP16, INT8, ...)."""
    import openvino as ov

    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def input_dtype(exported: ExportResult) -> Any:
    """The element type the model's first input takes: a user's ONNX file says (float16, uint8, ...);
    convbench's own exports take float32."""
    if exported.exporter != "file":
        return "float32"
    from convbench.models.sources import onnx_input_dtype

    return onnx_input_dtype(exported.path)


def _reference_output(exported: ExportResult, feed: np.ndarray, threads: int) -> np.ndarray:
    from convbench.runtimes.onnxruntime import reference_session

    return reference_session(exported.path, threads)(feed)[0]


def parity(
    exported: ExportResult, output: np.ndarray, feed: np.ndarray, threads: int, precision: str, stochastic: bool
) -> tuple[float, float]:
    """(max |openvino - onnxruntime|, tolerance) on ``feed``; raises ConvbenchError above the tolerance.

    A stochastic model (random selection by design) can only be checked for shape and finiteness: NaN diff.
    """
    import numpy as np

    reference = _reference_output(exported, feed, threads)
    if output.shape != reference.shape:
        raise ConvbenchError(
            f"OpenVINO output of {exported.model} has shape {output.shape}, ONNX Runtime's "
            f"{reference.shape}; the OpenVINO model is not faithful"
        )
    if not np.isfinite(output).all():
        raise ConvbenchError(f"OpenVINO output of {exported.model} is not finite; the OpenVINO model is not faithful")
    if stochastic:
        return float("nan"), float("nan")
    atol, rtol = (ATOL, RTOL) if precision == "fp32" else (REDUCED_ATOL, REDUCED_RTOL)
    tolerance = atol + rtol * float(np.abs(reference).max())
    diff = float(np.abs(output.astype(np.float32) - reference).max())
    if not diff <= tolerance:  # also catches NaN
        raise ConvbenchError(
            f"OpenVINO output of {exported.model} differs from ONNX Runtime by {diff:.3g} (tolerance "
            f"{tolerance:.3g}, {precision}); the OpenVINO model is not faithful"
        )
    return diff, tolerance


class OpenVINOModel(PreparedModel):
    def __init__(
        self,
        exported: ExportResult,
        settings: RunSettings,
        options: OpenVINOOptions,
        phases: SetupPhases,
        stochastic: bool = False,
    ) -> None:
        import openvino as ov

        from convbench.models.inputs import seeded_input

        self.exported = exported
        self.options = options
        self.precision = settings.precision
        self.phases = phases
        self.config = compile_config(settings, options)
        with self.phases.phase("compile"):
            core = ov.Core()
            model = core.read_model(str(exported.path))
            if model.inputs[0].get_partial_shape().is_dynamic:
                # A user's ONNX file may leave batch or size symbolic; a static shape lets the CPU plugin pick
                # its kernels once, at compile time, as it does for convbench's own exports.
                model.reshape({model.inputs[0]: ov.PartialShape(list(exported.input_shape))})
            self.compiled = core.compile_model(model, "CPU", self.config)
            self.request = self.compiled.create_infer_request()
        self.feed = seeded_input(exported.input_shape, input_dtype(exported))
        # The input is set once, sharing the array's memory, so each timed infer() copies nothing in: the
        # request reads the tensor already bound to it ("Synchronous Inference Request", OpenVINO Python API).
        # The request points into this array and the compiled model: both are kept for as long as it is.
        self.tensor = ov.Tensor(self.feed, shared_memory=True)
        self.core = core
        self.request.set_input_tensor(self.tensor)
        self.request.infer()
        output = self.request.get_output_tensor(0).data.copy()
        self.max_abs_diff, self.tolerance = parity(
            exported, output, self.feed, settings.threads, settings.precision, stochastic
        )
        self.infer = self.request.infer

    def timed_run(self) -> float:
        infer = self.infer
        start = time.perf_counter()
        # share_outputs: the result is a view of the output tensor, not a copy made inside the timed call.
        infer(share_outputs=True)
        return time.perf_counter() - start

    def _property(self, name: str) -> object:
        try:
            value = self.compiled.get_property(name)
        except RuntimeError:  # a property this release does not expose on compiled models
            return None
        if hasattr(value, "get_type_name"):  # an element type (the precision): "f32", not "<Type: 'float32'>"
            return value.get_type_name()
        return value if isinstance(value, bool | int | float | str) else str(value)

    def settings(self) -> dict[str, object]:
        import openvino as ov

        return {
            # What was asked for (the options, as the other runtimes record theirs), then what the compiled
            # model reports it uses, which differs where 0 streams lets the hint choose.
            **asdict(self.options),
            "intra_op_threads": self._property("INFERENCE_NUM_THREADS"),
            "ov_num_streams": self._property("NUM_STREAMS"),
            "ov_cpu_pinning": self._property("ENABLE_CPU_PINNING"),
            "ov_performance_hint": self._property("PERFORMANCE_HINT"),
            "precision": self.precision,
            "ov_inference_precision": self._property("INFERENCE_PRECISION_HINT"),
            "ov_requested": " ".join(f"{k}={v}" for k, v in self.config.items()),
            "openvino": ov.get_version(),
            "exporter": self.exported.exporter,
            "opset": self.exported.opset,
            "onnx_max_abs_diff": self.exported.max_abs_diff,
            "onnx_file_mb": self.exported.path.stat().st_size / 2**20,
            "openvino_max_abs_diff": self.max_abs_diff,
            "openvino_tolerance": self.tolerance,
        }

    def close(self) -> None:
        self.infer = None
        self.request = None
        self.compiled = None
        self.tensor = self.core = None


@register_runtime
class OpenVINOCPU(Runtime):
    name = NAME
    devices = ("cpu",)
    description = "OpenVINO CPU plugin, compiled from the verified ONNX export"
    options_type = OpenVINOOptions
    requires = ("openvino",)
    install_hint = "pip install 'convbench[openvino]'"
    precisions = tuple(PRECISIONS)
    runs_onnx = True

    def check(self, settings: RunSettings, options: Any) -> None:
        options = options or OpenVINOOptions()
        if settings.precision not in PRECISIONS:
            raise UserInputError(
                f"runtime openvino: --precision {settings.precision} is not supported; "
                f"choose from {', '.join(PRECISIONS)}"
            )
        if settings.precision != "fp32":
            capability = PRECISIONS[settings.precision][1]
            available = cpu_capabilities()
            if capability not in available:
                raise UserInputError(
                    f"runtime openvino: --precision {settings.precision} needs a CPU with native {capability} "
                    f"support; this CPU's OpenVINO plugin offers {', '.join(available)}"
                )
        if options.ov_streams > settings.threads:
            raise UserInputError(
                f"runtime openvino: --ov-streams {options.ov_streams} is more than --threads "
                f"{settings.threads}; each stream needs at least one thread"
            )

    def version(self) -> str:
        import openvino as ov

        return ov.get_version()

    def peak_precisions(self, device: str) -> tuple[str, ...]:
        available = cpu_capabilities()
        return tuple(p for p, (_, capability) in PRECISIONS.items() if p == "fp32" or capability in available)

    def peak_precision(self, device: str, precision: str, options: Any) -> str | None:
        return precision if precision in PRECISIONS else None

    def peak_gemm(self, n: int, threads: int, device: str, precision: str) -> Gemm:
        import openvino as ov

        from convbench.runtimes.onnxruntime import matmul_onnx, random_operands

        a, b = random_operands(n)
        core = ov.Core()
        model = core.read_model(matmul_onnx(n, b))
        # This runtime's own settings; the precision explicitly, since the CPU plugin's default is bf16 on CPUs
        # with AMX.
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision][0],
            "NUM_STREAMS": 1,
        }
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        tensor = ov.Tensor(a, shared_memory=True)
        request.set_input_tensor(tensor)
        # The request points into the operand's memory and the compiled model: both must outlive it, so the timing
        # function holds them (freed early, the next infer() reads freed memory and crashes).
        keep = (core, compiled, a, tensor)

        def run() -> float:
            assert keep
            start = time.perf_counter()
            request.infer(share_outputs=True)
            return time.perf_counter() - start

        return Gemm(run)

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        from convbench.export import export_for_runtime

        options = options or OpenVINOOptions()
        self.check(settings, options)
        phases = SetupPhases()
        with phases.phase("export"):
            exported = export_for_runtime(model, settings)
        return OpenVINOModel(exported, settings, options, phases, stochastic=model.stochastic)
