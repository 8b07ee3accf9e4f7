"""ONNX Runtime's worker threads while models are timed interleaved: spinning off by default, the optional
process-wide pool, and the row saying which ran."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

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


def test_workers_spin_only_inside_a_run_by_default():
    # Bug guarded: the default drifting back to workers that spin between runs (each interleaved session's
    # workers then take the cores the next model needs) or to sleeping workers (slow wake-ups on a virtual CPU);
    # either flags most trials at the default thread count as noisy.
    options = session_options(2)
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    sleeping = session_options(2, OnnxRuntimeOptions(ort_spinning=False))
    assert sleeping.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(
    "options",
    [
        OnnxRuntimeOptions(ort_spin_stop=False),
        OnnxRuntimeOptions(ort_spinning=False),  # nothing spins, so nothing to stop
    ],
)
def test_spinning_is_stopped_only_where_a_sessions_own_workers_spin(options):
    # Bug guarded: --no-ort-spin-stop ignored (the workers keep being stopped while the row says they spun
    # between runs), or the entry set where it cannot take effect.
    with pytest.raises(Exception, match="force_spinning_stop"):  # the entry is not set at all
        session_options(2, options).get_session_config_entry("session.force_spinning_stop")


def test_the_global_pool_is_not_asked_to_stop_spinning():
    # Bug guarded: the row of a global-pool run saying its workers were stopped after each run; the setting is a
    # session's, and the process's shared pool spins regardless. (No session here: a global pool, once made,
    # would bind every later session of this test process.)
    assert not OnnxRuntimeOptions(ort_thread_pool="global").stops_spinning()
    assert OnnxRuntimeOptions().stops_spinning()


@pytest.mark.parametrize(
    ("threads", "options", "spin_stop", "spin"),
    [
        (2, OnnxRuntimeOptions(), True, False),
        (2, OnnxRuntimeOptions(ort_spin_stop=False), False, True),
        (2, OnnxRuntimeOptions(ort_spinning=False), False, False),
        (1, OnnxRuntimeOptions(ort_spin_stop=False), False, False),
        (1, OnnxRuntimeOptions(), False, False),
    ],
)
def test_the_row_says_whether_workers_spun(tmp_path, threads, options, spin_stop, spin):
    # Bug guarded: a row claiming spinning workers, or stopped ones, where there were none (one thread has no
    # workers; sleeping workers have no spinning to stop), or the setting missing from the row, so two files
    # measured differently look alike.
    model = OnnxRuntimeModel(_exported(_double_model(tmp_path / "m.onnx")), threads, options)
    try:
        settings = model.settings()
        assert settings["ort_workers_spin"] is spin
        assert settings["ort_spinning"] is options.ort_spinning and settings["ort_spin_stop"] is spin_stop
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
        assert settings["ort_spin_stop"] is False, settings
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
