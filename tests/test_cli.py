"""The CLI end to end through Typer's runner, including every kind of bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from convbench.cli import app

runner = CliRunner()
FAST = ["--runs", "3", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--threads", "1"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_list_shows_models_with_family_and_paper():
    result = invoke("list", "resnet*-mod")
    assert result.exit_code == 0
    assert "resnet75-mod" in result.output and "cnn-mod" in result.output


def test_list_shows_the_published_top1_with_its_table():
    result = invoke("list", "resnet18-kw-1x")
    assert result.exit_code == 0
    assert "74.77 (kw-resnet18)" in result.output


def test_count_prints_gmacs_params_and_uncounted_ops():
    result = invoke("count", "resnet18-mod-cifar10", "--by-module")
    assert result.exit_code == 0, result.output
    for text in ("GMACs", "params (M)", "topk", "layer1", "1 MAC = 1 multiply-add"):
        assert text in result.output


def test_export_writes_a_verified_file(tmp_path):
    target = tmp_path / "m.onnx"
    result = invoke("export", "resnet18-mod-cifar10", "-o", target)
    assert result.exit_code == 0, result.output
    assert target.exists() and "max |ONNX − PyTorch|" in result.output


def test_profile_writes_one_csv_row(tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("profile", "resnet18-mod-cifar10", *FAST, "-o", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame["model"].tolist() == ["resnet18-mod-cifar10"]
    assert frame.loc[0, "runtime"] == "onnxruntime" and frame.loc[0, "threads"] == 1
    assert frame.loc[0, "n_runs"] >= 3 and frame.loc[0, "median_ms"] > 0


def test_compare_writes_json_rows_with_speedup(tmp_path):
    out = tmp_path / "c.json"
    result = invoke("compare", "resnet18-cifar10", "resnet18-mod-cifar10", *FAST, "-o", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["resnet18-cifar10", "resnet18-mod-cifar10"]
    assert rows[0]["speedup"] == pytest.approx(1.0)
    assert rows[1]["theoretical_speedup"] > 1.5
    assert rows[1]["speedup_low"] <= rows[1]["speedup"] <= rows[1]["speedup_high"]
    assert "speed-up" in result.output


def test_profile_with_the_torch_runtime_and_no_save(tmp_path):
    result = invoke("profile", "vgg16-bn-cifar10", "--runtime", "torch", *FAST, "--no-save")
    assert result.exit_code == 0, result.output
    assert "torch on cpu" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["count", "resnet75-mdo"], "did you mean resnet75-mod"),
        (["profile", "nonsense-net", *FAST], "unknown model"),
        (["profile", "resnet18-cifar10", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["profile", "resnet18-cifar10", "--threads", "0"], "--threads must be at least 1"),
        (["profile", "resnet18-cifar10", "--runs", "0"], "--runs must be at least 1"),
        (["profile", "resnet18-cifar10", "--resolution", "0"], "--resolution must be between"),
        (["profile", "resnet18-cifar10", "--runtime", "tensorrt"], "unknown runtime"),
        (["profile", "resnet18-cifar10", "--format", "xml"], "unknown format"),
        (["compare", "resnet18-cifar10"], "at least two models"),
        (["count", "resnet18-cifar10", "--convention", "thop"], "unknown counting convention"),
        (["export", "resnet18-cifar10", "--exporter", "tf"], "unknown exporter"),
        (["list", "zzz*"], "no registered model"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_missing_is_a_clear_error():
    result = invoke("profile", "resnet18-cifar10", "--device", "cuda")
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output


def test_unwritable_output_fails_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("profile", "resnet18-cifar10", *FAST, "-o", blocker / "r.csv")
    assert result.exit_code == 2
    assert "cannot write" in result.output
    assert "median" not in result.output  # nothing was measured


def test_corrupted_result_file_is_not_overwritten(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("garbage\x00,\n\"unterminated")
    result = invoke("profile", "resnet18-cifar10", *FAST, "-o", out)
    assert result.exit_code == 1
    assert "cannot read result file" in result.output
    assert out.read_text() == "garbage\x00,\n\"unterminated"


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "convbench", "list", "vgg16*"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "vgg16-bn-cifar10" in done.stdout


def test_sweep_and_raw_samples_from_the_cli(tmp_path):
    out, raw = tmp_path / "sweep.csv", tmp_path / "raw.csv"
    result = invoke("profile", "resnet18-cifar10", "--runtime", "torch", *FAST, "-b", "1,2", "--resolution", "16,32",
                    "-o", out, "--save-samples", raw)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert sorted(zip(frame.batch_size, frame.resolution, strict=True)) == [(1, 16), (1, 32), (2, 16), (2, 32)]
    long = pd.read_csv(raw)
    assert set(long.columns) >= {"model", "batch_size", "resolution", "run", "latency_ms"}
    assert len(long) >= 4 * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "1,x"], "whole numbers"),
        (["--cuda-graphs"], "cuda only"),
        (["--precision", "fp16"], "cuda only"),
        (["--compile"], "--runtime torch only"),
        (["--op-profile", "--runtime", "torch"], "needs --runtime onnxruntime"),
        (["--mod-impl", "nope"], "unknown MoD implementation"),
    ],
)
def test_bad_runtime_options_are_one_line_errors(args, message):
    result = invoke("profile", "resnet18-cifar10", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_op_profile_prints_operator_table():
    result = invoke("profile", "resnet18-mod-cifar10", *FAST, "--no-save", "--op-profile")
    assert result.exit_code == 0, result.output
    assert "time per operator type" in result.output and "Conv" in result.output


def test_export_to_an_unwritable_path_fails_before_exporting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("export", "resnet18-cifar10", "-o", blocker / "m.onnx")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: cannot write")
    assert len(result.output.strip().splitlines()) == 1
