"""One self-contained HTML page from result files: tables, accuracy-vs-cost plots and each run's provenance.

The page fetches nothing: its style and script are inline, each plot is an inline SVG drawn by
``convbench.results.plot``, and a Content-Security-Policy forbids every network request, so it opens from
``file://`` or as a mail attachment exactly as it was written. Every value from a file is escaped. Tables sort
by clicking a header and filter with a text box; a noisy row carries a visible mark with its reason.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import convbench
from convbench.errors import ConvbenchError, UserInputError
from convbench.results.files import check_writable, is_blank, output_format, read_rows, replace_atomically, truthy

# What makes a file convbench's result rows rather than some other CSV: a model and its measured median.
REQUIRED_COLUMNS = ("model", "median_ms")
SUFFIXES = (".html", ".htm")
# The environment and provenance shown once per run rather than per row (``files.environment()`` and what
# reproduce, run and merge add); a column no row of the file has is left out.
RUN_COLUMNS = (
    ("host", "host"),
    ("cpu", "CPU"),
    ("cores", "cores"),
    ("gpu", "GPU"),
    ("os", "OS"),
    ("python", "Python"),
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("onnxruntime", "onnxruntime"),
    ("onnx", "onnx"),
    ("openvino", "openvino"),
    ("cuda", "CUDA"),
    ("cudnn", "cuDNN"),
    ("driver", "GPU driver"),
    ("timm", "timm"),
    ("timm_version", "timm"),
    ("fvcore", "fvcore"),
    ("convbench", "convbench"),
    ("git_commit", "git commit"),
    ("git_dirty", "uncommitted changes"),
    ("timestamp", "measured at (UTC)"),
    ("load_avg_before", "load before"),
    ("load_avg_after", "load after"),
    ("energy_source", "energy counter"),
    ("table", "paper table"),
    ("spec_file", "run spec"),
    ("job", "job"),
    ("shard", "shard"),
    ("source_file", "merged from"),
    ("command", "command"),
    ("config_key", "settings"),
)


@dataclass
class Cell:
    """One table cell: the text shown, the value it sorts by, and an optional tooltip and class."""

    text: str
    sort: str | None = None  # None: sorts by its text; "" sorts last, as a blank does
    title: str = ""
    cls: str = ""


@dataclass(frozen=True)
class Column:
    """A column of the results table: shown when the file has a value in ``key`` on any row."""

    header: str
    key: str
    cell: Callable[[dict[str, Any]], Cell]
    tip: str = ""
    setting: bool = False  # one value on every row: said once above the table instead of in a column


@dataclass
class ReportFile:
    """One input file's rows and what the page says about it."""

    path: Path
    rows: list[dict[str, Any]]
    columns: list[str]
    svg: str | None = None
    notes: list[str] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if is_blank(value) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plain(value: Any) -> Cell:
    """Any value as read from a file: numbers shortened for the eye and sorted by their full value."""
    if is_blank(value):
        return Cell("")
    if isinstance(value, bool):
        return Cell(str(value).lower(), "1" if value else "0")
    number = _number(value)
    if number is not None and not isinstance(value, str):
        text = str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.6g}"
        return Cell(text, repr(number))
    return Cell(str(value))


def _fixed(key: str, spec: str, suffix: str = "") -> Callable[[dict[str, Any]], Cell]:
    def cell(row: dict[str, Any]) -> Cell:
        number = _number(row.get(key))
        if number is None:
            return _plain(row.get(key))
        return Cell(format(number, spec) + suffix, repr(number))

    return cell


def _text(key: str) -> Callable[[dict[str, Any]], Cell]:
    return lambda row: _plain(row.get(key))


def _wrapped(key: str) -> Callable[[dict[str, Any]], Cell]:
    """Long text (reasons, errors) that may wrap."""

    def cell(row: dict[str, Any]) -> Cell:
        found = _plain(row.get(key))
        found.cls = "wrap" if found.text else ""
        return found

    return cell


def _interval(key: str, low: str, high: str, spec: str, suffix: str = "") -> Callable[[dict[str, Any]], Cell]:
    """A value with its 95% interval, sorted by the value."""

    def cell(row: dict[str, Any]) -> Cell:
        value, lo, hi = (_number(row.get(k)) for k in (key, low, high))
        if value is None:
            return _plain(row.get(key))
        text = format(value, spec) + suffix
        if lo is not None and hi is not None:
            text += f" ({lo:{spec}}–{hi:{spec}})"
        return Cell(text, repr(value))

    return cell


def _noise(row: dict[str, Any]) -> Cell:
    flag = row.get("noisy")
    if is_blank(flag):
        return Cell("")
    if truthy(flag):
        reason = "" if is_blank(row.get("noisy_reason")) else str(row["noisy_reason"])
        return Cell("⚠ noisy", "1", title=reason or "flagged noisy", cls="flag noisy")
    return Cell("quiet", "0", cls="flag quiet")


def _model(row: dict[str, Any]) -> Cell:
    """The model; a paper's row that convbench has no model for says so (its name is the method's), sorts last."""
    if is_blank(row.get("model")) and not is_blank(row.get("method")):
        return Cell("published only", "", title="convbench has no model for this row of the paper", cls="unmeasured")
    return _plain(row.get("model"))


def _energy_note(row: dict[str, Any]) -> Cell:
    """Why a row has no energy; the column header already says "energy"."""
    found = _wrapped("energy_note")(row)
    found.text = found.text.removeprefix("energy: ")
    return found


RESULT_COLUMNS = (
    Column("model", "model", _model),
    Column("method (paper)", "method", _text("method"), "the row's name in the paper's table"),
    Column("family", "family", _text("family")),
    Column("baseline", "baseline", _text("baseline"), "the model this row's speed-up is taken against"),
    Column("runtime", "runtime", _text("runtime"), setting=True),
    Column("device", "device", _text("device"), setting=True),
    Column("threads", "threads", _fixed("threads", ".0f"), setting=True),
    Column("batch", "batch_size", _fixed("batch_size", ".0f"), setting=True),
    Column("input px", "resolution", _fixed("resolution", ".0f"), setting=True),
    Column("precision", "precision", _text("precision"), setting=True),
    Column("top-1 % (published)", "top1_published", _fixed("top1_published", ".2f"), "the paper's figure"),
    Column("top-1 % (measured)", "top1_measured", _fixed("top1_measured", ".2f"), "measured by convbench evaluate"),
    Column("params M (published)", "params_m_published", _fixed("params_m_published", ".2f"), "the paper's figure"),
    Column("params M", "params_m", _fixed("params_m", ".2f"), "counted by convbench"),
    Column("GMACs (published)", "gmacs_published", _fixed("gmacs_published", ".2f"), "the paper's figure"),
    Column("GMACs", "gmacs", _fixed("gmacs", ".3f"), "counted by convbench (fvcore)"),
    Column("MAC convention", "macs_convention", _text("macs_convention"), setting=True),
    Column("latency ms (published)", "latency_ms_published", _fixed("latency_ms_published", ".2f")),
    Column(
        "median ms (95% CI)",
        "median_ms",
        _interval("median_ms", "median_low_ms", "median_high_ms", ".2f"),
        "measured median latency per batch, with its bootstrap interval over trials and runs",
    ),
    Column("CV", "cv", _fixed("cv", ".3f"), "coefficient of variation of the timed runs"),
    Column("trials", "trials", _fixed("trials", ".0f"), setting=True),
    Column("speed-up (published)", "speedup_published", _fixed("speedup_published", ".2f", "×"), "the paper's figure"),
    Column(
        "speed-up (95% CI)",
        "speedup",
        _interval("speedup", "speedup_low", "speedup_high", ".2f", "×"),
        "measured, over the baseline timed interleaved in the same run",
    ),
    Column("MAC speed-up", "theoretical_speedup", _fixed("theoretical_speedup", ".2f", "×"), "baseline MACs ÷ MACs"),
    Column("verdict", "verdict", _text("verdict")),
    Column("images/s", "throughput_ips", _fixed("throughput_ips", ".1f")),
    Column("J per image", "energy_j_per_image", _fixed("energy_j_per_image", ".3g"), "measured energy per image"),
    Column("power W", "power_w", _fixed("power_w", ".1f"), "mean power over the energy windows"),
    Column("energy", "energy_note", _energy_note, "why no energy was measured", setting=True),
    Column("peak MB", "peak_mb", _fixed("peak_mb", ".0f"), "peak resident memory"),
    Column("% of peak GMAC/s", "peak_fraction", _fixed("peak_fraction", ".1%"), "achieved ÷ this machine's GEMM peak"),
    Column("noise", "noisy", _noise, "hover a ⚠ mark for its reason"),
    Column("noise reason", "noisy_reason", _wrapped("noisy_reason")),
    Column("error", "error", _wrapped("error")),
    Column("run", "run_id", _text("run_id"), "the run this row was measured in; see the runs table"),
)


def load_file(path: Path) -> ReportFile:
    """A result file's rows; a one-line ``UserInputError`` if it is missing or not convbench's."""
    if not path.is_file():
        raise UserInputError(f"no result file {path}")
    output_format(path, None)  # .csv or .json, else one line saying so
    try:
        rows = read_rows(path)
    except ConvbenchError as exc:
        raise UserInputError(str(exc)) from None
    if not rows:
        raise UserInputError(f"{path} has no rows")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UserInputError(
            f"{path} is not a convbench result file: it has no column(s) {', '.join(missing)} (report reads the "
            "files of profile, compare, reproduce, run and merge)"
        )
    return ReportFile(path, rows, columns)


def svg_plot(path: Path, prefix: str) -> tuple[str | None, list[str]]:
    """The accuracy-vs-cost figure of ``path`` as inline SVG (text as text, every id prefixed), and notes.

    The SVG is None, with a note saying why, when the file has nothing to plot.
    """
    import matplotlib

    from convbench.results.plot import draw

    try:
        drawing = draw(path)
    except ConvbenchError as exc:
        return None, [f"no plot: {exc}"]
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    # Text stays text (selectable, a tenth of the size of glyph outlines); a fixed salt and no date keep a
    # regenerated page byte-identical.
    try:
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
            drawing.figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(drawing.figure)
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # Every figure numbers its groups and clip paths from 1: ids (and the references to them) get a prefix per
    # figure, or the second figure's clip paths would resolve to the first's.
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    label = html.escape(f"top-1 against measured latency and GMACs: {path.name}")
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return svg, drawing.notes


def _kind(report: ReportFile) -> str:
    columns = set(report.columns)
    if "table" in columns:
        tables = sorted({str(r["table"]) for r in report.rows if not is_blank(r.get("table"))})
        return f"reproduce of {', '.join(tables)}" if tables else "reproduce"
    if "source_file" in columns:
        return "merged results"
    if "spec_file" in columns:
        return "run spec results"
    if any(not is_blank(r.get("speedup")) for r in report.rows):
        return "compare"
    return "profile"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell_html(cell: Cell) -> str:
    attrs = ""
    if cell.sort is not None:
        attrs += f' data-v="{_e(cell.sort)}"'
    # Numbers right-aligned; flags and text keep their own class.
    cls = cell.cls or ("n" if cell.sort else "")
    if cls:
        attrs += f' class="{_e(cls)}"'
    text = _e(cell.text)
    if cell.title:
        text = f'<span title="{_e(cell.title)}">{text}</span>'
    return f"<td{attrs}>{text}</td>"


def _table(table_id: str, headers: Sequence[tuple[str, str]], rows: Sequence[Sequence[Cell]], caption: str) -> str:
    """A sortable table with a filter box above it; headers are (label, tooltip)."""
    head = "".join(
        f'<th scope="col"{f" title={_q(tip)}" if tip else ""}><button type="button">{_e(label)}</button></th>'
        for label, tip in headers
    )
    body = "\n".join("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in rows)
    n = len(rows)
    return (
        f'<p class="caption" id="{table_id}-caption">{_e(caption)}</p>\n'
        f'<div class="tools"><label>filter <input type="search" class="filter" data-table="{table_id}" '
        f'data-count="{table_id}-count" placeholder="words every shown row contains"></label> '
        f'<span id="{table_id}-count" class="count">{n} of {n} rows</span></div>\n'
        f'<div class="scroll"><table id="{table_id}" class="sortable" aria-describedby="{table_id}-caption">'
        f"\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def _q(value: str) -> str:
    return f'"{_e(value)}"'


def results_table(report: ReportFile, table_id: str) -> str:
    """The chosen columns of every row of the file, one table row per file row; shared settings said once."""
    present = [c for c in RESULT_COLUMNS if any(not is_blank(r.get(c.key)) for r in report.rows)]
    shared: list[str] = []
    shown: list[Column] = []
    for column in present:
        values = {c.text for c in (column.cell(r) for r in report.rows) if c.text}
        if column.setting and len(values) == 1:
            shared.append(f"{column.header} {values.pop()}")
        else:
            shown.append(column)
    cells = [[c.cell(r) for c in shown] for r in report.rows]
    caption = (
        f"{len(report.rows)} row(s) of {report.path.name}"
        + (f", all with {' · '.join(shared)}" if shared else "")
        + ". Published figures are the papers'; every other number was measured or counted by convbench. Click a "
        "header to sort; every column of each row is under “every column” below."
    )
    return _table(table_id, [(c.header, c.tip) for c in shown], cells, caption)


def all_columns_table(report: ReportFile, table_id: str) -> str:
    """Every column of every row, as the file holds it."""
    cells = [[_plain(r.get(c)) for c in report.columns] for r in report.rows]
    return _table(table_id, [(c, "") for c in report.columns], cells, f"every column of {report.path.name}")


def runs_table(report: ReportFile, table_id: str) -> str:
    """One line per run: the machine, the software versions, the commit and what was run."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in report.rows:
        if not is_blank(row.get("run_id")):
            runs.setdefault(str(row["run_id"]), []).append(row)
    shown = [
        (key, label)
        for key, label in RUN_COLUMNS
        if any(not is_blank(r.get(key)) for group in runs.values() for r in group)
    ]
    lines = []
    for run_id, group in runs.items():
        line = [Cell(run_id), Cell(str(len(group)), str(len(group)))]
        for key, _ in shown:
            # A run normally agrees on each column; where it does not (merged files), every value is listed.
            values = list(dict.fromkeys(_plain(r.get(key)).text for r in group if not is_blank(r.get(key))))
            line.append(Cell("; ".join(values)))
        lines.append(line)
    headers = [("run", ""), ("rows", ""), *((label, key) for key, label in shown)]
    caption = f"the run(s) behind {report.path.name}: machine, software, commit and settings"
    return _table(table_id, headers, lines, caption)


def _summary(files: Sequence[ReportFile]) -> str:
    lines = []
    for i, f in enumerate(files):
        measured = [r for r in f.rows if _number(r.get("median_ms")) is not None]
        noisy = sum(truthy(r.get("noisy")) for r in measured)
        runs = {str(r["run_id"]) for r in f.rows if not is_blank(r.get("run_id"))}
        hosts = {str(r.get("host")) for r in f.rows if not is_blank(r.get("host"))}
        lines.append(
            "<tr>"
            f'<td><a href="#file-{i}">{_e(f.path.name)}</a></td><td>{_e(_kind(f))}</td>'
            f'<td class="n">{len(f.rows)}</td><td class="n">{len(measured)}</td>'
            f'<td class="n">{noisy}</td><td class="n">{len(runs)}</td><td>{_e(", ".join(sorted(hosts)))}</td>'
            f"<td>{'plot' if f.svg else '—'}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("file", "what", "rows", "measured", "flagged noisy", "runs", "host(s)", "accuracy plot")
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _section(index: int, f: ReportFile) -> str:
    parts = [f'<section id="file-{index}" class="file">', f"<h2>{_e(f.path.name)} <small>{_e(_kind(f))}</small></h2>"]
    if f.svg:
        parts.append(f'<figure class="plot">{f.svg}</figure>')
    for note in f.notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append("<h3>Results</h3>")
    parts.append(results_table(f, f"results-{index}"))
    parts.append("<h3>Runs: machine, versions, provenance</h3>")
    parts.append(runs_table(f, f"runs-{index}"))
    parts.append(f"<details><summary>every column ({len(f.columns)})</summary>")
    parts.append(all_columns_table(f, f"all-{index}"))
    parts.append("</details></section>")
    return "\n".join(parts)


STYLE = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d5dbe1; --head: #eef2f5; --warn: #9a4b00; --warnbg: #fff1dc; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1800px; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid var(--line); }
h2 small { font-weight: normal; color: var(--muted); font-size: .75em; margin-left: .5em; }
h3 { margin: 1.4rem 0 .4rem; font-size: 1.05rem; }
p.lead, p.note, p.caption { color: var(--muted); } p.caption { margin: .2rem 0; }
figure.plot { margin: 1rem 0; } figure.plot svg { width: 100%; max-width: 1300px; height: auto; display: block; }
.scroll { overflow: auto; max-height: 75vh; border: 1px solid var(--line); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .55rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap;
         vertical-align: top; }
td.n { text-align: right; }
thead th { white-space: normal; vertical-align: bottom; min-width: 3.5rem; max-width: 8rem; }
table.sortable thead th { position: sticky; top: 0; background: var(--head); z-index: 2; }
/* the first column (the model) stays in view while the table scrolls sideways */
table.sortable tbody td:first-child { position: sticky; left: 0; background: inherit; z-index: 1;
                                      box-shadow: 1px 0 0 var(--line); }
table.sortable thead th:first-child { left: 0; z-index: 3; }
td.wrap { white-space: normal; min-width: 18rem; max-width: 32rem; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #2b6cb0; }
th[aria-sort="ascending"] button::after { content: " ▲"; } th[aria-sort="descending"] button::after { content: " ▼"; }
tbody tr { background: #fff; } tbody tr:nth-child(even) { background: #f8fafb; }
tbody tr:hover { background: #eaf2fb; }
td.unmeasured { color: var(--muted); font-style: italic; }
td.noisy { color: var(--warn); background: var(--warnbg); font-weight: 600; text-align: left; }
td.noisy span { cursor: help; border-bottom: 1px dotted var(--warn); }
td.quiet { color: var(--muted); text-align: left; }
.tools { margin: .4rem 0; } .tools input { width: 22rem; padding: .2rem .4rem; } .count { color: var(--muted); }
details { margin-top: .8rem; } summary { cursor: pointer; }
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
  }
  function compare(a, b) {
    var x = Number(a), y = Number(b);
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }
  function sortBy(table, index, th) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) { return [key(row.cells[index]), i, row]; });
    rows.sort(function (p, q) {
      if (p[0] === "" || q[0] === "") { return (p[0] === "") - (q[0] === "") || p[1] - q[1]; }
      var c = compare(p[0], q[0]);
      return (ascending ? c : -c) || p[1] - q[1];
    });
    rows.forEach(function (r) { body.appendChild(r[2]); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.querySelector("button").addEventListener("click", function () { sortBy(table, index, th); });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(input.getAttribute("data-count"));
    input.addEventListener("input", function () {
      var terms = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var rows = table.tBodies[0].rows, shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var reasons = Array.prototype.map.call(row.querySelectorAll("[title]"), function (el) { return el.title; });
        var text = (row.textContent + " " + reasons.join(" ")).toLowerCase();
        var match = terms.every(function (t) { return text.indexOf(t) >= 0; });
        row.hidden = !match;
        shown += match ? 1 : 0;
      });
      count.textContent = shown + " of " + rows.length + " rows";
    });
  });
})();
"""

# Nothing may be fetched: inline style and script only, images from data: URIs (none today).
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def render(files: Sequence[ReportFile], title: str) -> str:
    """The whole page for already-loaded files."""
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    total = sum(len(f.rows) for f in files)
    sections = "\n".join(_section(i, f) for i, f in enumerate(files))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="convbench {_e(convbench.__version__)}">
<title>{_e(title)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="lead">{total} result row(s) from {len(files)} file(s), written by convbench {_e(convbench.__version__)}
at {_e(generated)} UTC. Latency, MACs and parameters are measured or counted by convbench; figures marked
“published” are the papers’. A <span class="flag">⚠ noisy</span> mark means convbench saw something disturb the
timed window (hover it for the reason). Each file’s runs table names the machine, versions and commit.</p>
</header>
{_summary(files)}
{sections}
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_report(paths: Sequence[Path], output: Path, title: str | None = None) -> Path:
    """Read result files and write one self-contained HTML report to ``output`` (atomically); return its path."""
    if not paths:
        raise UserInputError("report needs at least one result file (CSV or JSON from profile, compare, ...)")
    if output.suffix.lower() not in SUFFIXES:
        raise UserInputError(f"report writes HTML; give -o a .html name, not {output.name!r}")
    check_writable(output)
    files = [load_file(Path(p)) for p in paths]
    for i, f in enumerate(files):
        f.svg, notes = svg_plot(f.path, prefix=f"plot{i}")
        f.notes.extend(notes)
    page = render(files, title or "convbench report")
    replace_atomically(output, lambda handle: handle.write(page))
    return output
