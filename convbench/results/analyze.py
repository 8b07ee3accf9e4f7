"""How well MACs predict measured latency: a linear fit per runtime, its rank correlation, and the outliers.

Efficient-CNN papers report FLOPs or MACs as a proxy for speed; whether the proxy holds is an empirical
question per runtime and device ("ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
Ma et al., 2018, shows FLOPs diverging from speed). For every (runtime, device, threads, batch size) in the
result files this fits ``latency = a * GMACs + b`` by least squares (on relative residuals, so a model of 0.05
GMACs counts as much as one of 5) over the models measured there, and reports

- Spearman's rank correlation between GMACs and latency (does more compute mean slower, in order?), with
  its p-value; rank correlation because a proxy is mostly used to rank models, and it ignores the fit's form;
- the median absolute percentage error of the fit (MdAPE; the median, so one outlier does not dominate);
- the models furthest off the fit, relative to their latency, with measured / predicted: the models whose
  latency MACs explain least (memory-bound layers, dynamic routing, operators the runtime fuses poorly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.errors import UserInputError
from convbench.results.files import check_writable, is_blank, read_rows

MIN_MODELS = 3
WORST = 5
GROUP_KEYS = ("runtime", "device", "threads", "batch_size")
# Above this ratio of largest to smallest GMACs the plot uses log-log axes, or the small models are one dot.
LOG_RANGE = 20.0


@dataclass(frozen=True)
class ModelPoint:
    """One model of a group: its count, its measured latency and what the group's fit predicts."""

    model: str
    family: str
    gmacs: float
    measured_ms: float
    predicted_ms: float

    @property
    def ratio(self) -> float:
        """measured / predicted; NaN where the fit predicts no positive latency."""
        return self.measured_ms / self.predicted_ms if self.predicted_ms > 0 else float("nan")

    @property
    def relative_residual(self) -> float:
        return abs(self.measured_ms - self.predicted_ms) / self.measured_ms


@dataclass
class FitResult:
    """The fit of latency on GMACs over the models of one (runtime, device, threads, batch size)."""

    runtime: str
    device: str
    threads: int | None
    batch_size: int | None
    points: list[ModelPoint]
    slope_ms_per_gmac: float  # a in latency = a * GMACs + b
    intercept_ms: float  # b: the latency no MAC explains (launch, framework overhead)
    origin_slope_ms_per_gmac: float  # the fit through the origin, latency = a0 * GMACs
    r_squared: float
    spearman: float
    spearman_p: float
    mdape: float  # median absolute percentage error of the linear fit, in percent
    label: str = ""

    @property
    def models(self) -> int:
        return len(self.points)

    @property
    def worst(self) -> list[ModelPoint]:
        """The models furthest off the fit relative to their latency, worst first."""
        return sorted(self.points, key=lambda p: -p.relative_residual)[:WORST]


class FitResults(list[FitResult]):
    """The fits, plus notes on what was left out (groups with too few models, rows skipped)."""

    def __init__(self, fits: Sequence[FitResult] = (), notes: Sequence[str] = ()) -> None:
        super().__init__(fits)
        self.notes: list[str] = list(notes)


@dataclass
class _Group:
    key: tuple[Any, ...]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> latest row


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if math.isfinite(number) else None


def _usable(row: dict[str, Any]) -> bool:
    if not is_blank(row.get("error")):
        return False
    latency, gmacs = _number(row.get("median_ms")), _number(row.get("gmacs"))
    return math.isfinite(latency) and latency > 0 and math.isfinite(gmacs) and gmacs > 0


def _later(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether ``new`` was measured after ``old``: by timestamp where both have one, else by reading order."""
    a, b = new.get("timestamp"), old.get("timestamp")
    if isinstance(a, str) and isinstance(b, str) and a and b:
        return a >= b
    return True


def _group_label(key: tuple[Any, ...], keys: Sequence[tuple[Any, ...]]) -> str:
    runtime, device, threads, batch = key
    label = f"{runtime}/{device}"
    # Threads and batch size only when they tell this group from another of the same runtime and device.
    if sum(1 for k in keys if k[:2] == key[:2]) > 1:
        label += f" ({threads} threads, batch {batch})"
    return label


def load_groups(paths: Sequence[Path]) -> tuple[list[_Group], list[str]]:
    """The usable rows of ``paths`` grouped by (runtime, device, threads, batch size), one per model."""
    groups: dict[tuple[Any, ...], _Group] = {}
    notes: list[str] = []
    skipped = 0
    for path in paths:
        rows = read_rows(Path(path))
        missing = [c for c in ("model", "median_ms", "gmacs") if rows and c not in rows[0]]
        if missing:
            raise UserInputError(
                f"{path} has no {', '.join(missing)} column; analyze needs measured latency and "
                "GMACs (a profile, compare or reproduce result file)"
            )
        for row in rows:
            if not _usable(row):
                skipped += 1
                continue
            key = (
                str(row.get("runtime", "?")),
                str(row.get("device", "?")),
                _whole(row.get("threads")),
                _whole(row.get("batch_size")),
            )
            group = groups.setdefault(key, _Group(key))
            model = str(row["model"])
            if model not in group.rows or _later(row, group.rows[model]):
                group.rows[model] = row
    if skipped:
        notes.append(f"{skipped} row(s) without a successful measurement or a MAC count were skipped")
    return list(groups.values()), notes


def fit_group(key: tuple[Any, ...], rows: Sequence[dict[str, Any]], label: str = "") -> FitResult:
    """``latency = a * GMACs + b`` over ``rows`` (one per model, at least two) by least squares on relative
    residuals, with its errors."""
    import numpy as np
    from scipy import stats

    x = np.array([_number(r["gmacs"]) for r in rows])
    y = np.array([_number(r["median_ms"]) for r in rows])
    # Least squares on relative residuals, (y - a*x - b) / y: latencies span orders of magnitude, and on absolute
    # residuals the largest models alone would decide the line (their milliseconds dwarf the small models'),
    # leaving every small model "off the fit". Relative residuals are also what MdAPE and the ranking measure.
    weights = 1.0 / y
    design = np.column_stack([x, np.ones_like(x)]) * weights[:, None]
    (slope, intercept), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    origin_slope = float((x * weights).sum() / ((x * weights) ** 2).sum())
    predicted = slope * x + intercept
    total = float(((y - y.mean()) ** 2).sum())
    r_squared = 1.0 - float(((y - predicted) ** 2).sum()) / total if total > 0 else float("nan")
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        rho, p_value = stats.spearmanr(x, y)
    else:  # a constant column has no ranks to correlate
        rho, p_value = float("nan"), float("nan")
    mdape = float(np.median(np.abs(y - predicted) / y) * 100)
    points = [
        ModelPoint(
            str(r["model"]), "" if is_blank(r.get("family")) else str(r["family"]), float(xi), float(yi), float(pi)
        )
        for r, xi, yi, pi in zip(rows, x, y, predicted, strict=True)
    ]
    runtime, device, threads, batch = key
    return FitResult(
        runtime=runtime,
        device=device,
        threads=threads,
        batch_size=batch,
        points=points,
        slope_ms_per_gmac=float(slope),
        intercept_ms=float(intercept),
        origin_slope_ms_per_gmac=origin_slope,
        r_squared=r_squared,
        spearman=float(rho),
        spearman_p=float(p_value),
        mdape=mdape,
        label=label or f"{runtime}/{device}",
    )


def analyze(paths: Sequence[Path]) -> FitResults:
    """Fit latency on GMACs per (runtime, device, threads, batch size) over the models in ``paths``.

    Groups with fewer than three models are skipped with a note; if none has three, that is an error naming
    each group and how many models it has.
    """
    if not paths:
        raise UserInputError("analyze needs at least one result file")
    groups, notes = load_groups(paths)
    if not groups:
        names = ", ".join(str(p) for p in paths)
        raise UserInputError(f"no successful measurement with a latency and a MAC count in {names}")
    keys = [g.key for g in groups]
    labels = {g.key: _group_label(g.key, keys) for g in groups}
    small = [g for g in groups if len(g.rows) < MIN_MODELS]
    if len(small) == len(groups):
        counts = ", ".join(f"{labels[g.key]} has {len(g.rows)}" for g in small)
        raise UserInputError(f"analyze needs at least three models per runtime; {counts}")
    notes += [f"{labels[g.key]} skipped: {len(g.rows)} model(s), analyze needs at least {MIN_MODELS}" for g in small]
    fits = [fit_group(g.key, list(g.rows.values()), labels[g.key]) for g in groups if len(g.rows) >= MIN_MODELS]
    return FitResults(fits, notes)


def fit_rows(results: Sequence[FitResult]) -> list[dict[str, Any]]:
    """One row per (group, model): measured, predicted, their ratio, and the group's fit and correlation."""
    rows = []
    for fit in results:
        for p in sorted(fit.points, key=lambda p: p.gmacs):
            rows.append(
                {
                    "runtime": fit.runtime,
                    "device": fit.device,
                    "threads": fit.threads,
                    "batch_size": fit.batch_size,
                    "model": p.model,
                    "family": p.family,
                    "gmacs": p.gmacs,
                    "measured_ms": p.measured_ms,
                    "predicted_ms": p.predicted_ms,
                    "ratio": p.ratio,
                    "relative_residual": p.relative_residual,
                    "slope_ms_per_gmac": fit.slope_ms_per_gmac,
                    "intercept_ms": fit.intercept_ms,
                    "origin_slope_ms_per_gmac": fit.origin_slope_ms_per_gmac,
                    "r_squared": fit.r_squared,
                    "spearman": fit.spearman,
                    "spearman_p": fit.spearman_p,
                    "mdape_pct": fit.mdape,
                    "models": fit.models,
                }
            )
    return rows


def write_fit_csv(results: Sequence[FitResult], path: Path) -> Path:
    """Write ``fit_rows(results)`` to ``path`` (CSV, or JSON by suffix), replacing what was there."""
    from convbench.results.files import write_rows

    return write_rows(path, fit_rows(results), append=False, schema=False)


def plot_fit(results: Sequence[FitResult], rows: Sequence[dict[str, Any]] | None, output: Path) -> list[Path]:
    """Latency against GMACs, one panel per group, one colour per family, the fitted line; PNG and SVG.

    ``rows`` (the result rows, optional) supply the family of models whose fit points lack one.
    """
    from convbench.results.plot import output_paths

    if not results:
        raise UserInputError("nothing to plot: no group has enough models")
    targets = output_paths(output)
    for target in targets:
        check_writable(target)
    families_by_model = {str(r.get("model")): str(r["family"]) for r in rows or () if not is_blank(r.get("family"))}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    def family(p: ModelPoint) -> str:
        return p.family or families_by_model.get(p.model, "other")

    families = sorted({family(p) for fit in results for p in fit.points})
    cmap = plt.get_cmap("tab10")
    colours = {f: cmap(i % 10) for i, f in enumerate(families)}
    columns = min(len(results), 2)
    rows_n = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(
        rows_n, columns, figsize=(7.5 * columns, 5.2 * rows_n + 1.0), squeeze=False, layout="constrained"
    )
    for ax, fit in zip(axes.flat, results, strict=False):
        x = np.array([p.gmacs for p in fit.points])
        for p in fit.points:
            ax.scatter(
                p.gmacs, p.measured_ms, color=colours[family(p)], s=45, edgecolors="black", linewidths=0.5, zorder=3
            )
        wide = x.max() / x.min() > LOG_RANGE
        # On log axes a straight line with an intercept is a curve: draw it through many points.
        grid = np.geomspace(x.min(), x.max(), 200) if wide else np.linspace(0, x.max() * 1.05, 200)
        line = fit.slope_ms_per_gmac * grid + fit.intercept_ms
        keep = line > 0
        ax.plot(
            grid[keep],
            line[keep],
            color="black",
            linewidth=1.2,
            zorder=2,
            label=f"{fit.slope_ms_per_gmac:.3g} ms/GMAC × GMACs {fit.intercept_ms:+.3g} ms",
        )
        if wide:
            ax.set_xscale("log")
            ax.set_yscale("log")
        for p in fit.worst[:3]:
            ax.annotate(
                f"{p.model} ({p.ratio:.2f}×)",
                (p.gmacs, p.measured_ms),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7.5,
                zorder=4,
            )
        ax.set_title(
            f"{fit.label}: {fit.models} models, Spearman ρ = {fit.spearman:.3f}, MdAPE {fit.mdape:.1f}%", fontsize=10
        )
        ax.set_xlabel("GMACs per image")
        ax.set_ylabel(f"median latency (ms), batch {fit.batch_size}")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(results) :]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), frameon=False)
    fig.suptitle(
        "Measured latency against GMACs: least-squares fit (relative error) per runtime; labels: measured / predicted",
        fontsize=12,
    )
    from convbench.results.plot import save_figure

    return save_figure(fig, targets)
