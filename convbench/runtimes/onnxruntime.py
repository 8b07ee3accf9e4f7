"""ONNX Runtime on the CPU: the model is exported (cached, verified), or an ONNX file is loaded as given, and
run with a fixed thread budget and the session options that change CPU latency, each recorded in the row."""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.options import one_of, option
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
    import numpy as np
    import onnxruntime as ort

    from convbench.export import ExportResult
    from convbench.models.spec import ResolvedModel

THREAD_POOLS = ("session", "global")
OPTIMIZATION_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disabled": "ORT_DISABLE_ALL",
}


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """ONNX Runtime session options that change CPU latency (all recorded in every row)."""

    ort_optimization: str = option(
        "all",
        "ONNX Runtime graph optimisation level: all, extended, basic or disabled (onnxruntime runtimes).",
        check=one_of(OPTIMIZATION_LEVELS),
    )
    # Models are timed interleaved, each in its own session with its own workers. Workers that keep spinning
    # after their session's run take the cores the next model's workers need; workers that sleep between
    # operators wake slowly on a virtual CPU and scatter every run. So by default they spin inside a run and
    # stop as it returns: on a quiet 2-core VM that halved the noisy trials and the speed-up's spread against
    # sleeping workers, down to the one-thread floor (benchmarks/thread_defaults.py, results/thread-defaults.csv).
    ort_spinning: bool = option(
        True,
        "Let ONNX Runtime's worker threads spin while they wait for work instead of sleeping (onnxruntime; "
        "per-session pools only).",
        flags=("--ort-spinning/--no-ort-spinning",),
    )
    ort_spin_stop: bool = option(
        True,
        "Stop the workers' spinning as each run returns (ONNX Runtime's session.force_spinning_stop), so they spin "
        "only inside a run and leave the cores to the next interleaved model (onnxruntime; with --ort-spinning "
        "and per-session pools).",
        flags=("--ort-spin-stop/--no-ort-spin-stop",),
    )
    ort_arena: bool = option(
        True,
        "ONNX Runtime's CPU memory arena: keeps memory between runs (onnxruntime).",
        flags=("--ort-arena/--no-ort-arena",),
    )
    ort_parallel: bool = option(
        False,
        "Run independent graph branches in parallel (ORT_PARALLEL; onnxruntime).",
    )
    ort_thread_pool: str = option(
        "session",
        "session: each model's session has its own worker threads; global: all sessions of the process share one "
        "pool, sized once per process (onnxruntime).",
        check=one_of(THREAD_POOLS),
    )

    def stops_spinning(self) -> bool:
        """Whether --ort-spin-stop takes effect: only where a session's own workers spin."""
        return self.ort_spin_stop and self.ort_spinning and self.ort_thread_pool == "session"


def session_options(threads: int, options: OnnxRuntimeOptions | None = None) -> ort.SessionOptions:
    import onnxruntime as ort

    options = options or OnnxRuntimeOptions()
    session = ort.SessionOptions()
    session.intra_op_num_threads = threads
    # Inter-op parallelism only matters for ORT_PARALLEL; sequential execution keeps one thread budget.
    session.inter_op_num_threads = threads if options.ort_parallel else 1
    mode = ort.ExecutionMode.ORT_PARALLEL if options.ort_parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    session.execution_mode = mode
    level = OPTIMIZATION_LEVELS[options.ort_optimization]
    session.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session.enable_cpu_mem_arena = options.ort_arena
    session.log_severity_level = 3
    session.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.ort_spinning else "0")
    if options.stops_spinning():
        session.add_session_config_entry("session.force_spinning_stop", "1")
    if options.ort_thread_pool == "global":
        _size_global_pool(threads, session.inter_op_num_threads)
        # The thread counts come from the process's pool; ORT refuses a session that also sets its own.
        session.use_per_session_threads = False
        session.intra_op_num_threads = session.inter_op_num_threads = 0
    return session


#: (intra-op, inter-op) threads of this process's global ONNX Runtime pool, once it has been created.
_global_pool: tuple[int, int] | None = None


def _size_global_pool(intra: int, inter: int) -> None:
    """Create this process's global thread pool with ``intra`` / ``inter`` threads, or check it has them: ONNX
    Runtime sizes it once per process and cannot replace it (``set_global_thread_pool_sizes``)."""
    import onnxruntime as ort

    global _global_pool
    if _global_pool is None:
        ort.capi._pybind_state.set_global_thread_pool_sizes(intra, inter)
        _global_pool = (intra, inter)
    elif _global_pool != (intra, inter):
        raise UserInputError(
            f"--ort-thread-pool global: this process's ONNX Runtime pool already has {_global_pool[0]} intra-op and "
            f"{_global_pool[1]} inter-op threads and cannot be resized to {intra}/{inter}; use --isolate process"
        )


class ReferenceSession:
    """An ONNX model run by ONNX Runtime on the CPU with default session settings, as the reference other code
    checks against (an export against PyTorch, OpenVINO against ONNX Runtime, accuracy of an ONNX file).

    ``input_name``, ``input_type`` (``"tensor(float)"``) and ``input_shape`` describe the first input;
    calling it with an array (and any further named inputs) returns every output.
    """

    def __init__(self, model: str | Path | bytes, threads: int = 0) -> None:
        import onnxruntime as ort

        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name: str = first.name
        self.input_type: str = first.type
        self.input_shape: list[Any] = list(first.shape or [])

    def __call__(self, x: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x, **(extra or {})})


def reference_session(model: str | Path | bytes, threads: int = 0) -> ReferenceSession:
    """``model`` (a path or serialized ONNX) loaded into ONNX Runtime's CPU provider for reference outputs;
    ``threads`` 0 lets ONNX Runtime use every core."""
    return ReferenceSession(model, threads)


def ort_input_dtype(type_text: str) -> Any:
    """The numpy type of an ONNX Runtime input type (``"tensor(float16)"`` -> float16); one line if none."""
    import numpy as np

    name = type_text.removeprefix("tensor(").removesuffix(")")
    name = {"float": "float32", "double": "float64"}.get(name, name)
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "fiub":
        raise UserInputError(f"the model takes {type_text} input; convbench feeds float, integer or bool tensors")
    return dtype


def random_feeds(session: ort.InferenceSession, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The seeded input (``convbench.models.inputs``) of the session's first input, in the type the model takes."""
    from convbench.models.inputs import seeded_input

    first = session.get_inputs()[0]
    return {first.name: seeded_input(shape, ort_input_dtype(first.type))}


class OnnxRuntimeModel(PreparedModel):
    def __init__(
        self,
        exported: ExportResult,
        threads: int,
        options: OnnxRuntimeOptions | None = None,
        phases: SetupPhases | None = None,
    ) -> None:
        import onnxruntime as ort

        self.exported = exported
        self.threads = threads
        self.options = options or OnnxRuntimeOptions()
        self.phases = phases or SetupPhases()
        with self.phases.phase("session"):
            self.session = ort.InferenceSession(
                str(exported.path), session_options(threads, self.options), providers=["CPUExecutionProvider"]
            )
        self.feeds = random_feeds(self.session, exported.input_shape)
        self.run = self.session.run

    def timed_run(self) -> float:
        run, feeds = self.run, self.feeds
        start = time.perf_counter()
        run(None, feeds)
        return time.perf_counter() - start

    def settings(self) -> dict[str, object]:
        return {
            "intra_op_threads": self.threads,
            "inter_op_threads": self.threads if self.options.ort_parallel else 1,
            **asdict(self.options),
            # What took effect, not what was asked: one thread has no workers to stop.
            "ort_spin_stop": self.threads > 1 and self.options.stops_spinning(),
            # What the workers did between runs: a global pool's threads always spin (ONNX Runtime's Python API
            # has no setting for it); a session's own spin as --ort-spinning says, unless --ort-spin-stop stops
            # them as each run returns; one thread has no workers.
            "ort_workers_spin": self.threads > 1
            and (
                self.options.ort_thread_pool == "global"
                or (self.options.ort_spinning and not self.options.stops_spinning())
            ),
            "exporter": self.exported.exporter,
            "opset": self.exported.opset,
            "onnx_max_abs_diff": self.exported.max_abs_diff,
            "onnx_file_mb": self.exported.path.stat().st_size / 2**20,
        }

    def close(self) -> None:
        self.session = None
        self.run = None


@register_runtime
class OnnxRuntimeCPU(Runtime):
    name = "onnxruntime"
    devices = ("cpu",)
    description = "ONNX Runtime, CPU execution provider, from the verified ONNX export"
    options_type = OnnxRuntimeOptions
    requires = ("onnxruntime",)
    install_hint = "pip install onnxruntime"
    runs_onnx = True

    def prefetch(self, model: ResolvedModel, settings: RunSettings) -> None:
        from convbench.export import export_for_runtime

        export_for_runtime(model, settings)

    def prepare(self, model: ResolvedModel, settings: RunSettings, options: Any) -> PreparedModel:
        from convbench.export import export_for_runtime

        phases = SetupPhases()
        with phases.phase("export"):
            exported = export_for_runtime(model, settings)
        return OnnxRuntimeModel(exported, settings.threads, options, phases)

    def peak_precisions(self, device: str) -> tuple[str, ...]:
        return ("fp32",)  # the CPU provider's fp16 MatMul is not a native kernel on x86

    def peak_precision(self, device: str, precision: str, options: Any) -> str | None:
        return "fp32" if precision == "fp32" else None

    def peak_gemm(self, n: int, threads: int, device: str, precision: str) -> Gemm:
        import numpy as np
        import onnxruntime as ort

        a, b = random_operands(n)
        session = ort.InferenceSession(matmul_onnx(n, b), session_options(threads), providers=["CPUExecutionProvider"])
        # IO binding with a preallocated output: run() would allocate and copy the n x n result every time, which
        # is memory traffic, not MACs.
        binding = session.io_binding()
        binding.bind_cpu_input("A", a)
        out = ort.OrtValue.ortvalue_from_numpy(np.empty((n, n), np.float32))
        binding.bind_ortvalue_output("C", out)

        def run() -> float:
            start = time.perf_counter()
            session.run_with_iobinding(binding)
            return time.perf_counter() - start

        return Gemm(run)

    operator_profiler = "ONNX Runtime's own profiler"

    def operator_profile(self, model: ResolvedModel, settings: RunSettings, options: Any, runs: int) -> OperatorProfile:
        from convbench.export import export_for_runtime

        return operator_profile(export_for_runtime(model, settings), settings.threads, runs, options)


def random_operands(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded n x n fp32 matrices: the operands of a peak GEMM."""
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)


def matmul_onnx(n: int, b: np.ndarray) -> bytes:
    """A one-node ONNX model ``C = A @ B`` with ``B`` a constant initializer (as convolution weights are, so a
    runtime may pre-pack it) and ``A`` the n x n input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])],
        initializer=[numpy_helper.from_array(b, "B")],
    )
    # Opset 13 and IR 8: old enough for every ONNX Runtime and OpenVINO release convbench supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def operator_profile(
    exported: ExportResult, threads: int, runs: int = 20, options: OnnxRuntimeOptions | None = None
) -> OperatorProfile:
    """Per-operator-type time from ONNX Runtime's own profiler (``SessionOptions.enable_profiling``), with the
    session options the rows were timed with.

    Layout conversions the CPU provider inserts (ReorderInput / ReorderOutput) show up as operators, so
    the table says where a model's time goes beyond its convolutions.
    """
    import onnxruntime as ort

    if runs < 1:
        raise UserInputError(f"profiling needs at least one run, got {runs}")
    with tempfile.TemporaryDirectory(prefix="convbench-ortprof-") as tmp:
        options = session_options(threads, options)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        feeds = random_feeds(session, exported.input_shape)
        session.run(None, feeds)  # the first run allocates; keep it out of the profile's average
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_type: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event["args"]["op_name"]
            per_type[op] += event["dur"]
            nodes[op].add(event["name"])
    # The warm-up run is in the trace too: divide by all runs it holds.
    total = sum(per_type.values())
    # Every node runs once per inference, so a type's calls per run are its nodes.
    rows = [
        OperatorTime(op, us / (runs + 1) / 1e3, us / total if total else 0.0, len(nodes[op]))
        for op, us in per_type.items()
    ]
    rows.sort(key=lambda r: -r.ms_per_run)
    return OperatorProfile(
        OnnxRuntimeCPU.operator_profiler,
        rows,
        runs,
        {"nodes per forward pass": float(sum(len(n) for n in nodes.values()))},
    )
