"""plot: the Pareto front, PNG and SVG from result files, published top-1 joined by model name, bad input."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from convbench.cli.main import app
from convbench.papers.tables import published_top1
from convbench.results.plot import load_points, output_paths, pareto_front, plot


def test_pareto_front_on_a_known_set():
    costs = [1.0, 2.0, 3.0, 2.5, 4.0, 1.0, 5.0]
    accs = [70.0, 72.0, 71.0, 75.0, 75.0, 69.0, 76.0]
    # Index 2 is beaten by 1, 4 by 3 (same accuracy, cheaper), 5 by 0 (same cost, more accurate).
    assert pareto_front(costs, accs) == [0, 1, 3, 6]
    assert pareto_front([1.0], [50.0]) == [0]
    assert pareto_front([], []) == []


def _compare_like(tmp_path):
    rows = []
    for runtime, scale in (("onnxruntime", 1.0), ("torch", 1.8)):
        for model, family, ms, gmacs, base in (
            ("resnet50", "resnet", 40.0, 4.1, "resnet50"),
            ("resnet75-mod", "mod", 33.0, 3.5, "resnet50"),
            ("resnet50-mod", "mod", 27.0, 2.6, "resnet50"),
            ("resnet50-compconv128", "compconv", 30.0, 1.0, "resnet50"),
        ):
            rows.append(
                {
                    "run_id": "r",
                    "model": model,
                    "family": family,
                    "device": "cpu",
                    "runtime": runtime,
                    "threads": 1,
                    "batch_size": 1,
                    "median_ms": ms * scale,
                    "gmacs": gmacs,
                    "baseline": base,
                }
            )
    path = tmp_path / "compare.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_plot_writes_png_and_svg_with_one_panel_row_per_runtime(tmp_path):
    path = _compare_like(tmp_path)
    result = plot(path, tmp_path / "pareto.png")
    assert [p.name for p in result.paths] == ["pareto.png", "pareto.svg"]
    assert all(p.stat().st_size > 1000 for p in result.paths)
    assert len(result.panels) == 2 and result.points == 6
    assert any("resnet50-compconv128" in n for n in result.notes)  # no published top-1: skipped with a note
    assert any("joined by model name" in n for n in result.notes)


def test_published_top1_prefers_the_table_covering_most_models():
    found = published_top1(["resnet50", "resnet75-mod", "resnet50-mod"])
    sources = {src for _, src in found.values()}
    # mod-imagenet and mod-lk both hold all three models: one of them supplies every figure.
    assert len(sources) == 1 and sources <= {"mod-imagenet", "mod-lk"}
    assert {model: top1 for model, (top1, _) in found.items()} == {
        "resnet50": 76.25,
        "resnet75-mod": 76.27,
        "resnet50-mod": 74.79,
    }
    assert found["resnet50"][0] == 76.25  # MoD's ResNet50, not KernelWarehouse's 300-epoch 78.44
    assert published_top1(["resnet50"], table="kw-resnet50")["resnet50"] == (78.44, "kw-resnet50")


def test_baselines_are_marked(tmp_path):
    panels, _ = load_points(_compare_like(tmp_path))
    points = next(iter(panels.values()))
    assert {p.model for p in points if p.baseline} == {"resnet50"}


def test_output_paths_share_a_stem(tmp_path):
    assert [p.name for p in output_paths(tmp_path / "a.svg")] == ["a.png", "a.svg"]
    assert [p.name for p in output_paths(tmp_path / "fig")] == ["fig.png", "fig.svg"]


runner = CliRunner()


@pytest.mark.parametrize("content", ["model,median_ms\nresnet50,3\n", "a,b\n1,2\n", '\x00\x01garbage\n"unclosed'])
def test_cli_bad_result_files_are_one_line(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = runner.invoke(app, ["plot", str(bad), "-o", str(tmp_path / "p.png")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "p.svg").exists()


def test_cli_missing_file_and_wrong_suffix(tmp_path):
    result = runner.invoke(app, ["plot", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "no result file" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    path = _compare_like(tmp_path)
    result = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "p.pdf")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "PNG and SVG" in result.stderr and len(result.stderr.strip().splitlines()) == 1
