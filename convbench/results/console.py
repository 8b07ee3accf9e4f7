"""Rendering: rich tables for the terminal and a rich progress display for long steps."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderableType, RenderResult
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from convbench.counting.macs import CONVENTIONS, CountResult, module_breakdown
from convbench.export import ExportResult
from convbench.models.registry import ModelEntry
from convbench.results.files import is_blank, truthy

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

    def describe(self, text: str) -> None:
        """Rename the current phase (e.g. to show a rate as it changes)."""
        if self._task is not None:
            self._progress.update(self._task, description=text)


@contextmanager
def progress_display() -> Iterator[RichProgress]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    display = RichProgress(Progress(*columns, console=err_console, transient=True))
    try:
        yield display
    finally:
        if display.started:
            display._progress.stop()


def format_number(value: Any, spec: str = ".2f") -> str:
    if is_blank(value):
        return "—"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        # Rows read back from a result file may hold text where a number was expected.
        return str(value)


WARN = "⚠"
# rich's default table: one border per column plus the closing one, and one space of padding on each side.
_PER_COLUMN, _EDGE = 3, 1


@dataclass
class Col:
    """A column of a ``FittedView``: its formatted cells and how it may be laid out."""

    key: str
    header: str  # "\n" splits it over lines, which keeps a column of short numbers narrow
    cells: list[Text]
    label: str = ""  # its name in the vertical layout; the header on one line when empty
    justify: JustifyMethod = "right"
    wrap: bool = False  # names and descriptions may wrap; numbers and verdicts never do
    floor: int = 12  # narrowest a wrapping column may get once its longest cell no longer fits
    core: bool = False  # always shown; the others join in rank order while they fit
    rank: int = 0
    mark_line: int = 0  # the line of a multi-line cell that carries a noise mark
    in_blocks: bool = True  # shown in the vertical layout

    @property
    def name(self) -> str:
        return self.label or " ".join(self.header.split())


def _cell_width(text: Text | str) -> int:
    plain = text.plain if isinstance(text, Text) else text
    return max((cell_len(line) for line in plain.split("\n")), default=0)


def _with_mark(text: Text, line: int, mark: str = WARN) -> Text:
    lines = list(text.split("\n", allow_blank=True)) or [Text()]
    line = min(line, len(lines) - 1) if line >= 0 else max(line, -len(lines))
    marked = lines[line].copy()
    marked.append(f" {mark}", style="yellow")
    lines[line] = marked
    return Text("\n").join(lines)


def _sentence(text: Text) -> Text:
    return Text(" — ").join(part for part in text.split("\n") if part.plain)


class FittedView:
    """A table that chooses its columns for the width it is printed at, and never cuts a number or a verdict.

    ``layouts`` are alternative column sets, most readable first (an interval beside its value, then below it):
    the first whose core columns fit the width is drawn, with as many optional columns as also fit (all of them
    with ``wide``). Only wrapping columns (names, descriptions) are ever narrowed, down to their ``floor``. When
    nothing fits, each row becomes a small field/value block; ``value_headers`` name the values of a block when
    a cell holds one figure per line (the paper's and the measured one). ``marks`` lists, per row, the keys of
    the columns whose figure set off a noise warning; a mark whose column is not shown goes on the row's name.
    """

    def __init__(
        self,
        title: str,
        caption: str,
        layouts: Sequence[Sequence[Col]],
        marks: Sequence[Sequence[str]] = (),
        wide: bool = False,
        footnotes: Sequence[Text] = (),
        value_headers: Sequence[str] = (),
        hint: str = "a wider window or --wide shows {n} more column(s)",
    ) -> None:
        self.title, self.caption, self.layouts = title, caption, [list(layout) for layout in layouts]
        self.rows = len(self.layouts[0][0].cells)
        self.marks = [list(m) for m in marks] or [[] for _ in range(self.rows)]
        self.wide, self.footnotes, self.value_headers, self.hint = wide, list(footnotes), list(value_headers), hint

    def _marked(self, cols: Sequence[Col]) -> list[list[Text]]:
        index = {c.key: i for i, c in enumerate(cols)}
        cells = [list(c.cells) for c in cols]
        marked: dict[int, set[int]] = {}
        for row, targets in enumerate(self.marks):
            for key in dict.fromkeys(t if t in index else cols[0].key for t in targets):
                i = index[key]
                cells[i][row] = _with_mark(cells[i][row], cols[i].mark_line)
                marked.setdefault(i, set()).add(row)
        # Right-aligned figures stay aligned on their last digit beside a marked one.
        for i, rows in marked.items():
            if cols[i].justify == "right":
                for row in set(range(self.rows)) - rows:
                    cells[i][row] = _with_mark(cells[i][row], cols[i].mark_line, " ")
        return cells

    def _needs(self, cols: Sequence[Col], relaxed: bool) -> list[int]:
        needs = []
        for col, cells in zip(cols, self._marked(cols), strict=True):
            natural = max([_cell_width(col.header), *map(_cell_width, cells)])
            needs.append(min(natural, col.floor) if col.wrap and relaxed else natural)
        return needs

    def _fits(self, cols: Sequence[Col], width: int, relaxed: bool) -> bool:
        return sum(self._needs(cols, relaxed)) + _PER_COLUMN * len(cols) + _EDGE <= width

    def _select(self, layout: list[Col], width: int, relaxed: bool) -> list[Col] | None:
        chosen = {c.key for c in layout if c.core or self.wide}
        if not self._fits([c for c in layout if c.key in chosen], width, relaxed):
            return None
        if not self.wide:
            for extra in sorted((c for c in layout if c.key not in chosen), key=lambda c: c.rank):
                trial = [c for c in layout if c.key in chosen or c is extra]
                if self._fits(trial, width, relaxed):
                    chosen.add(extra.key)
        return [c for c in layout if c.key in chosen]

    def _caption(self, hidden: int) -> str:
        return self.caption + (f"\n{self.hint.format(n=hidden)}" if hidden else "")

    def _widths(self, cols: list[Col], width: int) -> list[int]:
        """Column widths: numbers get all they need, wrapping columns share the rest, least wanting first.

        rich would narrow the widest wrapping column first and could leave a short one (a plugin's source)
        wrapped beside a long description cut down below its floor.
        """
        natural = self._needs(cols, relaxed=False)
        widths = self._needs(cols, relaxed=True)
        spare = width - sum(widths) - _PER_COLUMN * len(cols) - _EDGE
        for i in sorted((i for i, c in enumerate(cols) if c.wrap), key=lambda i: natural[i] - widths[i]):
            grant = max(0, min(spare, natural[i] - widths[i]))
            widths[i] += grant
            spare -= grant
        return widths

    def _table(self, layout: list[Col], cols: list[Col], width: int) -> Table:
        table = Table(
            title=Text(self.title), caption=Text(self._caption(len(layout) - len(cols))), caption_justify="left"
        )
        cells = self._marked(cols)
        for col, need in zip(cols, self._widths(cols, width), strict=True):
            if col.wrap:
                table.add_column(Text(col.header), justify=col.justify, overflow="fold", width=need)
            else:
                # min_width: should rich ever squeeze the table, the line grows instead of a number being cut.
                # (overflow="ignore" would do the same but loses the column's justification.)
                table.add_column(Text(col.header), justify=col.justify, no_wrap=True, min_width=need)
        for row in range(self.rows):
            table.add_row(*(column[row] for column in cells))
        return table

    def _blocks(self, layout: list[Col]) -> Iterator[RenderableType]:
        cols = [c for c in layout if c.core or self.wide]
        cells = self._marked(cols)
        values = max(1, len(self.value_headers))
        yield Text(self.title, style="table.title")
        for row in range(self.rows):
            grid = Table.grid(padding=(0, 2))
            grid.add_column(no_wrap=True)
            for _ in range(values):
                grid.add_column(overflow="fold")
            if self.value_headers:
                grid.add_row("", *(Text(h, style="bold") for h in self.value_headers))
            for col, column in zip(cols[1:], cells[1:], strict=True):
                if not col.in_blocks:
                    continue
                parts = list(column[row].split("\n", allow_blank=True))
                if len(parts) != values:  # one value per line only where the block has a column per line
                    parts = [Text(" ").join(parts)] + [Text()] * (values - 1)
                grid.add_row(Text(col.name, style="dim"), *parts)
            heading = _sentence(cells[0][row])
            heading.stylize("bold")
            yield heading
            yield Padding(grid, (0, 0, 1, 2))
        hidden = 0 if self.wide else len([c for c in layout if not c.core])
        yield Text(self._caption(hidden), style="table.caption")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        # A folded name lengthens its own row only, where a layout with a line per figure lengthens all rows.
        for layout in self.layouts:
            for relaxed in (False, True):
                chosen = self._select(layout, width, relaxed)
                if chosen is not None:
                    yield self._table(layout, chosen, width)
                    yield from self.footnotes
                    return
        yield from self._blocks(self.layouts[0])
        yield from self.footnotes


def _cells(values: Iterable[str], style: str = "") -> list[Text]:
    return [Text(v, style=style) for v in values]


def models_table(entries: Sequence[ModelEntry]) -> FittedView:
    """``convbench list``: the published top-1 beside its table where the width allows, else alone."""
    from convbench.papers.tables import model_top1

    published = [model_top1(e.name, e.paper) for e in entries]
    name = Col("model", "model", _cells(e.name for e in entries), justify="left", core=True)
    family = Col("family", "family", _cells(e.family for e in entries), justify="left", rank=3)
    paper = Col("paper", "paper", _cells(e.paper for e in entries), justify="left", rank=1)
    size = Col("input", "input", _cells("×".join(map(str, e.input_size)) for e in entries), core=True)
    classes = Col("classes", "classes", _cells(str(e.num_classes) for e in entries), rank=2)
    top1_with_table = Col(
        "top1", "top-1 %", _cells(f"{p[0]:.2f} ({p[1]})" if p else "—" for p in published), justify="left", core=True
    )
    top1 = Col("top1", "top-1\n%", _cells(f"{p[0]:.2f}" if p else "—" for p in published), core=True, label="top-1 %")
    table = Col(
        "table",
        "top-1\nfrom",
        _cells(p[1] if p else "—" for p in published),
        justify="left",
        rank=4,
        label="top-1 from",
    )
    description = Col(
        "description",
        "description",
        _cells(e.description for e in entries),
        justify="left",
        wrap=True,
        floor=24,
        core=True,
    )
    plugins = any(e.source != "convbench" for e in entries)
    # Models registered by convbench itself need no source; the column is there only for plugins.
    source = Col("source", "source", _cells(e.source for e in entries), justify="left", wrap=True, core=True)
    # Where a column of its own does not fit, a plugin's model names its source at the start of its description.
    described = Col(
        "description",
        "description",
        [
            Text(e.description) if e.source == "convbench" else Text.assemble((e.source, "italic"), ": ", e.description)
            for e in entries
        ],
        justify="left",
        wrap=True,
        floor=24,
        core=True,
    )
    layouts = [
        [name, family, paper, size, classes, top1_with_table, *([source] if plugins else []), description],
        [name, family, paper, size, classes, top1, table, *([source] if plugins else []), description],
        *([[name, family, paper, size, classes, top1, table, described]] if plugins else []),
    ]
    caption = "top-1 %: the published figure, never measured (its table: `convbench tables KEY`)"
    return FittedView(
        f"{len(entries)} registered models", caption, layouts, hint="{n} more column(s) in a wider window"
    )


def count_table(model: str, result: CountResult) -> Table:
    rule = CONVENTIONS.get(result.convention)
    caption = f"convention {result.convention}" + (f": {rule.description}" if rule else "")
    table = Table(title=Text(f"{model}: MACs and parameters"), caption=caption)
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
    table = Table(title=Text(f"{model}: per-module breakdown (depth ≤ {max_depth})"))
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
    table = Table(title=Text(f"{result.model}: ONNX export"))
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


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _interval(row: dict[str, Any], value: str, low: str, high: str, spec: str, unit: str = "") -> tuple[str, str]:
    """The figure and its interval as "low–high" (empty when the interval is missing)."""
    main = format_number(row.get(value), spec) + ("" if is_blank(row.get(value)) else unit)
    if is_blank(row.get(low)) or is_blank(row.get(high)):
        return main, ""
    return main, f"{format_number(row.get(low), spec)}–{format_number(row.get(high), spec)}"


def ms_spec(value: Any) -> str:
    """Decimals for a latency in ms: about four significant figures, which its interval rarely supports anyway."""
    ms = abs(_float(value))
    return ".3f" if ms < 1 else ".2f" if ms < 100 else ".1f" if ms < 1000 else ".0f"


def _interval_caption(trials: Any) -> str:
    """Which interval the rows carry: two to four trials get Student's t, not the bootstrap (stats.interval_method)."""
    from convbench.timing.stats import interval_method

    try:
        n = int(trials)
    except (TypeError, ValueError):
        n = 0
    if interval_method(n) == "t over trials":
        return f"median and 95% interval from Student's t over {n} trials (too few for a bootstrap over trials)"
    count = format_number(trials, ".0f")
    return f"median and 95% interval from a two-level bootstrap over {count} trial(s) and their runs"


def noise_targets(reason: Any) -> list[str]:
    """The columns whose figures set off each noise reason: CV, drift of the median, else the machine (name)."""
    targets = []
    for part in str(reason or "").split(";"):
        what = part.strip()
        head, colon, rest = what.partition(":")
        # "trial 3: CV 28% > 10%" (one trial) or "10/10 trials: CV 28–30% > 10%" (summarize_reasons)
        if colon and (head.startswith("trial") or head.endswith((" trial", " trials"))):
            what = rest.strip()
        if what:
            targets.append("cv" if what.startswith("CV") else "median" if "drift" in what else "model")
    return list(dict.fromkeys(targets))


_COMPARE_CORE = {"model", "median", "speedup", "spread", "mac", "verdict"}
_PROFILE_CORE = {"model", "batch", "res", "gmacs", "params", "median", "ips", "peak_mb"}
# The order in which optional columns join as the width allows.
_COMPARE_RANKS = [
    "gmacs",
    "params",
    "cv",
    "ips",
    "realised",
    "p",
    "peak_mb",
    "iqr",
    "gmacs_s",
    "peak",
    "trials",
    "runs",
    "batch",
    "res",
    "conv",
]
_PROFILE_RANKS = ["cv", "iqr", "gmacs_s", "peak", "trials", "runs", "conv"]


def results_view(rows: Sequence[dict[str, Any]], title: str, wide: bool = False) -> FittedView:
    """Latency rows (profile), or with a baseline (compare) the measured and the MAC speed-ups side by side.

    The terminal gets a compact set of columns plus what the width allows (all of them with ``wide``); the
    result file always has every column. Intervals sit beside their figure, or below it where that fits better.
    """
    compare = any("speedup" in r for r in rows)
    failed = [not is_blank(r.get("error")) for r in rows]
    specs = [ms_spec(r.get("median_ms")) for r in rows]
    medians = [
        _interval(r, "median_ms", "median_low_ms", "median_high_ms", spec) for r, spec in zip(rows, specs, strict=True)
    ]
    speedups = [_interval(r, "speedup", "speedup_low", "speedup_high", ".3f", "×") for r in rows]
    # Two decimals: the spread over a handful of trials is a coarse figure.
    spreads = [_interval(r, "speedup", "speedup_trial_min", "speedup_trial_max", ".2f")[1] for r in rows]
    # A sweep has several rows per model: batch and resolution then tell them apart, so they are always shown.
    core = set(_COMPARE_CORE if compare else _PROFILE_CORE)
    core |= {
        key
        for key, column in (("batch", "batch_size"), ("res", "resolution"))
        if len({str(r.get(column)) for r in rows}) > 1
    }
    ranks = _COMPARE_RANKS if compare else _PROFILE_RANKS
    gmacs = [(_float(r.get("gmacs")), _float(r.get("conv_gmacs"))) for r in rows]
    conv_differs = any(abs(total - conv) > 0.01 * total for total, conv in gmacs)

    def number(key: str, header: str, column: str, spec: str, unit: str = "", **kw: Any) -> Col:
        values = (format_number(r.get(column), spec) + ("" if is_blank(r.get(column)) else unit) for r in rows)
        return Col(key, header, _cells(values), **kw)

    def layout(stacked: bool) -> list[Col]:
        join = "\n" if stacked else " ("
        close = "" if stacked else ")"
        median = [
            Text("error", style="red") if bad else Text(f"{m}{join}{i}{close}" if i else m)
            for (m, i), bad in zip(medians, failed, strict=True)
        ]
        cols = [
            Col("model", "model", _cells(str(r.get("model", "—")) for r in rows), justify="left", wrap=True),
            number("batch", "batch", "batch_size", ".0f", label="batch size"),
            number("res", "res", "resolution", ".0f", label="resolution"),
            number("gmacs", "GMACs", "gmacs", ".3f"),
            *([number("conv", "conv\nGMACs", "conv_gmacs", ".3f", label="conv GMACs")] if conv_differs else []),
            number("params", "params\nM", "params_m", ".2f", label="params M"),
            Col("median", "median ms\n(95% CI)", median, label="median ms (95% CI)"),
            Col(
                "iqr",
                "IQR\nms",
                _cells(format_number(r.get("iqr_ms"), spec) for r, spec in zip(rows, specs, strict=True)),
                label="IQR ms",
            ),
            number("cv", "CV", "cv", ".1%"),
            number("ips", "img/s", "throughput_ips", ".1f"),
            number("peak_mb", "peak\nMB", "peak_mb", ".0f", label="peak MB"),
            number("gmacs_s", "GMAC/s", "achieved_gmacs_per_s", ".1f", label="achieved GMAC/s"),
            number("peak", "% of\npeak", "peak_fraction", ".0%", label="% of peak GMAC/s"),
            number("trials", "trials", "trials", ".0f"),
            number("runs", "runs", "n_runs", ".0f"),
        ]
        if compare:
            if stacked:  # the spread over trials goes below the interval instead of in a column of its own
                speedup = Col(
                    "speedup",
                    "speed-up\n(95% CI)\n[trials]",
                    _cells(
                        "\n".join(part for part in (s, i, f"[{t}]" if t else "") if part)
                        for (s, i), t in zip(speedups, spreads, strict=True)
                    ),
                )
                spread = []
            else:
                speedup = Col(
                    "speedup",
                    "speed-up\n(95% CI)",
                    _cells(f"{s} ({i})" if i else s for s, i in speedups),
                    label="speed-up (95% CI)",
                )
                spread = [
                    Col(
                        "spread",
                        "over\ntrials",
                        _cells(f"[{t}]" if t else "—" for t in spreads),
                        label="speed-up over trials",
                    )
                ]
            realised = (
                format_number(_float(r.get("speedup")) / _float(r.get("theoretical_speedup")))
                if _float(r.get("theoretical_speedup"))
                else "—"
                for r in rows
            )
            cols += [
                speedup,
                *spread,
                number("p", "p", "p_value", ".2g", label="p (Mann–Whitney U)"),
                number("mac", "by\nMACs", "theoretical_speedup", ".2f", "×", label="speed-up by MACs"),
                Col("realised", "realised\n/MAC", _cells(realised), label="realised / MAC speed-up"),
                Col("verdict", "verdict", _cells(str(r.get("verdict") or "—") for r in rows), justify="left"),
            ]
        for c in cols:
            c.core = c.key in core
            c.rank = ranks.index(c.key) if c.key in ranks else len(ranks)
        # An optional column with nothing in it (no peak measured, say) is not worth its width.
        return [c for c in cols if c.core or any(t.plain != "—" for t in c.cells)]

    marks = [noise_targets(r.get("noisy_reason")) if truthy(r.get("noisy")) else [] for r in rows]
    footnotes = [
        Text(f"{r.get('model')}: error: {r['error']}", style="red") for r, bad in zip(rows, failed, strict=True) if bad
    ]
    return FittedView(
        title,
        _results_caption(rows, compare),
        [layout(False), layout(True)],
        marks=marks,
        wide=wide,
        footnotes=footnotes,
    )


def _results_caption(rows: Sequence[dict[str, Any]], compare: bool) -> str:
    first = rows[0]
    measured = next((r for r in rows if is_blank(r.get("error"))), first)
    lines = [
        f"{first.get('runtime')} on {first.get('device')}, {format_number(first.get('threads'), '.0f')} thread(s); "
        f"GMACs: {first.get('macs_convention')} convention (1 MAC = 1 multiply-add)",
        _interval_caption(measured.get("trials")),
    ]
    if compare:
        lines.append(
            "speed-up = median(baseline)/median(model); [min–max] over trials; by MACs = MACs(baseline)/MACs(model)"
        )
    if any(truthy(r.get("noisy")) for r in rows):
        lines.append(f"{WARN} marks the figure behind a noise warning (reasons below)")
    return "\n".join(lines)


def noisy_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"warning: {r['model']} timings were noisy ({r['noisy_reason']}); the machine may be busy, "
        "rerun or raise --runs"
        for r in rows
        if r.get("noisy")
    ]


def operator_table(model: str, profile: Any) -> Table:
    """A runtime's time per operator type (``convbench.runtimes.base.OperatorProfile``): time, share and calls
    per inference, kernels per inference where the runtime ran on a GPU, and the per-pass counts in the caption."""
    gpu = any(r.kernels is not None for r in profile.rows)
    title = f"{model}: time per operator type"
    table = Table(title=Text(title), min_width=min(len(title) + 4, 120))  # a title wrapped mid-phrase reads badly
    table.add_column("operator")
    table.add_column("ms / run", justify="right")
    table.add_column("share", justify="right")
    table.add_column("calls / run", justify="right")
    if gpu:
        table.add_column("kernels / run", justify="right")
    for r in profile.rows:
        cells = [r.op_type, f"{r.ms_per_run:.3f}", f"{r.share:.1%}", f"{r.calls:g}"]
        table.add_row(*cells, *([f"{r.kernels:g}" if r.kernels is not None else ""] if gpu else []))
    notes = [f"{profile.profiler}, {profile.runs} runs", *(f"{k}: {v:g}" for k, v in profile.per_run.items())]
    table.caption = Text("\n".join(notes))
    return table
