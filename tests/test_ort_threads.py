"""ONNX Runtime's worker threads while models are timed interleaved: spinning off by default, the optional
process-wide pool, and the row saying which ran."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from convbench.errors import UserInputError
from convbench.options import validate
from convbench.runtimes.onnxruntime import OnnxRuntimeModel, OnnxRuntimeOptions, session_options


def _double_model(path: Path) -> Path:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)], ir_version=8)
    onnx.save_model(model, path)
    return path


def _exported(path: Path):
    from convbench.export import ExportResult

    return ExportResult(
        path=path,
        model="double",
        input_shape=(1, 3, 8, 8),
        exporter="file",
        opset=13,
        max_abs_diff=float("nan"),
        tolerance=float("nan"),
        export_seconds=0.0,
        cached=True,
    )


def test_idle_workers_do_not_spin_by_default():
    # Bug guarded: spinning back on by default; each interleaved session's spinning workers then take the cores
    # the next model needs, and every trial at the default thread count is flagged noisy.
    options = session_options(2)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2
    spinning = session_options(2, OnnxRuntimeOptions(ort_spinning=True))
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_spin_stop_asks_onnx_runtime_to_stop_spinning_after_each_run():
    # Bug guarded: --ort-spin-stop accepted and recorded but never passed to ONNX Runtime, so the workers keep
    # spinning between runs while the row says they did not.
    stopping = session_options(2, OnnxRuntimeOptions(ort_spinning=True, ort_spin_stop=True))
    assert stopping.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert stopping.get_session_config_entry("session.force_spinning_stop") == "1"
    spinning = session_options(2, OnnxRuntimeOptions(ort_spinning=True))
    with pytest.raises(Exception, match="force_spinning_stop"):  # not set at all without --ort-spin-stop
        spinning.get_session_config_entry("session.force_spinning_stop")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (OnnxRuntimeOptions(ort_spin_stop=True), "needs --ort-spinning"),
        (OnnxRuntimeOptions(ort_spinning=True, ort_spin_stop=True, ort_thread_pool="global"), "per-session pools"),
    ],
)
def test_spin_stop_without_spinning_workers_is_refused(options, problem):
    # Bug guarded: a setting that cannot take effect silently recorded in the row as if it had.
    with pytest.raises(UserInputError, match=problem):
        validate(options)


@pytest.mark.parametrize(
    ("threads", "spinning", "spin_stop", "spin"),
    [(2, False, False, False), (2, True, False, True), (2, True, True, False), (1, True, False, False)],
)
def test_the_row_says_whether_workers_spun(tmp_path, threads, spinning, spin_stop, spin):
    # Bug guarded: a row claiming spinning workers where there were none (one thread has no workers, and
    # --ort-spin-stop stops them as each run returns), or the setting missing from the row, so two files
    # measured differently look alike.
    options = OnnxRuntimeOptions(ort_spinning=spinning, ort_spin_stop=spin_stop)
    model = OnnxRuntimeModel(_exported(_double_model(tmp_path / "m.onnx")), threads, options)
    try:
        settings = model.settings()
        assert settings["ort_workers_spin"] is spin
        assert settings["ort_spinning"] is spinning and settings["ort_spin_stop"] is spin_stop
        assert settings["ort_thread_pool"] == "session"
        assert model.timed_run() >= 0
    finally:
        model.close()


def test_the_global_pool_is_shared_sized_once_and_refuses_another_size(tmp_path):
    # Bug guarded: sessions asked for the global pool that still make their own (ORT refuses them), a global pool
    # recorded as not spinning, or a second thread count in one process failing with ORT's raw error. Run in a
    # fresh interpreter: ONNX Runtime's global pool lives for the whole process.
    path = _double_model(tmp_path / "m.onnx")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from convbench.errors import UserInputError
        from convbench.runtimes.onnxruntime import OnnxRuntimeModel, OnnxRuntimeOptions
        from tests.test_ort_threads import _exported

        options = OnnxRuntimeOptions(ort_thread_pool="global")
        exported = _exported(Path({str(path)!r}))
        first, second = OnnxRuntimeModel(exported, 2, options), OnnxRuntimeModel(exported, 2, options)
        first.timed_run(), second.timed_run()
        assert first.session.get_session_options().use_per_session_threads is False
        settings = first.settings()
        assert settings["ort_thread_pool"] == "global" and settings["ort_workers_spin"] is True, settings
        try:
            OnnxRuntimeModel(exported, 1, options)
        except UserInputError as exc:
            print("refused:", exc)
        """
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "refused: --ort-thread-pool global" in proc.stdout and "2 intra-op" in proc.stdout
