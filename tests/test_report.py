"""Terminal tables: whatever the width, no number, interval or verdict is cut, and noise marks sit on their figure."""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from convbench.models.registry import get_entry
from convbench.papers.tables import parse_table
from convbench.results import console as report
from convbench.results.console import models_table, noise_targets, results_view
from convbench.results.files import SPEEDUP_COLUMNS
from convbench.results.tables import reproduce_view

SETTINGS = {
    "runtime": "onnxruntime",
    "device": "cpu",
    "threads": 1,
    "macs_convention": "ptflops",
    "trials": 3,
    "batch_size": 1,
    "resolution": 224,
    "n_runs": 60,
    "noisy": False,
    "noisy_reason": "",
}


def render(renderable: Any, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def assert_fits(text: str, width: int) -> None:
    assert "…" not in text
    too_long = [line for line in text.splitlines() if cell_len(line.rstrip()) > width]
    assert not too_long, too_long


def compare_rows() -> list[dict[str, Any]]:
    timing = {"peak_mb": 412.3, "achieved_gmacs_per_s": 50.9}
    return [
        {
            **SETTINGS,
            **timing,
            "model": "resnet50",
            "gmacs": 4.119,
            "conv_gmacs": 4.09,
            "params_m": 25.56,
            "median_ms": 89.87,
            "median_low_ms": 89.12,
            "median_high_ms": 91.40,
            "iqr_ms": 1.21,
            "cv": 0.021,
            "throughput_ips": 11.1,
            "baseline": "resnet50",
            "speedup": 1.0,
            "speedup_low": 1.0,
            "speedup_high": 1.0,
            "speedup_trial_min": 1.0,
            "speedup_trial_max": 1.0,
            "p_value": 1.0,
            "significant": False,
            "verdict": "baseline",
            "theoretical_speedup": 1.0,
        },
        {
            **SETTINGS,
            **timing,
            "model": "resnet18",
            "gmacs": 2.275,
            "conv_gmacs": 2.27,
            "params_m": 11.69,
            "median_ms": 80.96,
            "median_low_ms": 80.24,
            "median_high_ms": 82.33,
            "iqr_ms": 2.5,
            "cv": 0.31,
            "throughput_ips": 12.4,
            "baseline": "resnet50",
            "speedup": 1.110,
            "speedup_low": 1.096,
            "speedup_high": 1.138,
            "speedup_trial_min": 1.09,
            "speedup_trial_max": 1.14,
            "p_value": 0.08,
            "significant": False,
            "verdict": "no significant difference",
            "theoretical_speedup": 1.81,
            "noisy": True,
            "noisy_reason": "trial 2: CV 31% > 10%",
        },
        {
            **SETTINGS,
            "model": "resnet34",
            "gmacs": 3.6,
            "conv_gmacs": 3.6,
            "params_m": 21.8,
            "baseline": "resnet50",
            "error": "RuntimeError: out of memory while allocating the input tensor",
        },
    ]


def profile_rows() -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in SPEEDUP_COLUMNS} for r in compare_rows()]


@pytest.mark.parametrize("width", [80, 120])
def test_compare_keeps_every_figure_and_the_verdict_whole(width):
    text = render(results_view(compare_rows(), "convbench compare resnet50 resnet18 resnet34"), width)
    assert_fits(text, width)
    for figure in (
        "80.96",
        "80.24–82.33",
        "1.110×",
        "1.096–1.138",
        "[1.09–1.14]",
        "1.81×",
        "no significant difference",
        "baseline",
    ):
        assert figure in text
    # Bug guarded: a caption claiming a bootstrap over 3 trials, where the interval is Student's t (timing.stats).
    assert "Student's t over 3 trials" in text and "[min–max] over trials" in text
    # A failed row: marked in the table, its message whole below it.
    assert (
        "error" in text
        and "resnet34: error: RuntimeError: out of memory while allocating the input tensor" in " ".join(text.split())
    )


def test_compare_at_120_columns_keeps_each_interval_on_its_figure_line():
    text = render(results_view(compare_rows(), "compare"), 120)
    assert "80.96 (80.24–82.33)" in text and "1.110× (1.096–1.138)" in text


def test_a_narrow_window_gets_a_block_per_model():
    text = render(results_view(compare_rows(), "compare"), 50)
    assert_fits(text, 50)
    assert "┃" not in text  # no table
    for line in (
        "median ms (95% CI)    80.96 (80.24–82.33)",
        "speed-up (95% CI)     1.110× (1.096–1.138)",
        "verdict               no significant difference",
    ):
        assert line in text
    assert re.search(r"^resnet18 ⚠", text, re.MULTILINE)  # CV is not among the block's fields: the mark is on the name


def test_more_columns_join_as_the_width_allows_and_all_with_wide():
    narrow = render(results_view(compare_rows(), "compare"), 80)
    roomy = render(results_view(compare_rows(), "compare"), 200)
    wide = render(results_view(compare_rows(), "compare", wide=True), 300)
    assert "IQR" not in narrow and "more column(s)" in narrow
    assert "GMACs" in roomy and "CV" in roomy
    for header in ("IQR", "CV", "img/s", "GMAC/s", "trials", "realised", "p"):
        assert header in wide
    assert "more column(s)" not in wide
    blocks = render(results_view(compare_rows(), "compare", wide=True), 80)
    assert_fits(blocks, 80)
    assert "IQR ms" in blocks and "p (Mann–Whitney U)" in blocks


def test_the_cv_mark_sits_on_the_cv_figure_only_of_the_noisy_row():
    text = render(results_view(profile_rows(), "convbench profile"), 160)
    assert_fits(text, 160)
    assert "31.0% ⚠" in text
    assert re.search(r"2\.1%\s*│", text)  # the quiet row has no mark
    assert text.count("⚠") == 2  # the CV figure, and the caption's explanation
    assert "resnet18 ⚠" not in text


def test_drift_marks_the_median_and_machine_signals_the_model():
    rows = profile_rows()
    rows[0].update(
        noisy=True,
        noisy_reason="trial 1: median drifted -18% between the halves of the run; "
        "trial 2: other processes used 0.90 cores during the timed runs",
    )
    text = render(results_view(rows, "profile"), 160)
    assert "89.87 (89.12–91.40) ⚠" in text and "resnet50 ⚠" in text


def test_noise_reasons_map_to_their_figures():
    reason = (
        "trial 2: CV 31% > 10%; trial 1: median drifted -18% between the halves of the run; "
        "trial 1: other processes used 0.90 cores during the timed runs; "
        "trial 3: this process got only 0.40 cores of CPU time (descheduled)"
    )
    assert noise_targets(reason) == ["cv", "median", "model"]
    assert noise_targets("") == []
    # One line per signal over trials (convbench.timing.noise.summarize_reasons): a CV line must still mark the CV.
    summary = "10/10 trials: CV 28–30% > 10%; 1/10 trials: median drifted -7% between the halves of the run"
    assert noise_targets(summary) == ["cv", "median"]


@pytest.mark.parametrize("width", [80, 120])
def test_profile_fits(width):
    text = render(results_view(profile_rows(), "convbench profile resnet50 resnet18 resnet34"), width)
    assert_fits(text, width)
    for figure in ("4.119", "25.56", "80.96", "80.24–82.33", "12.4", "412", "onnxruntime on cpu"):
        assert figure in text


def test_missing_and_nan_figures_render_as_a_dash():
    row = {**compare_rows()[1], "median_low_ms": float("nan"), "theoretical_speedup": None}
    del row["peak_mb"]
    text = render(results_view([row], "compare"), 120)
    assert_fits(text, 120)
    assert "80.96" in text and "—" in text and "nan" not in text.lower()


TABLE = """\
# key: test-cifar
# paper: cnn-mod
# title: A small table
# source: made up for the tests
# units: top1 %; params M; macs in macs_unit
# counting: as printed
model,method,dataset,top1,top1_std,top5,params_m,macs,macs_unit,cpu_ms,gpu_ms,speedup_cpu,speedup_gpu,baseline,paper,table,source,note
resnet18-cifar10,ResNet18,cifar10,94.04,0.10,,11.17,0.56,G,2.10,,1.00,,resnet18-cifar10,cnn-mod,Table 9,§4,
resnet18-mod-cifar10,ResNet18-MoD,cifar10,92.37,,,11.17,0.34,G,1.40,,1.48,,resnet18-cifar10,cnn-mod,Table 9,§4,
,Some pruning method (needs fine-tuning),cifar10,91.50,,,5.2,0.20,G,,,,,resnet18-cifar10,cnn-mod,Table 9,§4,
"""


def reproduce_lines() -> list[dict[str, Any]]:
    where = {"runtime": "onnxruntime", "device": "cpu", "threads": 1, "batch_size": 1, "macs_convention": "ptflops"}
    base = {
        **where,
        "method": "ResNet18",
        "model": "resnet18-cifar10",
        "baseline": "resnet18-cifar10",
        "top1_published": 94.04,
        "top1_std_published": 0.10,
        "params_m_published": 11.17,
        "gmacs_published": 0.56,
        "latency_ms_published": 2.10,
        "speedup_published": 1.0,
        "params_m": 11.174,
        "params_delta_m": 0.004,
        "params_match": True,
        "gmacs": 0.557,
        "gmacs_delta_pct": -0.5,
        "median_ms": 2.31,
        "speedup": 1.0,
        "speedup_low": 1.0,
        "speedup_high": 1.0,
        "theoretical_speedup": 1.0,
        "verdict": "baseline",
        "noisy": False,
        "noisy_reason": "",
    }
    mod = {
        **base,
        "method": "ResNet18-MoD",
        "model": "resnet18-mod-cifar10",
        "top1_published": 92.37,
        "top1_std_published": None,
        "gmacs_published": 0.34,
        "latency_ms_published": 1.40,
        "speedup_published": 1.48,
        "params_m": 11.263,
        "params_delta_m": 0.093,
        "params_match": False,
        "gmacs": 0.342,
        "median_ms": 1.52,
        "speedup": 1.52,
        "speedup_low": 1.48,
        "speedup_high": 1.55,
        "speedup_trial_min": 1.47,
        "speedup_trial_max": 1.56,
        "theoretical_speedup": 1.63,
        "cv": 0.31,
        "p_value": 0.001,
        "verdict": "faster",
        "noisy": "True",
        "noisy_reason": "trial 1: CV 31% > 10%",
    }
    published_only = {
        **where,
        "method": "Some pruning method (needs fine-tuning)",
        "model": "",
        "baseline": "resnet18-cifar10",
        "top1_published": 91.5,
        "params_m_published": 5.2,
        "gmacs_published": 0.2,
        "median_ms": float("nan"),
        "error": "",
    }
    return [base, mod, published_only]


@pytest.fixture(scope="module")
def table():
    return parse_table(TABLE, "test-cifar.csv")


@pytest.mark.parametrize("width", [80, 120])
def test_reproduce_puts_the_paper_above_the_measurement(table, width):
    text = render(reproduce_view(table, reproduce_lines()), width)
    assert_fits(text, width)
    for figure in (
        "94.04",
        "11.17",
        "11.174",
        "0.56",
        "0.557",
        "1.48",
        "1.52 (1.48–1.55)",
        "1.63",
        "1.00 (baseline)",
        "ResNet18-MoD",
        "paper",
        "meas.",
    ):
        assert figure in text
    assert "(published" in text  # a label, which may wrap
    assert "11.263 ⚠" in text  # params off the printed precision
    assert "PUBLISHED ONLY" in text  # no line has a measured top-1


def test_reproduce_wide_and_narrow(table):
    wide = render(reproduce_view(table, reproduce_lines(), wide=True), 220)
    assert_fits(wide, 220)
    for header in ("Δ", "verdict", "CV", "faster", "31.0% ⚠", "[1.47–1.56]", "±0.10"):
        assert header in wide
    assert re.search(r"1\.52\s+│\s+1\.52 \(1\.48–1\.55\).*31\.0% ⚠", wide)  # the mark is on the measured line
    blocks = render(reproduce_view(table, reproduce_lines()), 50)
    assert_fits(blocks, 50)
    assert "┃" not in blocks
    assert re.search(r"paper\s+convbench", blocks)
    assert re.search(r"speed-up \(95% CI\)\s+1\.48\s+1\.52 \(1\.48–1\.55\)", blocks)
    assert "ResNet18-MoD — resnet18-mod-cifar10 ⚠" in blocks


def test_reproduce_shows_a_measured_top1_where_a_line_has_one(table):
    lines = reproduce_lines()
    lines[1]["top1_measured"] = 91.88
    text = render(reproduce_view(table, lines), 80)
    assert_fits(text, 80)
    assert "91.88" in text and "PUBLISHED ONLY" not in text


@pytest.mark.parametrize("width", [80, 120, 50])
def test_models_table_keeps_names_and_figures_whole(width):
    entries = [get_entry(name) for name in ("resnet18-kw-1x", "resnet18-mod-cifar100", "mobilenetv2-050-kw-0.5x")]
    text = render(models_table(entries), width)
    assert_fits(text, width)
    for figure in ("resnet18-kw-1x", "resnet18-mod-cifar100", "mobilenetv2-050-kw-0.5x", "74.77", "72.73"):
        assert figure in text
    assert "source" not in text  # every entry is convbench's own


def test_models_table_names_a_plugins_source():
    entries = [
        get_entry("resnet18-kw-1x"),
        dataclasses.replace(get_entry("resnet18"), name="tiny-plugin-net", source="plugin convbench-tiny 0.3.1"),
    ]
    for width in (80, 220):
        text = render(models_table(entries), width)
        assert_fits(text, width)
        assert "plugin convbench-tiny 0.3.1" in " ".join(text.split())
    assert "74.77 (kw-resnet18)" in render(models_table(entries), 220)


@pytest.mark.parametrize(
    ("value", "spec", "shown"),
    [
        (float("nan"), ".2f", "—"),
        (None, ".2f", "—"),
        ("", ".2f", "—"),
        ("1.5", ".2f", "1.50"),
        (2, ".1f", "2.0"),
        ("0.125", ".1%", "12.5%"),
        ("n/a", ".2f", "n/a"),
    ],
)
def test_table_cells_show_missing_values_as_a_dash_and_numbers_read_back_as_text_formatted(value, spec, shown):
    """Catches a missing value printed as "nan", "None" or an empty cell, a number that a result file read back
    as text printed unformatted (or raising), and the caller's format spec ignored."""
    assert report.format_number(value, spec) == shown
