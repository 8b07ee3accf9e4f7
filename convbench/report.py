"""Rendering: rich tables for the terminal and a rich progress display for long steps."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from convbench.counting import CONVENTIONS, CountResult, module_breakdown
from convbench.export import ExportResult
from convbench.models.registry import ModelEntry

# Piped or captured output (files, CI logs, tests) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 220)


class RichProgress:
    """Implements ``convbench.measure.Progress`` with a rich progress bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None
        self.started = False

    def phase(self, description: str, total: int | None) -> None:
        # Started on the first phase, so input errors found before any work leave no empty display behind.
        if not self.started:
            self._progress.start()
            self.started = True
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)


@contextmanager
def progress_display() -> Iterator[RichProgress]:
    columns = (
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    display = RichProgress(Progress(*columns, console=err_console, transient=True))
    try:
        yield display
    finally:
        if display.started:
            display._progress.stop()


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def models_table(entries: Sequence[ModelEntry]) -> Table:
    from convbench.papers.tables import model_top1

    table = Table(title=f"{len(entries)} registered models",
                  caption="top-1: the published figure (its table in parentheses; `convbench tables`), never measured")
    for column in ("model", "family", "paper", "input", "classes", "top-1 %", "description"):
        table.add_column(column, overflow="fold", no_wrap=column == "model")
    for e in entries:
        published = model_top1(e.name, e.paper)
        top1 = f"{published[0]:.2f} ({published[1]})" if published else "—"
        table.add_row(e.name, e.family, e.paper, "×".join(map(str, e.input_size)), str(e.num_classes), top1,
                      e.description)
    return table


def count_table(model: str, result: CountResult) -> Table:
    caption = f"convention {result.convention}: {CONVENTIONS[result.convention].description}"
    table = Table(title=f"{model}: MACs and parameters", caption=caption)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("input", "×".join(map(str, result.input_shape)))
    table.add_row("GMACs (total)", f"{result.gmacs:.4f}")
    table.add_row("conv GMACs (convolutions alone)", f"{result.conv_macs / 1e9:.4f}")
    table.add_row("params (M)", f"{result.mparams:.3f}")
    for op, macs in sorted(result.by_operator.items(), key=lambda kv: -kv[1]):
        if macs:
            table.add_row(f"  {op} GMACs", f"{macs / 1e9:.4f}")
    uncounted = ", ".join(f"{op}×{n}" for op, n in result.uncounted.items()) or "none"
    table.add_row("not counted (ops × calls)", uncounted)
    return table


def module_table(model: str, result: CountResult, max_depth: int) -> Table:
    table = Table(title=f"{model}: per-module breakdown (depth ≤ {max_depth})")
    table.add_column("module")
    table.add_column("GMACs", justify="right")
    table.add_column("% MACs", justify="right")
    table.add_column("params (M)", justify="right")
    for name, macs, params in module_breakdown(result, max_depth):
        indent = "  " * name.count(".")
        share = 100 * macs / result.macs if result.macs else 0.0
        table.add_row(f"{indent}{name}", f"{macs / 1e9:.4f}", f"{share:.1f}", f"{params / 1e6:.3f}")
    return table


def export_table(result: ExportResult) -> Table:
    table = Table(title=f"{result.model}: ONNX export")
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("file", str(result.path))
    table.add_row("input", "×".join(map(str, result.input_shape)))
    table.add_row("exporter / opset", f"{result.exporter} / {result.opset}")
    parity = (
        "not checkable (stochastic model): shape and finiteness only"
        if math.isnan(result.max_abs_diff)
        else f"{result.max_abs_diff:.3g} (tolerance {result.tolerance:.3g})"
    )
    table.add_row("max |ONNX − PyTorch|", parity)
    table.add_row("export time", "cached" if result.cached else f"{result.export_seconds:.1f} s")
    return table


def results_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    """Latency rows; with a baseline, the measured and theoretical speed-ups side by side."""
    first = rows[0]
    measured = next((r for r in rows if not r.get("error")), first)
    caption = (
        f"{first['runtime']} on {first['device']}, {first['threads']} thread(s); latency in ms (median and its "
        f"bootstrap 95% interval) over {measured.get('n_runs', '—')}+ runs; GMACs: {first['macs_convention']} "
        "convention (1 MAC = 1 multiply-add); speed-up = median(baseline) / median(model), Mann–Whitney U p"
    )
    table = Table(title=title, caption=caption)
    compare = any("speedup" in r for r in rows)
    # Convolution MACs get a column only where they differ from the total (dynamic convolutions).
    show_conv = any(abs(r["gmacs"] - r["conv_gmacs"]) > 0.01 * r["gmacs"] for r in rows)
    columns = ["model", "batch", "res", "GMACs", *(["conv G"] if show_conv else []), "params M",
               "median (95% CI)", "IQR", "CV", "img/s"]
    if compare:
        columns += ["speed-up (95% CI)", "p", "MAC speed-up", "realised/MAC", "verdict"]
    for c in columns:
        table.add_column(c, justify="left" if c in ("model", "verdict") else "right", no_wrap=c == "model")
    for r in rows:
        cells = [r["model"], str(r["batch_size"]), str(r["resolution"]), _fmt(r["gmacs"], ".3f"),
                 *([_fmt(r["conv_gmacs"], ".3f")] if show_conv else []), _fmt(r["params_m"], ".2f")]
        if r.get("error"):
            table.add_row(*cells, f"[red]{r['error']}[/]")
            continue
        cv = f"{r['cv']:.1%}" + (" ⚠" if r.get("noisy") else "")
        cells += [
            f"{_fmt(r['median_ms'])} ({_fmt(r['median_low_ms'])}–{_fmt(r['median_high_ms'])})",
            _fmt(r["iqr_ms"]), cv, _fmt(r["throughput_ips"], ".1f"),
        ]
        if compare and "speedup" in r:
            cells += [
                f"{_fmt(r['speedup'])}× ({_fmt(r['speedup_low'])}–{_fmt(r['speedup_high'])})",
                _fmt(r["p_value"], ".2g"), f"{_fmt(r['theoretical_speedup'])}×",
                _fmt(r["speedup"] / r["theoretical_speedup"]), r["verdict"],
            ]
        table.add_row(*cells)
    return table


def noisy_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"warning: {r['model']} timings were noisy ({r['noisy_reason']}); the machine may be busy, "
        "rerun or raise --runs"
        for r in rows
        if r.get("noisy")
    ]


def operator_table(model: str, rows: Sequence[Any]) -> Table:
    """ONNX Runtime per-operator-type time (rows of ``OperatorTime``)."""
    table = Table(title=f"{model}: ONNX Runtime time per operator type (its own profiler)")
    table.add_column("operator")
    table.add_column("ms / run", justify="right")
    table.add_column("share", justify="right")
    table.add_column("nodes", justify="right")
    for r in rows:
        table.add_row(r.op_type, f"{r.ms_per_run:.3f}", f"{r.share:.1%}", str(r.nodes))
    return table
