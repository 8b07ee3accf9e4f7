"""ONNX Runtime on the CPU: the model is exported (cached, verified) and run with a fixed thread budget."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from convbench.export import ExportResult, export_onnx
from convbench.runtimes.base import PreparedModel, Runtime, RuntimeOptions


class OnnxRuntimeModel(PreparedModel):
    def __init__(self, exported: ExportResult, threads: int) -> None:
        self.exported = exported
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Inter-op parallelism only matters for ORT_PARALLEL; sequential execution keeps one thread budget.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.spinning = "1"  # ORT's default; recorded so rows say what ran
        options.add_session_config_entry("session.intra_op.allow_spinning", self.spinning)
        start = time.perf_counter()
        self.session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        self.setup_seconds = time.perf_counter() - start
        rng = np.random.default_rng(0)
        self.feeds = {self.session.get_inputs()[0].name: rng.standard_normal(exported.input_shape, np.float32)}
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
            "ort_spinning": self.spinning,
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
