"""The CLI end to end through Typer's runner, including every kind of bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from convbench.cli.main import app

runner = CliRunner()
FAST = [
    "--runs",
    "3",
    "--min-time",
    "0",
    "--warmup",
    "1",
    "--warmup-time",
    "0",
    "--threads",
    "1",
    "--trials",
    "2",
    "--isolate",
    "session",
]


def invoke(*args, code=0):
    """Run the CLI and check how it ended: ``code`` 0 with no exception, else that exit code given by the CLI
    itself (a ``SystemExit``): an exception escaping a command also exits non-zero, but as that exception."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.exception is None, result.exception
    else:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def one_line_error(result, message):
    """The error is one line on stderr, saying ``message``; nothing else is printed."""
    assert message in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout.strip() == ""


def test_list_shows_models_with_family_and_paper():
    result = invoke("list", "resnet*-mod")
    assert "resnet75-mod" in result.output and "cnn-mod" in result.output


def test_list_shows_the_published_top1_with_its_table():
    result = invoke("list", "resnet18-kw-1x")
    assert "74.77 (kw-resnet18)" in result.output


def test_count_prints_gmacs_params_and_uncounted_ops():
    result = invoke("count", "resnet18-mod-cifar10", "--by-module")
    for text in ("GMACs", "params (M)", "topk", "layer1", "1 MAC = 1 multiply-add"):
        assert text in result.output


def test_export_writes_a_verified_file(tmp_path):
    target = tmp_path / "m.onnx"
    # the torchscript exporter is the quicker one; profile below goes through the default (dynamo)
    result = invoke("export", "resnet18-mod-cifar10", "--exporter", "torchscript", "-o", target)
    assert target.exists() and "max |ONNX − PyTorch|" in result.output


@pytest.mark.slow  # the default path, dynamo export included
def test_profile_writes_one_csv_row(tmp_path):
    out = tmp_path / "p.csv"
    invoke("profile", "resnet18-mod-cifar10", *FAST, "-o", out)
    frame = pd.read_csv(out)
    assert frame["model"].tolist() == ["resnet18-mod-cifar10"]
    assert frame.loc[0, "runtime"] == "onnxruntime" and frame.loc[0, "threads"] == 1
    assert frame.loc[0, "trials"] == 2 and frame.loc[0, "n_runs"] >= 2 * 3 and frame.loc[0, "median_ms"] > 0
    assert json.loads(frame.loc[0, "model_args"]) == {"impl": "index-embed"}  # the default is recorded


def test_compare_writes_json_rows_with_speedup(tmp_path):
    out = tmp_path / "c.json"
    result = invoke(
        "compare", "resnet18-cifar10", "resnet18-mod-cifar10", *FAST, "--exporter", "torchscript", "-o", out
    )
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["resnet18-cifar10", "resnet18-mod-cifar10"]
    assert rows[0]["speedup"] == pytest.approx(1.0)
    assert rows[1]["theoretical_speedup"] > 1.5
    assert rows[1]["speedup_low"] <= rows[1]["speedup"] <= rows[1]["speedup_high"]
    assert rows[0]["run_id"] == rows[1]["run_id"] and rows[0]["trials"] == 2
    assert {r["runtime"] for r in rows} == {"onnxruntime"} and {r["exporter"] for r in rows} == {"torchscript"}
    assert "speed-up" in result.output


def test_profile_with_the_torch_runtime_and_no_save(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("profile", "vgg16-bn-cifar10", "--runtime", "torch", *FAST, "--no-save")
    assert "torch on cpu" in result.output
    assert not (tmp_path / "results").exists()


def test_model_arguments_reach_the_builder_and_the_row(tmp_path):
    out = tmp_path / "p.csv"
    invoke(
        "profile", "resnet18-mod-cifar10", "--runtime", "torch", *FAST, "--model-arg", "impl=gather-concat", "-o", out
    )
    row = pd.read_csv(out).iloc[0]
    assert row["model"] == "resnet18-mod-cifar10[impl=gather-concat]"
    assert json.loads(row["model_args"]) == {"impl": "gather-concat"}
    assert row["model_origin"] == "resnet18-mod-cifar10" and row["model_source"] == "registry"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["count", "resnet75-mdo"], "did you mean resnet75-mod"),
        (["profile", "nonsense-net", *FAST], "unknown model"),
        (["profile", "resnet18-cifar10", "--batch-size", "0"], "--batch-size must be between 1 and 65536, got 0"),
        (["profile", "resnet18-cifar10", "-b", "1,,2"], "--batch-size takes whole numbers separated by commas"),
        (["profile", "resnet18-cifar10", "--threads", "0"], "--threads must be between 1 and 1024, got 0"),
        (["profile", "resnet18-cifar10", "--threads", "2000"], "--threads must be between 1 and 1024, got 2000"),
        (["profile", "resnet18-cifar10", "--runs", "0"], "--runs must be at least 1"),
        (["profile", "resnet18-cifar10", "--trials", "0"], "--trials must be between 1 and 1000"),
        (["profile", "resnet18-cifar10", "--isolate", "thread"], "--isolate must be one of process, session"),
        (["profile", "resnet18-cifar10", "--resolution", "0"], "--resolution must be between"),
        (["profile", "resnet18-cifar10", "--runtime", "tensorrt"], "--runtime must be one of"),
        (["profile", "resnet18-cifar10", "--format", "xml"], "unknown format"),
        (["profile", "resnet18-cifar10", "-o", "r.xlsx"], "cannot tell the format of 'r.xlsx'"),
        (["profile", "resnet18-cifar10", "--model-arg", "impl"], "--model-arg takes key=value"),
        (["profile", "resnet18-cifar10", "--model-arg", "impl=index-embed"], "takes no argument 'impl'"),
        (["compare", "resnet18-cifar10"], "at least two models"),
        (["count", "resnet18-cifar10", "--convention", "thop"], "--convention must be one of"),
        (["export", "resnet18-cifar10", "--exporter", "tf"], "--exporter must be one of"),
        (["list", "zzz*"], "no registered model"),
        (["count", "resnet18-mod-cifar10", "--model-arg", "impl=nope"], "unknown MoD implementation 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, code=2)
    one_line_error(result, message)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written


def test_an_unknown_implementation_is_a_one_line_error(tmp_path):
    result = invoke(
        "profile",
        "resnet18-mod-cifar10",
        "--runtime",
        "torch",
        *FAST,
        "--model-arg",
        "impl=nope",
        "-o",
        tmp_path / "r.csv",
        code=2,
    )
    one_line_error(result, "unknown MoD implementation 'nope'; choose from gather-concat")
    assert not (tmp_path / "r.csv").exists()


def test_a_removed_option_is_a_usage_error():
    result = invoke("profile", "resnet18-mod-cifar10", "--mod-impl", "gather-concat", code=2)
    assert "No such option" in result.output and "--mod-impl" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_missing_is_a_clear_error():
    result = invoke("profile", "resnet18-cifar10", "--device", "cuda", code=2)
    one_line_error(result, "CUDA is not available")


def test_unwritable_output_fails_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("profile", "resnet18-cifar10", *FAST, "-o", blocker / "r.csv", code=2)
    one_line_error(result, "cannot write")
    assert "median" not in result.output  # nothing was measured


@pytest.mark.parametrize("command", ["profile", "export"])
def test_output_into_a_path_that_cannot_be_created(command):
    target = "/proc/convbench-test/r.csv" if command == "profile" else "/proc/convbench-test/m.onnx"
    result = invoke(command, "resnet18-cifar10", *(FAST if command == "profile" else []), "-o", target, code=2)
    one_line_error(result, "cannot write /proc/convbench-test/")


def test_corrupted_result_file_is_not_overwritten(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text('garbage\x00,\n"unterminated')
    result = invoke("profile", "resnet18-cifar10", "--runtime", "torch", *FAST, "-o", out, code=1)
    assert "cannot read result file" in result.stderr
    assert out.read_text() == 'garbage\x00,\n"unterminated'


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "convbench", "list", "vgg16*"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "vgg16-bn-cifar10" in done.stdout


def test_sweep_and_raw_samples_from_the_cli(tmp_path):
    out, raw = tmp_path / "sweep.csv", tmp_path / "raw.csv"
    invoke(
        "profile",
        "resnet18-cifar10",
        "--runtime",
        "torch",
        *FAST,
        "-b",
        "1,2",
        "--resolution",
        "16,32",
        "-o",
        out,
        "--save-samples",
        raw,
    )
    frame = pd.read_csv(out)
    assert sorted(zip(frame.batch_size, frame.resolution, strict=True)) == [(1, 16), (1, 32), (2, 16), (2, 32)]
    long = pd.read_csv(raw)
    assert set(long.columns) >= {"model", "trial", "batch_size", "resolution", "run", "latency_ms"}
    # every combination, every trial, at least the requested runs
    per = long.groupby(["batch_size", "resolution", "trial"]).size()
    assert len(per) == 4 * 2 and (per >= 3).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "1,x"], "whole numbers"),
        (
            ["--cuda-graphs"],
            "--cuda-graphs is not an option of runtime onnxruntime on cpu; it applies to torch on cuda",
        ),
        (["--precision", "fp16"], "--precision fp16 is not supported by runtime onnxruntime on cpu"),
        (["--compile"], "--compile is not an option of runtime onnxruntime on cpu"),
        (["--runtime", "torch", "--ort-optimization", "basic"], "--ort-optimization is not an option of runtime torch"),
        (["--ort-optimization", "fastest"], "--ort-optimization must be one of all, extended, basic, disabled"),
        (["--op-profile", "--runtime", "openvino"], "--op-profile: runtime openvino on cpu has no operator profiler"),
    ],
)
def test_bad_runtime_options_are_one_line_errors(args, message):
    result = invoke("profile", "resnet18-cifar10", *args, code=2)
    one_line_error(result, message)


def test_op_profile_prints_operator_table():
    result = invoke("profile", "resnet18-mod-cifar10", *FAST, "--exporter", "torchscript", "--no-save", "--op-profile")
    assert "time per operator type" in result.output and "Conv" in result.output
    assert "ONNX Runtime's own profiler" in result.output and "nodes per forward pass" in result.output


def test_op_profile_on_torch_uses_torch_profiler():
    """Fails if --op-profile on the torch runtime is refused or silently profiles ONNX Runtime instead."""
    result = invoke("profile", "resnet18-mod-cifar10", *FAST, "--runtime", "torch", "--no-save", "--op-profile")
    assert "torch.profiler" in result.output and "aten::topk" in result.output
    assert "operator calls per forward pass" in result.output


def test_peak_precision_the_runtime_lacks_is_a_one_line_error():
    result = invoke("peak", "--runtime", "onnxruntime", "--precision", "bf16", "--size", "64", code=2)
    one_line_error(result, "peak --precision bf16: runtime onnxruntime on cpu here multiplies in fp32")


def test_export_to_an_unwritable_path_fails_before_exporting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("export", "resnet18-cifar10", "-o", blocker / "m.onnx", code=2)
    assert result.stderr.strip().startswith("error: cannot write")
    one_line_error(result, "cannot write")
