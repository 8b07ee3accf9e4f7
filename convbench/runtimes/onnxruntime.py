"""ONNX Runtime on the CPU: the model is exported (cached, verified) and run with a fixed thread budget."""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from convbench.errors import UserInputError
from convbench.export import ExportResult, export_onnx
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions

# ORT's default; recorded so every row says what ran.
SPINNING = "1"


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Inter-op parallelism only matters for ORT_PARALLEL; sequential execution keeps one thread budget.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", SPINNING)
    return options


def _random_feeds(session: ort.InferenceSession, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {session.get_inputs()[0].name: rng.standard_normal(shape, np.float32)}


class OnnxRuntimeModel(PreparedModel):
    def __init__(self, exported: ExportResult, threads: int) -> None:
        self.exported = exported
        self.threads = threads
        start = time.perf_counter()
        self.session = ort.InferenceSession(
            str(exported.path), _session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.setup_seconds = time.perf_counter() - start
        self.feeds = _random_feeds(self.session, exported.input_shape)
        self.run = self.session.run

    def timed_run(self) -> float:
        run, feeds = self.run, self.feeds
        start = time.perf_counter()
        run(None, feeds)
        return time.perf_counter() - start

    def settings(self) -> dict[str, object]:
        return {
            "intra_op_threads": self.threads,
            "inter_op_threads": 1,
            "ort_spinning": SPINNING,
            "ort_optimization": "ORT_ENABLE_ALL",
            "exporter": self.exported.exporter,
            "opset": self.exported.opset,
            "onnx_max_abs_diff": self.exported.max_abs_diff,
        }


class OnnxRuntimeCPU(Runtime):
    name = "onnxruntime"
    devices = ("cpu",)

    def prepare(self, model: str, options: RuntimeOptions) -> PreparedModel:
        exported = export_onnx(
            model, batch_size=options.batch_size, resolution=options.resolution, exporter=options.exporter,
            **options.overrides,
        )
        return OnnxRuntimeModel(exported, options.threads)


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
    if runs < 1:
        raise UserInputError(f"profiling needs at least one run, got {runs}")
    with tempfile.TemporaryDirectory(prefix="convbench-ortprof-") as tmp:
        options = _session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        feeds = _random_feeds(session, exported.input_shape)
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
