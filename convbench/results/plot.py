"""Accuracy against cost: published top-1 against measured latency and against GMACs, Pareto front marked.

Works on any result CSV: a ``reproduce`` file carries the published top-1 in ``top1_published``; for ``compare``
and ``profile`` files the top-1 is joined by model name from the packaged paper tables (the table that covers
most of the file's models first). convbench's models have random weights, so the accuracies are always the
papers'; only the costs are measured. One row of panels per device/runtime/threads/batch combination in the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.errors import ConvbenchError, UserInputError
from convbench.papers.accuracy import Accuracy, top1_for
from convbench.results.files import check_writable, is_blank, read_rows

REQUIRED = ("model", "median_ms", "gmacs")
PANEL_KEYS = ("device", "runtime", "threads", "batch_size")


@dataclass
class Point:
    model: str
    family: str
    top1: float
    latency_ms: float
    gmacs: float
    baseline: bool = False
    top1_source: str = "published"


@dataclass
class PlotResult:
    paths: list[Path]
    panels: list[str]
    points: int
    notes: list[str] = field(default_factory=list)


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (cost no higher and accuracy no lower, one strictly), by cost."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
    return front


def _panel_name(row: dict[str, Any]) -> str:
    parts = [str(row.get("runtime", "?")), f"on {row.get('device', '?')}"]
    if not is_blank(row.get("threads")):
        parts.append(f"{int(float(row['threads']))} thread(s)")
    if not is_blank(row.get("batch_size")):
        parts.append(f"batch {int(float(row['batch_size']))}")
    return ", ".join(parts)


def load_points(
    path: Path, table: str | None = None, measured_files: Sequence[Path] | None = None
) -> tuple[dict[str, list[Point]], list[str]]:
    """Points per panel from a result file, and notes on what was skipped."""
    rows = read_rows(path)
    if not rows:
        raise ConvbenchError(f"cannot plot {path}: it has no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ConvbenchError(
            f"cannot plot {path}: it has no column(s) {', '.join(missing)} (plot needs a result file written by "
            "reproduce, compare or profile)"
        )
    notes: list[str] = []
    measured = [
        r
        for r in rows
        if not is_blank(r.get("model")) and not is_blank(r.get("median_ms")) and is_blank(r.get("error"))
    ]
    # A row's own measured top-1 wins; then `convbench evaluate` results; then the published figure (the
    # reproduce file's own column, or the best-matching table).
    joined = top1_for(sorted({str(r["model"]) for r in measured}), table, measured_files)
    if "top1_published" in rows[0] and table is None:
        for r in measured:
            known = joined.get(str(r["model"]))
            if not is_blank(r.get("top1_published")) and (known is None or known.source == "published"):
                joined[str(r["model"])] = Accuracy(float(r["top1_published"]), "published", str(r.get("table", "")))
    for r in measured:
        if not is_blank(r.get("top1_measured")):
            joined[str(r["model"])] = Accuracy(float(r["top1_measured"]), "measured", str(path))
    sources = sorted({a.where for a in joined.values() if a.source == "published" and a.where})
    if sources:
        notes.append(f"published top-1 joined by model name from table(s) {', '.join(sources)}")
    measured_models = sorted(m for m, a in joined.items() if a.source == "measured")
    if measured_models:
        notes.append(f"measured top-1 (convbench evaluate) for {', '.join(measured_models)}")
    panels: dict[str, dict[str, Point]] = {}
    baselines: dict[str, set[str]] = {}
    skipped: list[str] = []
    for r in measured:
        model = str(r["model"])
        accuracy = joined.get(model)
        if accuracy is None:
            skipped.append(model)
            continue
        panel = _panel_name(r)
        # The latest row of a model wins within a panel (result files are appended to).
        panels.setdefault(panel, {})[model] = Point(
            model=model,
            family=str(r.get("family") or "?"),
            top1=accuracy.top1,
            latency_ms=float(r["median_ms"]),
            gmacs=float(r["gmacs"]),
            top1_source=accuracy.source,
        )
        if not is_blank(r.get("baseline")):
            baselines.setdefault(panel, set()).add(str(r["baseline"]))
    out: dict[str, list[Point]] = {}
    for panel, points in panels.items():
        for p in points.values():
            p.baseline = p.model in baselines.get(panel, set())
        out[panel] = list(points.values())
    if skipped:
        notes.append(f"skipped (no measured or published top-1): {', '.join(sorted(set(skipped)))}")
    if not out:
        raise ConvbenchError(f"nothing to plot in {path}: no model has a measured or published top-1")
    return out, notes


def save_figure(fig: Any, targets: Sequence[Path]) -> list[Path]:
    """Write ``fig`` to every target (PNG at 150 dpi, SVG as vectors) and close it; one-line error if it fails."""
    import matplotlib.pyplot as plt

    written = []
    try:
        for target in targets:
            fig.savefig(target, dpi=150 if target.suffix == ".png" else None)
            written.append(target)
    except OSError as exc:
        raise ConvbenchError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return written


def output_paths(output: Path) -> list[Path]:
    """PNG and SVG beside each other: ``pareto.png`` -> ``pareto.png`` and ``pareto.svg``."""
    stem = output.with_suffix("") if output.suffix.lower() in (".png", ".svg") else output
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]


@dataclass
class Drawing:
    """A drawn figure not yet written anywhere, with what it shows."""

    figure: Any
    panels: list[str]
    points: int
    notes: list[str]


def plot(path: Path, output: Path, table: str | None = None, title: str | None = None) -> PlotResult:
    """Draw top-1 against latency and against GMACs for ``path``; write PNG and SVG named after ``output``."""
    targets = output_paths(output)
    for target in targets:
        check_writable(target)
    drawing = draw(path, table, title)
    written = save_figure(drawing.figure, targets)
    return PlotResult(paths=written, panels=drawing.panels, points=drawing.points, notes=drawing.notes)


def draw(path: Path, table: str | None = None, title: str | None = None) -> Drawing:
    """Top-1 against latency and against GMACs for ``path``, one row of panels per setting; the caller saves it."""
    panels, notes = load_points(path, table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({p.family for points in panels.values() for p in points})
    cmap = plt.get_cmap("tab10")
    colours = {f: cmap(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(len(panels), 2, figsize=(14, 4.6 * len(panels) + 1.2), squeeze=False, layout="constrained")
    for row, (panel, points) in enumerate(panels.items()):
        for col, (attr, label) in enumerate(
            (("latency_ms", "measured median latency (ms)"), ("gmacs", "measured GMACs"))
        ):
            _draw(axes[row][col], points, attr, label, colours, f"{panel}: top-1 vs {label.split(' ', 1)[1]}")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
    sources = {p.top1_source for points in panels.values() for p in points}
    if "measured" in sources:
        handles.append(plt.Line2D([], [], marker="s", linestyle="", color="grey", label="top-1 measured"))
    if "published" in sources:
        handles.append(plt.Line2D([], [], marker="o", linestyle="", color="grey", label="top-1 published"))
    handles += [
        plt.Line2D([], [], marker="*", linestyle="", color="grey", markersize=12, label="baseline"),
        plt.Line2D([], [], color="black", linestyle="--", label="Pareto front (higher top-1, lower cost)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False)
    what = " and ".join(sorted(sources))
    heading = title or f"Top-1 ({what}) vs measured cost: {path.name}"
    where = (
        "published top-1 is the papers' (convbench's registry models have random weights); "
        if "published" in sources
        else ""
    )
    origin = "measured top-1 comes from `convbench evaluate`; " if "measured" in sources else ""
    fig.suptitle(f"{heading}\n{where}{origin}latency and MACs are measured by convbench", fontsize=12)
    return Drawing(fig, list(panels), sum(len(p) for p in panels.values()), notes)


def _draw(ax: Any, points: list[Point], attr: str, label: str, colours: dict[str, Any], title: str) -> None:
    from matplotlib import ticker

    costs = [getattr(p, attr) for p in points]
    accs = [p.top1 for p in points]
    for p, cost in zip(points, costs, strict=True):
        marker = "*" if p.baseline else ("s" if p.top1_source == "measured" else "o")
        ax.scatter(
            cost,
            p.top1,
            color=colours[p.family],
            marker=marker,
            s=220 if p.baseline else 60,
            edgecolors="black",
            linewidths=0.6,
            zorder=3,
        )
    front = pareto_front(costs, accs)
    if len(front) > 1:
        ax.step(
            [costs[i] for i in front],
            [accs[i] for i in front],
            where="post",
            color="black",
            linestyle="--",
            linewidth=1.2,
            zorder=2,
        )
    ax.scatter(
        [costs[i] for i in front],
        [accs[i] for i in front],
        s=140,
        facecolors="none",
        edgecolors="black",
        linewidths=1.0,
        zorder=2,
    )
    positive = [c for c in costs if c > 0]
    if positive and max(positive) / min(positive) > 8:
        ax.set_xscale("log")
        plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel(label)
    sources = {p.top1_source for p in points}
    ax.set_ylabel(f"top-1, {' / '.join(sorted(sources))} (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.margins(x=0.18, y=0.1)
    _label(ax, points, costs)


def _label(ax: Any, points: list[Point], costs: list[float]) -> None:
    """Name every point; a label that would sit on an earlier one moves down a line (display coordinates)."""
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling so the data-to-display transform is final enough
    placed: list[tuple[float, float]] = []
    order = sorted(range(len(points)), key=lambda i: (-points[i].top1, costs[i]))
    for i in order:
        p = points[i]
        x, y = ax.transData.transform((costs[i], p.top1))
        dy = 4.0
        while any(abs(x - px) < 140 and abs(y + dy - py) < 13 for px, py in placed):
            dy -= 13
        placed.append((x, y + dy))
        ax.annotate(
            p.model,
            (costs[i], p.top1),
            textcoords="offset points",
            xytext=(6, dy * 72 / ax.figure.dpi),
            fontsize=7.5,
            fontweight="bold" if p.baseline else "normal",
            zorder=4,
        )


def check_output(output: Path) -> None:
    if output.suffix and output.suffix.lower() not in (".png", ".svg"):
        raise UserInputError(f"plot writes PNG and SVG; give -o a .png name, not {output.name!r}")
