"""Run specs (expansion, sharding, bad specs) and merging result files from several runs and machines."""

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from result_rows import result_row
from typer.testing import CliRunner

from convbench.benchmark.runspec import Job, load_spec, parse_shard, select_shard
from convbench.cli.main import app
from convbench.errors import UserInputError
from convbench.results.files import SCHEMA_VERSION, read_rows, write_rows
from convbench.results.merge import merge_files

runner = CliRunner()
MODELS = '["resnet18-cifar10", "resnet18-mod-cifar10"]'


def write_spec(directory: Path, body: str, name: str = "spec.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def sweep_spec(tmp_path):
    return write_spec(
        tmp_path,
        f"""
        output = "{tmp_path / "out.csv"}"

        [defaults]
        threads = 1
        trials = 1
        isolate = "session"

        [[job]]
        models = {MODELS}
        runtime = ["onnxruntime", "torch"]
        batch_size = [1, 8]
    """,
    )


# Expansion ---------------------------------------------------------------------------------------------


def test_list_valued_options_expand_into_jobs_in_a_deterministic_order(sweep_spec, tmp_path):
    spec = load_spec(sweep_spec)
    combos = [(job.config.runtime, job.config.batch_size) for job in spec.jobs]
    assert combos == [("onnxruntime", (1,)), ("onnxruntime", (8,)), ("torch", (1,)), ("torch", (8,))]
    assert [job.index for job in spec.jobs] == [1, 2, 3, 4]
    for job in spec.jobs:
        assert [m.label for m in job.models] == ["resnet18-cifar10", "resnet18-mod-cifar10"]
        assert job.config.threads == 1 and job.config.trials == 1 and job.config.isolate == "session"
    assert spec.output == tmp_path / "out.csv"
    again = load_spec(sweep_spec)
    assert [j.describe() for j in again.jobs] == [j.describe() for j in spec.jobs]


def test_jobs_follow_the_file_order_and_a_job_overrides_the_defaults(tmp_path):
    path = write_spec(
        tmp_path,
        f"""
        [defaults]
        threads = 2
        [[job]]
        models = {MODELS}
        batch_size = [4, 2]
        [[job]]
        models = ["resnet18-cifar10"]
        threads = 1
        model_arg = ["num_classes=7"]
    """,
    )
    jobs = load_spec(path).jobs
    assert [(j.index, j.config.batch_size, j.config.threads) for j in jobs] == [
        (1, (4,), 2),
        (2, (2,), 2),
        (3, (1,), 1),
    ]
    assert jobs[2].models[0].args == (("num_classes", 7),)


# Sharding ----------------------------------------------------------------------------------------------


def _jobs(n: int) -> list[Job]:
    return [Job(i, (), None) for i in range(1, n + 1)]  # type: ignore[arg-type]


@pytest.mark.parametrize("n_jobs", [1, 4, 7, 12])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_shards_partition_the_jobs(n_jobs, count):
    jobs = _jobs(n_jobs)
    shards = [select_shard(jobs, i, count) for i in range(1, count + 1)]
    seen = [job.index for shard in shards for job in shard]
    assert sorted(seen) == [j.index for j in jobs]  # every job once: none lost, none in two shards
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    for shard in shards:
        assert [j.index for j in shard] == sorted(j.index for j in shard)


def test_shards_of_a_loaded_spec_partition_its_jobs(sweep_spec):
    jobs = load_spec(sweep_spec).jobs
    for count in range(1, 6):
        union = [job.index for i in range(1, count + 1) for job in select_shard(jobs, i, count)]
        assert sorted(union) == [1, 2, 3, 4] and len(union) == len(set(union))


def test_parse_shard_accepts_i_of_n():
    assert parse_shard("1/1") == (1, 1)
    assert parse_shard("2/8") == (2, 8)
    assert parse_shard("8/8") == (8, 8)


@pytest.mark.parametrize("text", ["3/2", "0/4", "x", "1/0", "2", "/2", "1/", "-1/2", "1/2/3", "a/b"])
def test_parse_shard_refuses_bad_text(text):
    with pytest.raises(UserInputError, match="--shard") as info:
        parse_shard(text)
    assert repr(text) in str(info.value)


def test_dry_run_lists_only_the_shards_jobs(sweep_spec, tmp_path):
    result = invoke("run", sweep_spec, "--dry-run", "--shard", "1/2")
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("job ")]
    assert [line.split(":")[0] for line in listed] == ["job 1", "job 3"]
    assert "batch_size=1" in listed[0] and "runtime=onnxruntime" in listed[0]
    assert "runtime=torch" in listed[1]
    assert not (tmp_path / "out.csv").exists()


def test_run_with_a_bad_shard_is_a_one_line_error(sweep_spec, tmp_path):
    line = one_line_error(invoke("run", sweep_spec, "--shard", "3/2"))
    assert "--shard" in line and "'3/2'" in line
    assert not (tmp_path / "out.csv").exists()


# Bad specs ---------------------------------------------------------------------------------------------


BAD_SPECS = {
    "unparsable": ('[[job]\nmodels = ["resnet18-cifar10"]\n', ["cannot parse"]),
    "unknown model": (
        f'[[job]]\nmodels = {MODELS}\n[[job]]\nmodels = ["resnet18-cifar10", "nosuch-net"]\n',
        ["job 2", "'nosuch-net'"],
    ),
    "unknown option": (f"[[job]]\nmodels = {MODELS}\nwarmups = 3\n", ["job 1", "'warmups'"]),
    "unknown option in defaults": (f"[defaults]\nbogus = 1\n[[job]]\nmodels = {MODELS}\n", ["'bogus'"]),
    "invalid value": (f"[[job]]\nmodels = {MODELS}\ntrials = 0\n", ["job 1", "--trials"]),
    "no jobs": ("[defaults]\nthreads = 1\n", ["[[job]]"]),
    "models not a list": ('[[job]]\nmodels = "resnet18-cifar10"\n', ["job 1", "models"]),
    "unknown top-level key": (f'outptu = "x.csv"\n[[job]]\nmodels = {MODELS}\n', ["'outptu'"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_is_one_line_naming_the_file(tmp_path, case):
    body, fragments = BAD_SPECS[case]
    path = write_spec(tmp_path, body, name="bad.toml")
    with pytest.raises(UserInputError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_a_missing_spec_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="no run spec"):
        load_spec(tmp_path / "absent.toml")


@pytest.mark.parametrize("case", ["unparsable", "unknown model", "unknown option"])
def test_a_bad_spec_through_the_cli_exits_2_and_writes_nothing(tmp_path, monkeypatch, case):
    body, fragments = BAD_SPECS[case]
    out = tmp_path / "out.csv"
    path = write_spec(tmp_path, f'output = "{out}"\n' + body, name="bad.toml")
    monkeypatch.chdir(tmp_path)  # the default results/run.csv would land here
    line = one_line_error(invoke("run", path))
    assert "bad.toml" in line
    for fragment in fragments:
        assert fragment in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


# Merging -----------------------------------------------------------------------------------------------


@pytest.fixture
def two_runs(tmp_path):
    first = tmp_path / "machine-a.csv"
    second = tmp_path / "machine-b.json"
    write_rows(
        first,
        [
            result_row("resnet50", "resnet50", "run-a", 1.0, cpu="Intel Xeon", host="host-a"),
            result_row("resnet75-mod", "resnet50", "run-a", 1.4, cpu="Intel Xeon", host="host-a"),
        ],
    )
    write_rows(
        second,
        [
            result_row("resnet18", "resnet18", "run-b", 1.0, cpu="AMD EPYC", host="host-b", git_commit="def5678"),
            result_row("resnet75-mod", "resnet18", "run-b", 0.6, cpu="AMD EPYC", host="host-b", git_commit="def5678"),
        ],
    )
    return first, second


def test_merge_keeps_every_row_with_its_environment(two_runs, tmp_path):
    first, second = two_runs
    out = tmp_path / "merged.csv"
    merged = merge_files([first, second], out)
    assert (merged.rows, merged.machines, merged.runs) == (4, 2, 2)
    frame = pd.read_csv(out)
    assert frame["model"].tolist() == ["resnet50", "resnet75-mod", "resnet18", "resnet75-mod"]
    assert frame["cpu"].tolist() == ["Intel Xeon"] * 2 + ["AMD EPYC"] * 2
    assert frame["host"].tolist() == ["host-a"] * 2 + ["host-b"] * 2
    assert frame["git_commit"].tolist() == ["abc1234"] * 2 + ["def5678"] * 2
    assert frame["run_id"].tolist() == ["run-a"] * 2 + ["run-b"] * 2
    assert frame["source_file"].tolist() == [str(first)] * 2 + [str(second)] * 2
    # Without --speedup-vs, each run's own speed-ups stay as measured.
    assert frame["speedup"].tolist() == pytest.approx([1.0, 1.4, 1.0, 0.6])
    assert frame["baseline"].tolist() == ["resnet50", "resnet50", "resnet18", "resnet18"]


def test_merge_through_the_cli_to_json(two_runs, tmp_path):
    out = tmp_path / "merged.json"
    result = invoke("merge", *two_runs, "-o", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and {r["host"] for r in rows} == {"host-a", "host-b"}
    assert "2 machine(s)" in result.output and "2 run(s)" in result.output


def test_speedup_vs_keeps_speedups_of_runs_that_had_the_baseline_and_clears_the_others(two_runs, tmp_path):
    out = tmp_path / "merged.csv"
    merged = merge_files(list(two_runs), out, speedup_vs="resnet50")
    rows = read_rows(out)
    run_a = [r for r in rows if r["run_id"] == "run-a"]
    run_b = [r for r in rows if r["run_id"] == "run-b"]
    assert [r["speedup"] for r in run_a] == pytest.approx([1.0, 1.4])
    assert [r["speedup_low"] for r in run_a] == pytest.approx([0.9, 1.26])
    for row in run_b:
        for column in ("speedup", "speedup_low", "speedup_high", "speedup_trial_min", "speedup_trial_max", "p_value"):
            assert pd.isna(row[column]), (row["model"], column)
        assert row["baseline"] == "resnet50"
        assert "resnet50 was not timed in this row's run" in row["speedup_note"]
    assert all(pd.isna(r.get("speedup_note")) for r in run_a)
    assert any("2 row(s) keep" in n for n in merged.notes)
    assert any("2 row(s) get no speed-up over resnet50" in n for n in merged.notes)


def test_speedup_vs_through_the_cli_prints_why(two_runs, tmp_path):
    out = tmp_path / "merged.csv"
    result = invoke("merge", *two_runs, "-o", out, "--speedup-vs", "resnet18")
    assert result.exit_code == 0, result.output
    assert "note: 2 row(s) get no speed-up over resnet18" in result.output
    frame = pd.read_csv(out)
    assert frame.loc[frame.run_id == "run-b", "speedup"].tolist() == pytest.approx([1.0, 0.6])
    assert frame.loc[frame.run_id == "run-a", "speedup"].isna().all()


def test_merge_reads_the_previous_schema_with_a_note(two_runs, tmp_path):
    """Fails when a bumped schema makes merge refuse the files written by the version before it."""
    old = tmp_path / "old.csv"
    write_rows(old, [{**result_row("resnet50", "resnet50", "run-c", 1.0, cpu="cpu", host="h"), "schema_version": 2}])
    merged = merge_files([two_runs[0], old], tmp_path / "merged.csv")
    assert any("schema 2" in note and "cuda_peak_allocated_mb" in note for note in merged.notes)
    frame = pd.read_csv(tmp_path / "merged.csv")
    assert sorted(frame.schema_version.unique()) == [2, SCHEMA_VERSION]


def test_merge_refuses_a_schema_it_cannot_read(two_runs, tmp_path):
    old = tmp_path / "old.csv"
    write_rows(old, [{**result_row("resnet50", "resnet50", "run-c", 1.0, cpu="cpu", host="h"), "schema_version": 1}])
    out = tmp_path / "merged.csv"
    with pytest.raises(UserInputError, match="schema version 1"):
        merge_files([two_runs[0], old], out)
    assert not out.exists()
    line = one_line_error(invoke("merge", two_runs[0], old, "-o", out))
    assert "old.csv" in line and "schema version" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "content",
    [
        "model,median_ms\nresnet50,1.5\n",  # no schema_version: an older or foreign file
        "name,latency\nresnet50,1.5\n",  # not a result file at all
        "",
    ],
)
def test_merge_refuses_a_csv_that_is_not_a_convbench_file(two_runs, tmp_path, content):
    foreign = tmp_path / "foreign.csv"
    foreign.write_text(content)
    out = tmp_path / "merged.csv"
    with pytest.raises(UserInputError) as info:
        merge_files([two_runs[0], foreign], out)
    assert "foreign.csv" in str(info.value) and "\n" not in str(info.value)
    line = one_line_error(invoke("merge", two_runs[0], foreign, "-o", out))
    assert "foreign.csv" in line
    assert not out.exists()


def test_merge_refuses_a_missing_file_and_an_unknown_output_format(two_runs, tmp_path):
    with pytest.raises(UserInputError, match="no result file"):
        merge_files([two_runs[0], tmp_path / "absent.csv"], tmp_path / "m.csv")
    with pytest.raises(UserInputError, match="suffix"):
        merge_files(list(two_runs), tmp_path / "m.xlsx")
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "m.xlsx").exists()


def test_merge_keeps_textual_environment_values_exactly(tmp_path):
    source = tmp_path / "r.csv"
    write_rows(
        source,
        [
            result_row("resnet50", "resnet50", "run-a", 1.0, cpu="cpu", host="1001", git_commit="0123456"),
            result_row("resnet18", "resnet50", "run-a", 1.0, cpu="cpu", host="1001", git_commit="1234e56"),
        ],
    )
    out = tmp_path / "merged.json"
    merge_files([source], out)
    rows = json.loads(out.read_text())
    assert [r["git_commit"] for r in rows] == ["0123456", "1234e56"]
    assert [r["host"] for r in rows] == ["1001", "1001"]
