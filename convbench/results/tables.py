"""Rendering of the papers' tables: the list of known tables, one published table, and a reproduction
(published and measured values side by side)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from convbench.papers.tables import PublishedRow, PublishedTable
from convbench.results.console import WARN, Col, FittedView, format_number, ms_spec, noise_targets
from convbench.results.files import is_blank, truthy


def tables_table(tables: Sequence[PublishedTable]) -> Table:
    """``convbench tables``: key, paper, title, rows and the registered models."""
    table = Table(
        title=f"{len(tables)} published tables (convbench reproduce KEY)",
        caption="rows: paper rows (built by convbench); `convbench tables KEY` shows one table",
    )
    for column in ("key", "paper", "title", "rows", "models"):
        table.add_column(column, overflow="fold", justify="right" if column == "rows" else "left")
    for t in tables:
        models = ", ".join(t.models)
        table.add_row(t.key, t.paper, t.title, f"{len(t.rows)} ({len(t.models)})", models)
    return table


def published_table(t: PublishedTable, measured: dict[str, Any] | None = None) -> Table:
    """One table as published (``convbench tables KEY``), with a measured top-1 column where ``measured``
    (model -> ``convbench.accuracy.Accuracy``, from ``convbench evaluate``) has one."""
    measured = {m: a for m, a in (measured or {}).items() if any(r.model == m for r in t.rows)}
    caption = f"{t.source}\nunits: {t.units}\ncounting: {t.counting}"
    for name, value in t.notes.items():
        caption += f"\n{name}: {value}"
    table = Table(title=f"{t.key}: {t.title}", caption=caption, caption_justify="left")
    columns = [
        "method",
        "model",
        "top-1 published",
        *(["top-1 measured"] if measured else []),
        "top-5",
        "params M",
        "MACs",
        "CPU ms",
        "GPU ms",
        "×CPU",
        "×GPU",
        "baseline",
        "note",
    ]
    for c in columns:
        table.add_column(
            c, overflow="fold", justify="left" if c in ("method", "model", "baseline", "note") else "right"
        )
    for r in t.rows:
        top1 = format_number(r.top1) + (f"±{r.top1_std:.2f}" if r.top1_std is not None else "")
        params = "—" if r.params_m is None else f"{r.params_m:.{r.params_decimals}f}"
        macs = "—" if r.macs is None else f"{r.macs:.{r.macs_decimals}f} {r.macs_unit}"
        table.add_row(
            r.method,
            r.model or "(not built)",
            top1,
            *([format_number(measured[r.model].top1) if r.model in measured else "—"] if measured else []),
            format_number(r.top5),
            params,
            macs,
            format_number(r.cpu_ms),
            format_number(r.gpu_ms),
            format_number(r.speedup_cpu),
            format_number(r.speedup_gpu),
            r.baseline or "—",
            r.note,
        )
    return table


def _printed(value: Any, decimals: int | None) -> str:
    """A published figure with the decimals the paper printed (so 4.1 is not shown as 4.100)."""
    return format_number(value) if decimals is None or is_blank(value) else f"{float(value):.{decimals}f}"


def _published_gmacs(row: PublishedRow | None, line: dict[str, Any]) -> str:
    if row is None or row.gmacs is None or row.macs_decimals is None:
        return format_number(line.get("gmacs_published"), ".3f")
    # A figure printed in M keeps its digits once converted to G: 300.5 M is 0.3005 G.
    return f"{row.gmacs:.{row.macs_decimals + (3 if row.macs_unit == 'M' else 0)}f}"


def _pair(paper: str, measured: str | Text) -> Text:
    text = Text(paper)
    text.append("\n")
    text.append(measured)
    return text


# The order in which optional columns join as the width allows.
_RANKS = ["ms", "verdict", "gpu", "dgmacs", "dparams", "cv", "top1_std", "vs", "spread", "p", "top5"]


def reproduce_view(
    t: PublishedTable, lines: Sequence[dict[str, Any]], reused: Sequence[str] = (), wide: bool = False
) -> FittedView:
    """Published vs measured: each paper row on two lines, the paper's figures above convbench's.

    The terminal gets the compact columns (top-1, params, GMACs, the speed-ups) plus what the width allows, all
    of them with ``wide``, or a block per row where even the compact set does not fit.
    """
    published = {r.method: r for r in t.rows}
    measured = [line for line in lines if not is_blank(line.get("median_ms"))]
    first = measured[0] if measured else lines[0]
    has_top1 = any(not is_blank(line.get("top1_measured")) for line in lines)
    kinds = [
        "error" if not is_blank(line.get("error")) else "published" if is_blank(line.get("median_ms")) else "measured"
        for line in lines
    ]

    def col(key: str, header: str, paper: Any, meas: Any, **kw: Any) -> Col:
        """``paper`` and ``meas`` map a line to its two figures; a line measured by nobody gets no second one."""
        cells = []
        for line, kind in zip(lines, kinds, strict=True):
            figure = meas(line) if kind != "published" else ""
            cells.append(_pair(paper(line), figure))
        return Col(key, header, cells, mark_line=-1, **kw)  # noise is about the measurement: its line

    def none(line: dict[str, Any]) -> str:
        return ""

    def label(line: dict[str, Any]) -> Text:
        model = line.get("model") or ""
        if is_blank(line.get("median_ms")) and is_blank(line.get("error")):
            return Text(f"{model} (not measured)" if model else "(published only)", style="dim")
        return Text(model)

    def params(line: dict[str, Any]) -> str:
        match = line.get("params_match")
        # A file read back holds the flag as text, and an unknown agreement as an empty cell.
        mismatch = match is False or str(match).lower() == "false"
        return format_number(line.get("params_m"), ".3f") + (f" {WARN}" if mismatch else "")

    def with_interval(line: dict[str, Any], key: str) -> str:
        """``key`` with its ``key_low``–``key_high`` interval where the line has one."""
        if is_blank(line.get(key)):
            return "—"
        value, low, high = format_number(line.get(key)), line.get(f"{key}_low"), line.get(f"{key}_high")
        return value if is_blank(low) or is_blank(high) else f"{value} ({format_number(low)}–{format_number(high)})"

    def speedup(line: dict[str, Any]) -> str | Text:
        if not is_blank(line.get("error")):
            return Text("error", style="red")
        if not is_blank(line.get("speedup")) and line.get("model") and line.get("model") == line.get("baseline"):
            return "1.00 (baseline)"
        return with_interval(line, "speedup")

    def gpu_speedup(line: dict[str, Any]) -> str:
        return with_interval(line, "speedup_gpu")

    def spread(line: dict[str, Any]) -> str:
        low, high = line.get("speedup_trial_min"), line.get("speedup_trial_max")
        return "—" if is_blank(low) or is_blank(high) else f"[{format_number(low)}–{format_number(high)}]"

    def signed(key: str, spec: str) -> Any:
        return lambda line: "—" if is_blank(line.get(key)) else format(float(line[key]), spec)

    def pub_params(line: dict[str, Any]) -> str:
        row = published.get(line.get("method", ""))
        return _printed(line.get("params_m_published"), row.params_decimals if row else None)

    def pub_gmacs(line: dict[str, Any]) -> str:
        return _published_gmacs(published.get(line.get("method", "")), line)

    def get(key: str, spec: str = ".2f") -> Any:
        return lambda line: format_number(line.get(key), spec)

    cols = [
        Col(
            "row",
            "method\nmodel",
            [_pair(str(line.get("method", "")), label(line)) for line in lines],
            justify="left",
            wrap=True,
            mark_line=-1,
            label="row",
        ),
        Col("src", "", [_pair("paper", "meas.") for _ in lines], justify="left", in_blocks=False),
        col("top1", "top-1\n%", get("top1_published"), get("top1_measured") if has_top1 else none, label="top-1 %"),
        col(
            "top1_std",
            "top-1\nstd",
            lambda line: (
                "" if is_blank(line.get("top1_std_published")) else f"±{float(line['top1_std_published']):.2f}"
            ),
            none,
            label="top-1 std",
        ),
        col("top5", "top-5\n%", get("top5_published"), none, label="top-5 %"),
        col("params", "params\nM", pub_params, params, label="params M"),
        col("dparams", "Δ\nparams", none, signed("params_delta_m", "+.2f"), label="Δ params M"),
        col("gmacs", "GMACs", pub_gmacs, get("gmacs", ".3f")),
        col("dgmacs", "Δ\nGMACs %", none, signed("gmacs_delta_pct", "+.1f"), label="Δ GMACs %"),
        col(
            "ms",
            "ms",
            get("latency_ms_published"),
            lambda line: format_number(line.get("median_ms"), ms_spec(line.get("median_ms"))),
            label="latency ms",
        ),
        col("speedup", "speed-up\n(95% CI)", get("speedup_published"), speedup, label="speed-up (95% CI)"),
        col("spread", "over\ntrials", none, spread, label="speed-up over trials"),
        col(
            "gpu",
            "GPU\nspeed-up",
            # On a GPU run the main speed-up column is the GPU one already.
            lambda line: "" if line.get("device") == "cuda" else format_number(line.get("speedup_gpu_published")),
            gpu_speedup,
            label="GPU speed-up (95% CI)",
        ),
        col("mac", "by\nMACs", none, get("theoretical_speedup"), label="speed-up by MACs"),
        col("p", "p", none, get("p_value", ".2g")),
        col("verdict", "verdict", none, lambda line: str(line.get("verdict") or "—"), justify="left"),
        col("cv", "CV", none, get("cv", ".1%")),
        col("vs", "vs", lambda line: str(line.get("baseline") or "—"), none, justify="left", label="baseline"),
    ]
    for c in cols:
        c.core = c.key in {"row", "src", "top1", "params", "gmacs", "speedup", "mac"}
        c.rank = _RANKS.index(c.key) if c.key in _RANKS else len(_RANKS)
    # An optional column with nothing in it (no top-5 in the paper, say) is not worth its width.
    cols = [
        c for c in cols if c.core or any(part.strip() not in ("", "—") for t in c.cells for part in t.plain.split("\n"))
    ]
    # The latency column here is "ms", where the results table calls it "median".
    marks = [
        [{"median": "ms"}.get(m, m) for m in noise_targets(line.get("noisy_reason"))]
        if truthy(line.get("noisy"))
        else []
        for line in lines
    ]
    footnotes = [
        Text(f"{line.get('model')}: error: {line['error']}", style="red")
        for line, kind in zip(lines, kinds, strict=True)
        if kind == "error"
    ]
    # GPU speed-ups measured at another batch, precision or convention are not shown; say so, once per reason.
    withheld: dict[str, list[str]] = {}
    for line in lines:
        if not is_blank(line.get("gpu_note")):
            withheld.setdefault(str(line["gpu_note"]), []).append(str(line.get("method") or line.get("model")))
    footnotes += [Text(f"{', '.join(methods)}: {note}", style="dim") for note, methods in withheld.items()]
    return FittedView(
        f"convbench reproduce {t.key}: {t.title}",
        _reproduce_caption(t, lines, first, has_top1, reused),
        [cols],
        marks=marks,
        wide=wide,
        footnotes=footnotes,
        value_headers=("paper", "convbench"),
    )


def _reproduce_caption(
    t: PublishedTable, lines: Sequence[dict[str, Any]], first: dict[str, Any], has_top1: bool, reused: Sequence[str]
) -> str:
    device = first.get("device", "cpu")
    where = (
        f"{first.get('runtime')} on {device}, {format_number(first.get('threads'), '.0f')} thread(s), batch "
        f"{format_number(first.get('batch_size'), '.0f')}, MACs by convention {first.get('macs_convention', '—')}"
    )
    caption = [
        f"each row: the paper's figures, then convbench's (meas.: {where})",
        "top-1 meas.: convbench's own evaluation, where one was run"
        if has_top1
        else "top-1 is PUBLISHED ONLY: convbench measures no accuracy (its models have random weights)",
        f"the paper's GMACs are converted from its printed unit; how it counts: `convbench tables {t.key}`",
        f"{WARN} on params: not the published figure to its printed precision",
        "speed-up = median(baseline)/median(row) in one interleaved run, bootstrap 95% interval; the paper's is its "
        f"{'CPU' if device == 'cpu' else 'GPU'} column; by MACs = MACs(baseline)/MACs(row)",
    ]
    if first.get("timing_convention"):
        caption.append(f"latency measured as {first['timing_convention']} (speed-ups do not depend on it)")
    if device == "cuda" and format_number(first.get("batch_size"), ".0f") == "1":
        # Papers rarely give the batch of their GPU timings, and GPU times below what one eager batch-1 forward
        # pass can cost are per-image times of batched runs: offer that convention beside batch 1.
        caption.append("papers' GPU times are often per-image times of a batched run: -b 64 measures that convention")
    if any(truthy(line.get("noisy")) for line in lines):
        caption.append(f"{WARN} elsewhere: the figure behind a noise warning (reasons below)")
    if reused:
        caption.append(f"{len(reused)} row(s) reused from the result file (same settings); --force measures again")
    return "\n".join(caption)


def params_warnings(lines: Sequence[dict[str, Any]]) -> list[str]:
    """One line per row whose measured params differ from the published ones beyond the printed precision."""
    out = []
    for line in lines:
        match = line.get("params_match")
        if match is False or str(match).lower() == "false":
            note = f" ({line['note']})" if not is_blank(line.get("note")) else ""
            out.append(
                f"warning: {line['model']}: measured {float(line['params_m']):.3f} M params, published "
                f"{format_number(line.get('params_m_published'))} M{note}"
            )
    return out
