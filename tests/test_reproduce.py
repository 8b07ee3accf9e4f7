"""reproduce: published and measured values side by side, per-row baselines, resume, and CLI bad input.

Timed with PyTorch eager on tiny CIFAR models and the fewest runs; no test asserts a timing."""

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from convbench.benchmark import BenchmarkConfig
from convbench.cli import app
from convbench.measure import TimingSettings
from convbench.papers.tables import COLUMNS, parse_table
from convbench.reproduce import LEADING, reproduce

FAST = TimingSettings(warmup=0, warmup_time=0, runs=3, min_time=0)
CONFIG = BenchmarkConfig(runtime="torch", threads=1, timing=FAST)
TABLE_TEXT = (
    "# key: fixture\n# paper: cnn-mod\n# title: two CIFAR baselines\n# source: s\n# units: u\n# counting: c\n"
    + ",".join(COLUMNS) + "\n"
    "resnet18-cifar10,ResNet18,cifar10,94.04,0.08,,11.17,557,M,15.67,0.24,,,resnet18-cifar10,cnn-mod,Table 9,T9,\n"
    "resnet18-mod-cifar10,ResNet18-MoD,cifar10,92.37,,,4.95,255,M,8.32,0.14,1.88,1.73,resnet18-cifar10,cnn-mod,"
    "Table 9,T9,\n"
    "vgg16-bn-cifar10,VGG16-BN,cifar10,93.27,,,15.25,315,M,8.80,0.14,,,vgg16-bn-cifar10,cnn-mod,Table 9,T9,\n"
    "vgg16-bn-mod-cifar10,VGG16-BN-MoD,cifar10,91.79,,,,,,5.47,0.16,1.61,0.87,vgg16-bn-cifar10,cnn-mod,Table 9,T9,\n"
    ",Other method,cifar10,90.00,,,1.00,100,M,,,,,,cnn-mod,Table 9,T9,published only\n"
)


@pytest.fixture
def table():
    return parse_table(TABLE_TEXT, "fixture.csv")


def test_side_by_side_lines_with_per_row_baselines(table, tmp_path):
    out = tmp_path / "fixture.csv"
    result = reproduce(table, CONFIG, output=out)
    assert sorted(result.measured) == sorted(table.models) and result.reused == []
    frame = pd.read_csv(out)
    assert list(frame.columns[: len(LEADING)]) == list(LEADING)
    assert frame["method"].tolist() == [r.method for r in table.rows]
    assert len(set(frame["run_id"].dropna())) == 1  # one interleaved run
    rows = {r["method"]: r for r in frame.to_dict("records")}
    other = rows["Other method"]
    assert math.isnan(other["median_ms"]) and other["top1_published"] == 90.0
    for method, base in (("ResNet18-MoD", "ResNet18"), ("VGG16-BN-MoD", "VGG16-BN")):
        row, base_row = rows[method], rows[base]
        assert row["baseline"] == base_row["model"]
        assert row["baseline_median_ms"] == pytest.approx(base_row["median_ms"])
        assert row["speedup"] == pytest.approx(base_row["median_ms"] / row["median_ms"])
        assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
        assert row["theoretical_speedup"] == pytest.approx(base_row["gmacs"] / row["gmacs"])
        assert base_row["speedup"] == pytest.approx(1.0)
    assert rows["ResNet18-MoD"]["params_match"] and rows["ResNet18"]["params_match"]
    assert rows["ResNet18-MoD"]["speedup_published"] == 1.88  # the CPU column on --device cpu
    assert rows["ResNet18"]["top1_std_published"] == 0.08


def test_a_second_run_measures_nothing_new_and_force_measures_again(table, tmp_path):
    out = tmp_path / "fixture.csv"
    first = reproduce(table, CONFIG, output=out)
    before = pd.read_csv(out)
    again = reproduce(table, CONFIG, output=out)
    assert again.measured == [] and sorted(again.reused) == sorted(table.models)
    after = pd.read_csv(out)
    assert after["run_id"].tolist() == before["run_id"].tolist() and len(after) == len(before)
    forced = reproduce(table, CONFIG, output=out, force=True)
    assert sorted(forced.measured) == sorted(first.measured)
    assert len(pd.read_csv(out)) == len(before)  # lines replaced, not duplicated


def test_missing_rows_are_measured_with_their_baseline(table, tmp_path):
    out = tmp_path / "fixture.csv"
    part = reproduce(table, CONFIG, output=out, only=["resnet18-mod*"])
    assert sorted(part.measured) == ["resnet18-cifar10", "resnet18-mod-cifar10"]
    assert [line["method"] for line in part.lines] == ["ResNet18", "ResNet18-MoD"]
    rest = reproduce(table, CONFIG, output=out)
    assert sorted(rest.measured) == ["vgg16-bn-cifar10", "vgg16-bn-mod-cifar10"]
    assert sorted(rest.reused) == ["resnet18-cifar10", "resnet18-mod-cifar10"]
    # Only the baseline was measured before: the row is measured with a fresh baseline in the same run.
    out2 = tmp_path / "again.csv"
    reproduce(table, CONFIG, output=out2, only=["vgg16-bn-cifar10"])
    more = reproduce(table, CONFIG, output=out2, only=["vgg16-bn-mod*"])
    assert sorted(more.measured) == ["vgg16-bn-cifar10", "vgg16-bn-mod-cifar10"]
    lines = {line["model"]: line for line in more.lines}
    assert lines["vgg16-bn-mod-cifar10"]["run_id"] == lines["vgg16-bn-cifar10"]["run_id"]


def test_other_settings_are_measured_again_and_kept_beside(table, tmp_path):
    out = tmp_path / "fixture.csv"
    reproduce(table, CONFIG, output=out, only=["resnet18-mod*"])
    other = BenchmarkConfig(runtime="torch", threads=1, batch_size=2, timing=FAST)
    result = reproduce(table, other, output=out, only=["resnet18-mod*"])
    assert len(result.measured) == 2
    frame = pd.read_csv(out)
    assert sorted(frame["batch_size"].tolist()) == [1, 1, 2, 2]


runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_cli_reproduces_a_cifar_table_and_plots_it(tmp_path):
    out = tmp_path / "c.csv"
    args = ["reproduce", "mod-cifar10", "--only", "vgg16*", "--runtime", "torch", "--threads", "1", "--runs", "3",
            "--warmup", "0", "--warmup-time", "0", "--min-time", "0", "-o", out]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "published only" in result.output.lower() and "VGG16-BN-MoD" in result.output
    assert "measured 2 model(s), reused 0" in result.output
    result = invoke(*args)
    assert result.exit_code == 0 and "measured 0 model(s), reused 2" in result.output
    result = invoke("plot", out, "-o", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").stat().st_size > 0 and (tmp_path / "p.svg").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "mod-imagnet"], "did you mean mod-imagenet"),
        (["reproduce", "mod-cifar10", "--only", "resnet999*"], "matches no model of table"),
        (["reproduce", "mod-cifar10", "--runs", "0"], "--runs must be at least 1"),
        (["reproduce", "mod-cifar10", "--device", "tpu"], "unknown device"),
        (["reproduce", "mod-cifar10", "--convention", "flops"], "unknown counting convention"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_unwritable_or_wrong_output(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    result = invoke("reproduce", "mod-cifar10", "-o", folder)
    assert result.exit_code == 2 and "it is a directory" in result.output
    result = invoke("reproduce", "mod-cifar10", "-o", tmp_path / "r.json")
    assert result.exit_code == 2 and "reproduce writes CSV" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("just,some\n1,2\n")
    result = invoke("reproduce", "mod-cifar10", "-o", bad)
    assert result.exit_code == 1 and "no 'model' column" in result.output
