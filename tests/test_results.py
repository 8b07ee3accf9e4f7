import json

import pandas as pd
import pytest

from convbench.errors import ConvbenchError, UserInputError
from convbench.results.files import COLUMNS, ENVIRONMENT_COLUMNS, environment, read_rows, write_rows


def row(model="resnet50", **extra):
    base = {c: None for c in COLUMNS}
    base.update(
        model=model,
        median_ms=1.5,
        speedup=float("nan"),
        **environment(),
        load_avg_before=0.5,
        load_avg_after=0.5,
        **extra,
    )
    return base


def test_csv_append_keeps_header_and_rows(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [row("a")])
    write_rows(path, [row("b", extra_setting=3)])
    frame = pd.read_csv(path)
    assert frame["model"].tolist() == ["a", "b"]
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert set(ENVIRONMENT_COLUMNS) <= set(frame.columns)
    # A setting only the second row has is kept, and left empty for the first.
    assert pd.isna(frame.loc[0, "extra_setting"]) and frame.loc[1, "extra_setting"] == 3


def test_a_new_settings_column_goes_before_the_environment_in_one_write(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [row("a", extra_setting=3)])
    columns = pd.read_csv(path).columns.tolist()
    assert columns[: len(COLUMNS)] == COLUMNS
    assert columns[len(COLUMNS)] == "extra_setting"
    assert columns[-len(ENVIRONMENT_COLUMNS) :] == ENVIRONMENT_COLUMNS


def test_environment_columns_stay_last_when_rows_bring_new_settings(tmp_path):
    path = tmp_path / "r.csv"
    write_rows(path, [row("a")])
    write_rows(path, [row("b", extra_setting=3)])
    columns = pd.read_csv(path).columns.tolist()
    assert columns[-len(ENVIRONMENT_COLUMNS) :] == ENVIRONMENT_COLUMNS


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
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write"):
        write_rows(blocker / "r.csv", [row()])
    with pytest.raises(UserInputError, match="unknown format"):
        write_rows(tmp_path / "r.csv", [row()], fmt="xml")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(UserInputError, match="it is a directory"):
        write_rows(folder, [row()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder.csv"]


def test_a_suffix_that_is_not_csv_or_json_needs_an_explicit_format(tmp_path):
    target = tmp_path / "r.xlsx"
    with pytest.raises(UserInputError, match=r"cannot tell the format of 'r\.xlsx'"):
        write_rows(target, [row()])
    assert not target.exists()
    write_rows(target, [row("a")], fmt="csv")
    assert pd.read_csv(target)["model"].tolist() == ["a"]
