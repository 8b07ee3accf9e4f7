"""``convbench merge`` keeps its word: it reads the project's own reproduce files, ``--speedup-vs`` clears what it
says it clears, and rows that disagree with their own schema are refused in one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from result_rows import result_row
from typer.testing import CliRunner

from convbench.cli.main import app
from convbench.errors import UserInputError
from convbench.results.files import SCHEMA_VERSION, read_rows, write_rows
from convbench.results.merge import merge_files, schema_major

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("name", ["mod-imagenet-cpu.csv", "micronet-cpu.csv"])
def test_merge_reads_the_projects_own_reproduce_files(tmp_path, name):
    """Fails with "schema version 2.0, nan": published-only lines have no schema_version, and pandas reads the
    column as float. They are kept as they are; the measured rows are counted as machines and runs."""
    source = REPO / "results" / name
    if not source.is_file():
        pytest.skip(f"results/{name} is not in this checkout")
    found = read_rows(source)
    published = sum(1 for r in found if pd.isna(r.get("schema_version")))
    assert published, "the file should hold published-only lines for this test to mean anything"
    out = tmp_path / "merged.csv"
    merged = merge_files([source], out)
    assert merged.rows == len(found) and merged.published == published
    assert merged.runs == len({r["run_id"] for r in found if not pd.isna(r.get("run_id"))})
    assert any(f"{published} line(s) hold published figures only" in n for n in merged.notes)
    back = read_rows(out)
    assert [str(r.get("method")) for r in back] == [str(r.get("method")) for r in found]  # the table's order
    measured = [r for r in back if not pd.isna(r.get("schema_version"))]
    versions = {int(r["schema_version"]) for r in found if not pd.isna(r.get("schema_version"))}
    assert {r["schema_version"] for r in measured} == versions  # each row keeps the schema it was written in


def test_merge_of_a_reproduce_file_through_the_cli(tmp_path):
    source = REPO / "results" / "mod-imagenet-cpu.csv"
    if not source.is_file():
        pytest.skip("results/mod-imagenet-cpu.csv is not in this checkout")
    result = runner.invoke(app, ["merge", str(source), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "published figures only" in result.output


@pytest.mark.parametrize(("value", "major"), [(2, 2), (2.0, 2), ("2", 2), ("2.0", 2), (float("nan"), None), ("", None)])
def test_schema_versions_read_as_integers(value, major):
    assert schema_major(value) == major
    assert schema_major("two") == -1 and schema_major(2.5) == -1


def test_speedup_vs_clears_the_baselines_own_rows_over_another_baseline(tmp_path):
    """Fails when X's own row in a run with another baseline keeps its speed-up over that baseline (the old
    code skipped rows whose model was X)."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(
        first, [result_row("resnet50", "resnet50", "run-a", 1.0), result_row("resnet75-mod", "resnet50", "run-a", 1.4)]
    )
    # Run b timed resnet50 against resnet18: resnet50's 0.5 is over resnet18, not over itself.
    write_rows(
        second, [result_row("resnet18", "resnet18", "run-b", 1.0), result_row("resnet50", "resnet18", "run-b", 0.5)]
    )
    out = tmp_path / "m.csv"
    merged = merge_files([first, second], out, speedup_vs="resnet50")
    rows = {(r["run_id"], r["model"]): r for r in read_rows(out)}
    assert rows[("run-a", "resnet50")]["speedup"] == pytest.approx(1.0)
    assert rows[("run-a", "resnet75-mod")]["speedup"] == pytest.approx(1.4)
    for key in (("run-b", "resnet18"), ("run-b", "resnet50")):
        for column in ("speedup", "speedup_low", "speedup_high", "p_value", "verdict"):
            assert pd.isna(rows[key][column]), (key, column)
        assert rows[key]["baseline"] == "resnet50"
    assert "another baseline" in rows[("run-b", "resnet50")]["speedup_note"]
    assert "was timed in this row's run" in rows[("run-b", "resnet18")]["speedup_note"]
    assert any("2 row(s) keep" in n for n in merged.notes) and any("2 row(s) get no" in n for n in merged.notes)


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        pytest.param([result_row("resnet50", "resnet50", "", 1.0)], "no 'run_id'", id="missing-run-id"),
        pytest.param([result_row("", "resnet50", "run-a", 1.0)], "no 'model'", id="missing-model"),
        pytest.param(
            [{**result_row("resnet50", "resnet50", "run-a", 1.0), "schema_version": SCHEMA_VERSION + 1}],
            "newer than this convbench",
            id="newer-major",
        ),
        pytest.param(
            [{**result_row("resnet50", "resnet50", "run-a", 1.0), "schema_version": "v2"}],
            "not a version number",
            id="garbled-version",
        ),
        pytest.param(
            [
                result_row("resnet50", "resnet50", "run-a", 1.0),
                {**result_row("resnet18", "resnet50", "run-a", 1.2), "schema_version": None},
            ],
            "a measurement but no schema_version",
            id="measured-row-without-version",
        ),
    ],
)
def test_rows_that_disagree_with_their_schema_are_refused_in_one_line(tmp_path, rows, fragment):
    """Fails if a cut or edited file, or one from a newer convbench, is merged as if it were current."""
    bad = tmp_path / "bad.csv"
    write_rows(bad, rows)
    out = tmp_path / "m.csv"
    with pytest.raises(UserInputError, match=fragment):
        merge_files([bad], out)
    line = error_line(runner.invoke(app, ["merge", str(bad), "-o", str(out)]))
    assert "bad.csv" in line and fragment in line
    assert not out.exists()


def test_a_file_of_published_lines_only_is_no_result_file(tmp_path):
    only = tmp_path / "published.csv"
    only.write_text("table,method,model,schema_version,speedup_published\nt,ResNet50,,,1.2\n")
    with pytest.raises(UserInputError, match="no row with a schema_version"):
        merge_files([only], tmp_path / "m.csv")
