"""Every error a user can cause is one line on stderr, exit code 2, no traceback and no file written."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from convbench.cli.main import app

runner = CliRunner()
TINY = [
    "--trials",
    "1",
    "--isolate",
    "session",
    "--runs",
    "1",
    "--min-time",
    "0",
    "--warmup",
    "0",
    "--warmup-time",
    "0",
    "--threads",
    "1",
]
MODEL = "resnet18-cifar10"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory, so a default results/<command>.csv would show up here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_nothing_written(directory: Path, *allowed: str) -> None:
    """No file under ``directory`` but ``allowed`` (an empty results/ folder made by the early writability check
    holds no result)."""
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())
    assert files == sorted(allowed)


# Output paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/proc/convbench-test/x.csv", "/proc/x.csv"])
def test_output_that_cannot_be_created(workdir, target):
    assert_one_line_error(invoke("profile", MODEL, *TINY, "-o", target), "cannot write", target)
    assert not Path(target).exists()
    assert_nothing_written(workdir)


def test_output_under_a_file_cannot_be_created(workdir):
    (workdir / "blocker").write_text("x")
    target = workdir / "blocker" / "r.csv"
    assert_one_line_error(invoke("compare", MODEL, "resnet18-mod-cifar10", *TINY, "-o", target), "cannot write")
    assert (workdir / "blocker").read_text() == "x"


def test_save_samples_that_cannot_be_created(workdir):
    assert_one_line_error(
        invoke("profile", MODEL, *TINY, "--no-save", "--save-samples", "/proc/x/raw.csv"), "cannot write"
    )


@pytest.mark.parametrize("name", ["x.xlsx", "x", "x.csv.bak"])
def test_output_suffix_that_is_neither_csv_nor_json(workdir, name):
    assert_one_line_error(invoke("profile", MODEL, *TINY, "-o", workdir / name), "--format", repr(name))
    assert_nothing_written(workdir)


def test_unknown_format(workdir):
    assert_one_line_error(
        invoke("profile", MODEL, *TINY, "-o", workdir / "x.xlsx", "--format", "xlsx"), "unknown format 'xlsx'"
    )
    assert_nothing_written(workdir)


# Options -----------------------------------------------------------------------------------------------


def test_batch_size_with_an_empty_item(workdir):
    assert_one_line_error(
        invoke("profile", MODEL, *TINY, "--batch-size", "1,,2", "-o", workdir / "r.csv"), "--batch-size", "'1,,2'"
    )
    assert_nothing_written(workdir)


def test_trials_zero(workdir):
    assert_one_line_error(invoke("compare", MODEL, "resnet18-mod-cifar10", "--trials", "0"), "--trials")
    assert_nothing_written(workdir)


def test_unknown_runtime_lists_the_registered_ones(workdir):
    from convbench.runtimes import runtime_names

    line = assert_one_line_error(invoke("profile", MODEL, *TINY, "--runtime", "nonsense"), "'nonsense'")
    for name in runtime_names():
        assert name in line
    assert_nothing_written(workdir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu(workdir):
    assert_one_line_error(invoke("profile", MODEL, *TINY, "--device", "cuda"), "--device cuda", "CUDA", "--device cpu")
    assert_nothing_written(workdir)


def test_shard_out_of_range(workdir):
    spec = workdir / "spec.toml"
    spec.write_text('[[job]]\nmodels = ["resnet18-cifar10"]\n')
    assert_one_line_error(invoke("run", spec, "--shard", "3/2"), "--shard", "'3/2'")
    assert_nothing_written(workdir, "spec.toml")


# Models ------------------------------------------------------------------------------------------------


def test_unknown_model_suggests_the_closest_names(workdir):
    assert_one_line_error(invoke("profile", "resnet5O", *TINY), "unknown model 'resnet5O'", "did you mean", "resnet50")
    assert_nothing_written(workdir)


def test_unknown_model_among_several_is_refused_before_measuring(workdir):
    assert_one_line_error(
        invoke("compare", MODEL, "resnet18-mdo-cifar10", *TINY), "'resnet18-mdo-cifar10'", "resnet18-mod-cifar10"
    )
    assert_nothing_written(workdir)


def test_model_arg_for_an_argument_the_builder_does_not_take(workdir):
    assert_one_line_error(
        invoke("profile", "resnet50", *TINY, "--model-arg", "foo=1"), "'resnet50' takes no argument 'foo'"
    )
    assert_nothing_written(workdir)


@pytest.mark.parametrize("item", ["novalue", "=3", "2x=1"])
def test_model_arg_that_is_not_key_value(workdir, item):
    assert_one_line_error(invoke("profile", MODEL, *TINY, "--model-arg", item), "--model-arg", repr(item))
    assert_nothing_written(workdir)


@pytest.mark.slow  # builds the model (the family's import alone takes seconds)
def test_model_arg_with_an_invalid_value_is_one_line(workdir):
    assert_one_line_error(
        invoke("profile", "resnet75-mod", *TINY, "--model-arg", "impl=nonsense"), "'nonsense'", "gather-concat"
    )
    assert_nothing_written(workdir)


def test_model_arg_errors_also_in_count(workdir):
    assert_one_line_error(invoke("count", "resnet50", "--model-arg", "foo=1"), "takes no argument 'foo'")
    assert_one_line_error(invoke("count", "resnet5O"), "did you mean")
    assert_nothing_written(workdir)


@pytest.mark.slow  # counts the model before it could fail
def test_count_refuses_an_invalid_model_arg_value(workdir):
    assert_one_line_error(invoke("count", "resnet75-mod", "--model-arg", "impl=nonsense"), "'nonsense'")


def test_analyze_of_a_missing_file_exits_2_like_every_other_command(tmp_path):
    """Fails with exit 1: analyze reported a missing file as a failure of valid work, not as bad input."""
    assert_one_line_error(invoke("analyze", tmp_path / "absent.csv"), "no result file", "absent.csv")
