import json

import pandas as pd
import pytest

from convbench.errors import ConvbenchError, UserInputError
from convbench.results import COLUMNS, ENVIRONMENT_COLUMNS, environment, read_rows, write_rows


def row(model="resnet50", **extra):
    base = {c: None for c in COLUMNS}
    base.update(model=model, median_ms=1.5, speedup=float("nan"), **environment(), **extra)
    return base


def test_csv_append_keeps_header_and_rows(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [row("a")])
    write_rows(path, [row("b", extra_setting=3)])
    frame = pd.read_csv(path)
    assert frame["model"].tolist() == ["a", "b"]
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert frame.columns[-len(ENVIRONMENT_COLUMNS):].tolist() == ENVIRONMENT_COLUMNS or "extra_setting" in frame


def test_json_has_the_same_schema_and_null_for_nan(tmp_path):
    path = tmp_path / "r.json"
    write_rows(path, [row("a")])
    write_rows(path, [row("b")])
    data = json.loads(path.read_text())
    assert [r["model"] for r in data] == ["a", "b"]
    assert list(data[0])[: len(COLUMNS)] == COLUMNS
    assert data[0]["speedup"] is None
    assert read_rows(path)[1]["model"] == "b"


def test_environment_records_versions_and_machine():
    env = environment()
    for key in ("cpu", "cores", "os", "python", "torch", "onnxruntime", "onnx", "fvcore", "convbench", "timestamp"):
        assert env[key] not in (None, ""), key


def test_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    write_rows(path, [row("a")])
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        write_rows(path, [row("b")])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"], "no temporary file is left behind"


def test_corrupted_file_is_a_clear_error_and_is_not_overwritten(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(ConvbenchError, match="cannot read result file"):
        write_rows(path, [row("a")])
    assert path.read_text() == "{not json"


def test_csv_that_is_not_a_result_file_is_rejected(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ConvbenchError, match="no 'model' column"):
        write_rows(path, [row("a")])


def test_unwritable_path_and_unknown_format(tmp_path):
    with pytest.raises(UserInputError, match="cannot write"):
        write_rows(tmp_path / "file.txt" / "r.csv", [row()]) if (tmp_path / "file.txt").write_text("x") else None
    with pytest.raises(UserInputError, match="unknown format"):
        write_rows(tmp_path / "r.csv", [row()], fmt="xml")
    with pytest.raises(UserInputError, match="directory"):
        write_rows(tmp_path, [row()])
