"""analyze: latency against GMACs per runtime, on synthetic result files with a known answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbench.errors import UserInputError
from convbench.results.analyze import analyze, fit_rows, plot_fit, write_fit_csv
from convbench.results.files import read_rows, write_rows


def _row(model: str, gmacs: float, ms: float, runtime: str = "onnxruntime", **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "family": model.split("-")[0],
        "runtime": runtime,
        "device": "cpu",
        "threads": 1,
        "batch_size": 1,
        "gmacs": gmacs,
        "median_ms": ms,
        "error": "",
        **extra,
    }


def _linear(runtime: str = "onnxruntime", n: int = 6) -> list[dict[str, object]]:
    # latency = 2 ms/GMAC * GMACs + 0.5 ms, exactly
    return [_row(f"net{i}-m", 0.1 * (i + 1) ** 2, 2.0 * 0.1 * (i + 1) ** 2 + 0.5, runtime) for i in range(n)]


def test_perfect_linear_relation(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "r.csv", _linear())
    [fit] = analyze([path])
    assert fit.models == 6
    assert fit.spearman == pytest.approx(1.0)
    assert fit.mdape == pytest.approx(0.0, abs=1e-9)
    assert fit.slope_ms_per_gmac == pytest.approx(2.0)
    assert fit.intercept_ms == pytest.approx(0.5)
    assert fit.r_squared == pytest.approx(1.0)
    assert all(p.ratio == pytest.approx(1.0) for p in fit.points)


def test_two_models_is_a_one_line_error(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "r.csv", _linear(n=2))
    with pytest.raises(UserInputError) as info:
        analyze([path])
    message = str(info.value)
    assert message == "analyze needs at least three models per runtime; onnxruntime/cpu has 2"
    assert "\n" not in message


def test_small_group_is_skipped_with_a_note_when_another_qualifies(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "r.csv", _linear() + _linear("torch", n=2))
    fits = analyze([path])
    assert [f.runtime for f in fits] == ["onnxruntime"]
    assert any("torch/cpu" in note and "2 model" in note for note in fits.notes)


def test_worst_models_pick_the_planted_outlier(tmp_path: Path) -> None:
    rows = _linear(n=8)
    rows[3] = {**rows[3], "model": "slow-outlier", "median_ms": float(rows[3]["median_ms"]) * 3}  # type: ignore[arg-type]
    path = write_rows(tmp_path / "r.csv", rows)
    [fit] = analyze([path])
    assert fit.worst[0].model == "slow-outlier"
    assert fit.worst[0].ratio > 1.5
    assert len(fit.worst) == 5
    assert fit.spearman < 1.0


def test_error_rows_skipped_and_latest_row_per_model_wins(tmp_path: Path) -> None:
    rows = _linear()
    stale = {**rows[0], "median_ms": 100.0, "timestamp": "2024-01-01T00:00:00+00:00"}
    fresh = {**rows[0], "timestamp": "2025-01-01T00:00:00+00:00"}
    failed = _row("broken-m", 1.0, float("nan"), error="export failed")
    write_rows(tmp_path / "old.csv", [stale, failed])
    write_rows(tmp_path / "new.csv", [fresh, *rows[1:]])
    # The newer measurement wins whichever file is read first.
    fits = analyze([tmp_path / "new.csv", tmp_path / "old.csv"])
    assert fits[0].mdape == pytest.approx(0.0, abs=1e-9)
    assert "broken-m" not in {p.model for p in fits[0].points}
    assert any("skipped" in note for note in fits.notes)


def test_fit_csv_and_plot(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "r.csv", _linear() + _linear("openvino"))
    fits = analyze([path])
    out = write_fit_csv(fits, tmp_path / "fit.csv")
    written = read_rows(out)
    assert len(written) == 12 == len(fit_rows(fits))
    assert {"measured_ms", "predicted_ms", "ratio", "spearman", "mdape_pct"} <= set(written[0])
    images = plot_fit(fits, read_rows(path), tmp_path / "fit.png")
    assert [p.suffix for p in images] == [".png", ".svg"]
    assert all(p.stat().st_size > 0 for p in images)
