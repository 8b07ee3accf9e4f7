"""reproduce: published and measured values side by side, per-row baselines, resume, and CLI bad input.

The library tests time models of known speed (the runtime is replaced); the CLI test times PyTorch eager on tiny
CIFAR models with the fewest runs and asserts no timing."""

import math
import random
from dataclasses import replace

import pandas as pd
import pytest
from typer.testing import CliRunner

from convbench.benchmark import BenchmarkConfig
from convbench.cli.main import app
from convbench.papers.reproduce import LEADING, reproduce
from convbench.papers.tables import COLUMNS, parse_table
from convbench.runtimes.base import PreparedModel
from convbench.runtimes.torch_cpu import TorchCPU
from convbench.timing.measure import TimingSettings

FAST = TimingSettings(warmup=1, warmup_time=0, runs=3, min_time=0)
CONFIG = BenchmarkConfig(runtime="torch", threads=1, isolate="session", trials=2, timing=FAST)
TABLE_TEXT = (
    "# key: fixture\n# paper: cnn-mod\n# title: two CIFAR baselines\n# source: s\n# units: u\n# counting: c\n"
    + ",".join(COLUMNS)
    + "\n"
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


# Known latencies (seconds): the per-row speed-ups are 2.0 (ResNet18-MoD over ResNet18) and 3.0 (VGG16-BN-MoD
# over VGG16-BN); a speed-up over the wrong baseline would show (VGG16-BN-MoD over ResNet18: 4.0).
LATENCY = {
    "resnet18-cifar10": 0.004,
    "resnet18-mod-cifar10": 0.002,
    "vgg16-bn-cifar10": 0.003,
    "vgg16-bn-mod-cifar10": 0.001,
}


class KnownLatency(PreparedModel):
    def __init__(self, seconds):
        self.seconds, self.rng = seconds, random.Random(seconds)

    def timed_run(self):
        return self.seconds * (1 + 0.01 * self.rng.random())


@pytest.fixture
def known_latencies(monkeypatch):
    """The torch runtime replaced by models of known speed (counting stays real): these tests are about which
    rows are measured, reused and divided by which baseline, not about timing. The CLI test below times for real."""
    prepared = []

    def prepare(self, model, settings, options):
        prepared.append((model.name, settings.batch_size))
        return KnownLatency(LATENCY[model.name])

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    return prepared


def test_side_by_side_lines_with_per_row_baselines(table, tmp_path, known_latencies):
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
    assert rows["ResNet18-MoD"]["speedup"] == pytest.approx(2.0, rel=0.02)
    assert rows["VGG16-BN-MoD"]["speedup"] == pytest.approx(3.0, rel=0.02)
    assert rows["VGG16-BN-MoD"]["verdict"] == "faster" and rows["VGG16-BN"]["verdict"] == "baseline"
    # every model timed once per trial, baselines included, in one interleaved run
    assert sorted(known_latencies) == sorted([(m, 1) for m in table.models] * CONFIG.trials)
    assert rows["ResNet18-MoD"]["params_match"] and rows["ResNet18"]["params_match"]
    assert rows["ResNet18-MoD"]["speedup_published"] == 1.88  # the CPU column on --device cpu
    assert rows["ResNet18"]["top1_std_published"] == 0.08


def test_a_second_run_measures_nothing_new_and_force_measures_again(table, tmp_path, known_latencies):
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


def test_missing_rows_are_measured_with_their_baseline(table, tmp_path, known_latencies):
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


def test_other_settings_are_measured_again_and_kept_beside(table, tmp_path, known_latencies):
    out = tmp_path / "fixture.csv"
    reproduce(table, CONFIG, output=out, only=["resnet18-mod*"])
    other = replace(CONFIG, batch_size=(2,))
    result = reproduce(table, other, output=out, only=["resnet18-mod*"])
    assert len(result.measured) == 2
    frame = pd.read_csv(out)
    assert sorted(frame["batch_size"].tolist()) == [1, 1, 2, 2]
    assert {batch for _, batch in known_latencies} == {1, 2}
    # A runtime option is part of the settings a line was measured with; trial and timing counts are not.
    compiled = reproduce(table, replace(CONFIG, runtime_args=(("compile", True),)), output=out, only=["resnet18-mod*"])
    assert len(compiled.measured) == 2
    more_trials = replace(CONFIG, trials=3, timing=TimingSettings(warmup=2, warmup_time=0, runs=5, min_time=0))
    again = reproduce(table, more_trials, output=out, only=["resnet18-mod*"])
    assert again.measured == [] and sorted(again.reused) == ["resnet18-cifar10", "resnet18-mod-cifar10"]
    assert len(pd.read_csv(out)) == 6


runner = CliRunner()


def invoke(*args, code=0):
    """Run the CLI; a non-zero ``code`` must come from the CLI's own exit (SystemExit), not an escaped exception."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    if code:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    else:
        assert result.exception is None, repr(result.exception)
    return result


def test_cli_reproduces_a_cifar_table_and_plots_it(tmp_path):
    out = tmp_path / "c.csv"
    args = [
        "reproduce",
        "mod-cifar10",
        "--only",
        "vgg16*",
        "--runtime",
        "torch",
        "--threads",
        "1",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--warmup-time",
        "0",
        "--min-time",
        "0",
        "--trials",
        "2",
        "--isolate",
        "session",
        "-o",
        out,
    ]
    result = invoke(*args)
    assert "published only" in result.output.lower() and "VGG16-BN-MoD" in result.output
    assert "measured 2 model(s), reused 0" in result.output
    frame = pd.read_csv(out)
    # Counted the paper's way by default (CNN-MoD's GMAC columns read as mac+).
    assert set(frame["macs_convention"].dropna()) == {"mac+"}
    assert set(frame["trials"].dropna()) == {2}
    result = invoke(*args)
    assert "measured 0 model(s), reused 2" in result.output
    invoke("plot", out, "-o", tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and (tmp_path / "p.svg").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "mod-imagnet"], "did you mean mod-imagenet"),
        (["reproduce", "mod-cifar10", "--only", "resnet999*"], "matches no model of table"),
        (["reproduce", "mod-cifar10", "--runs", "0"], "--runs must be at least 1"),
        (["reproduce", "mod-cifar10", "--device", "tpu"], "--device must be one of cpu, cuda"),
        (["reproduce", "mod-cifar10", "--convention", "flops"], "--convention must be one of"),
        (["reproduce", "mod-cifar10", "-b", "1,2"], "reproduce measures one batch size and one resolution"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    result = invoke(*args, code=2)
    assert message in result.stderr


def test_cli_unwritable_or_wrong_output(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    result = invoke("reproduce", "mod-cifar10", "-o", folder, code=2)
    assert "it is a directory" in result.stderr
    result = invoke("reproduce", "mod-cifar10", "-o", tmp_path / "r.json", code=2)
    assert "reproduce writes CSV" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("just,some\n1,2\n")
    result = invoke("reproduce", "mod-cifar10", "-o", bad, code=1)
    assert "no 'model' column" in result.stderr
    assert bad.read_text() == "just,some\n1,2\n"


def test_every_line_says_how_its_latency_was_taken():
    """Fails when a batched line's per-image time is not the batch time over the batch, or the convention is
    not stated (a GPU reproduction at batch 64 would then read as batch-1 latency)."""
    from convbench.benchmark import BenchmarkConfig
    from convbench.papers.reproduce import _line, timing_convention
    from convbench.papers.tables import load_table

    table = load_table("mod-imagenet")
    row = table.row_for("resnet75-mod")
    plan = BenchmarkConfig(batch_size=(64,), threads=1).plan()
    line = _line(table, row, {"model": "resnet75-mod", "median_ms": 128.0, "params_m": 23.1}, plan, {})
    assert line["timing_convention"] == timing_convention(64) and "64" in line["timing_convention"]
    assert line["per_image_ms"] == 2.0
    assert "one image" in timing_convention(1)
