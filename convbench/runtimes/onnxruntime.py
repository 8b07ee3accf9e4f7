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
from convbench.runtimes.base import PreparedModel, RunSettings, Runtime, SetupPhases, register_runtime

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

    from convbench.export import ExportResult
    from convbench.models.spec import ResolvedModel

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
        "ONNX Runtime graph optimisation level: all, extended, basic or disabled (onnxruntime).",
        check=one_of(OPTIMIZATION_LEVELS),
    )
    ort_spinning: bool = option(
        True,
        "Let ONNX Runtime's idle worker threads spin instead of sleeping (onnxruntime).",
        flags=("--ort-spinning/--no-ort-spinning",),
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
    return session


def random_feeds(session: ort.InferenceSession, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    import numpy as np

    rng = np.random.default_rng(0)
    return {session.get_inputs()[0].name: rng.standard_normal(shape, np.float32)}


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


@dataclass(frozen=True)
class OperatorTime:
    """Time ONNX Runtime spent in one operator type, per inference."""

    op_type: str
    ms_per_run: float
    share: float
    nodes: int


def operator_profile(exported: ExportResult, threads: int, runs: int = 20) -> list[OperatorTime]:
    """Per-operator-type time from ONNX Runtime's own profiler (``SessionOptions.enable_profiling``).

    Layout conversions the CPU provider inserts (ReorderInput / ReorderOutput) show up as operators, so
    the table says where a model's time goes beyond its convolutions.
    """
    import onnxruntime as ort

    if runs < 1:
        raise UserInputError(f"profiling needs at least one run, got {runs}")
    with tempfile.TemporaryDirectory(prefix="convbench-ortprof-") as tmp:
        options = session_options(threads)
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
    rows = [
        OperatorTime(op, us / (runs + 1) / 1e3, us / total if total else 0.0, len(nodes[op]))
        for op, us in per_type.items()
    ]
    return sorted(rows, key=lambda r: -r.ms_per_run)
