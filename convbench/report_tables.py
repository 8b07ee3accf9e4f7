"""Rendering of the papers' tables: the list of known tables, one published table, and a reproduction
(published and measured values side by side)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from convbench.papers.tables import PublishedTable


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, spec: str = ".2f") -> str:
    if _blank(value):
        return "—"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def tables_table(tables: Sequence[PublishedTable]) -> Table:
    """``convbench tables``: key, paper, title, rows and the registered models."""
    table = Table(title=f"{len(tables)} published tables (convbench reproduce KEY)",
                  caption="rows: paper rows (built by convbench); `convbench tables KEY` shows one table")
    for column in ("key", "paper", "title", "rows", "models"):
        table.add_column(column, overflow="fold", justify="right" if column == "rows" else "left")
    for t in tables:
        models = ", ".join(t.models)
        table.add_row(t.key, t.paper, t.title, f"{len(t.rows)} ({len(t.models)})", models)
    return table


def published_table(t: PublishedTable) -> Table:
    """One table as published (``convbench tables KEY``)."""
    caption = f"{t.source}\nunits: {t.units}\ncounting: {t.counting}"
    for name, value in t.notes.items():
        caption += f"\n{name}: {value}"
    table = Table(title=f"{t.key}: {t.title}", caption=caption, caption_justify="left")
    columns = ["method", "model", "top-1", "top-5", "params M", "MACs", "CPU ms", "GPU ms", "×CPU", "×GPU",
               "baseline", "note"]
    for c in columns:
        table.add_column(c, overflow="fold", justify="left" if c in ("method", "model", "baseline", "note")
                         else "right")
    for r in t.rows:
        top1 = _fmt(r.top1) + (f"±{r.top1_std:.2f}" if r.top1_std is not None else "")
        params = "—" if r.params_m is None else f"{r.params_m:.{r.params_decimals}f}"
        macs = "—" if r.macs is None else f"{r.macs:.{r.macs_decimals}f} {r.macs_unit}"
        table.add_row(r.method, r.model or "(not built)", top1, _fmt(r.top5), params, macs, _fmt(r.cpu_ms),
                      _fmt(r.gpu_ms), _fmt(r.speedup_cpu), _fmt(r.speedup_gpu), r.baseline or "—", r.note)
    return table


def reproduce_table(t: PublishedTable, lines: Sequence[dict[str, Any]], reused: Sequence[str] = ()) -> Table:
    """Published vs measured, one line per paper row."""
    measured = [line for line in lines if not _blank(line.get("median_ms"))]
    first = measured[0] if measured else lines[0]
    device = first.get("device", "cpu")
    where = (f"{first.get('runtime')} on {device}, {_fmt(first.get('threads'), '.0f')} thread(s), batch "
             f"{_fmt(first.get('batch_size'), '.0f')}; MACs counted by convention "
             f"{first.get('macs_convention', '—')}")
    caption = (
        f"top-1 is PUBLISHED ONLY: convbench measures no accuracy (its models have random weights).\n"
        f"Measured: {where}. pub = the paper's value (GMACs converted from its printed unit: {t.counting}).\n"
        "Δ params = measured − published, ⚠ where they differ beyond the printed precision; Δ GMACs in %.\n"
        f"Speed-up = median(baseline)/median(row) within one interleaved run, bootstrap 95% CI; published speed-ups "
        f"are the paper's {'CPU' if device == 'cpu' else 'GPU'} column. MAC× = measured MACs of baseline / row."
    )
    if reused:
        caption += f"\n{len(reused)} row(s) reused from the result file (same settings); --force measures again."
    table = Table(title=f"convbench reproduce {t.key}: {t.title}", caption=caption, caption_justify="left")
    columns = [
        ("method", "left"), ("model", "left"), ("top-1 pub", "right"), ("params pub", "right"),
        ("meas", "right"), ("Δ", "right"), ("GMACs pub", "right"), ("meas", "right"), ("Δ%", "right"),
        ("ms pub", "right"), ("meas", "right"), ("× pub", "right"), ("× meas [95% CI]", "right"),
        ("MAC×", "right"), ("vs", "left"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for line in lines:
        model = line.get("model") or ""
        top1 = _fmt(line.get("top1_published"))
        if not _blank(line.get("top1_std_published")):
            top1 += f"±{float(line['top1_std_published']):.2f}"
        if _blank(line.get("median_ms")) and _blank(line.get("error")):
            table.add_row(line["method"], "(published only)" if not model else f"{model} (not measured)", top1,
                          _fmt(line.get("params_m_published")), "—", "", _fmt(line.get("gmacs_published"), ".3f"),
                          "—", "", _fmt(line.get("latency_ms_published")), "—", _fmt(line.get("speedup_published")),
                          "—", "—", line.get("baseline") or "", style="dim")
            continue
        if not _blank(line.get("error")):
            table.add_row(line["method"], model, top1, _fmt(line.get("params_m_published")),
                          _fmt(line.get("params_m"), ".3f"), "", _fmt(line.get("gmacs_published"), ".3f"),
                          _fmt(line.get("gmacs"), ".3f"), "", _fmt(line.get("latency_ms_published")),
                          f"error: {line['error']}", _fmt(line.get("speedup_published")), "—", "—",
                          line.get("baseline") or "", style="red")
            continue
        delta = "" if _blank(line.get("params_delta_m")) else f"{float(line['params_delta_m']):+.2f}"
        if line.get("params_match") is False or str(line.get("params_match")).lower() == "false":
            delta += " ⚠"
        gdelta = "" if _blank(line.get("gmacs_delta_pct")) else f"{float(line['gmacs_delta_pct']):+.1f}"
        if _blank(line.get("speedup")):
            measured_speedup = "—"
        elif model and model == line.get("baseline"):
            measured_speedup = "1.00 (baseline)"
        else:
            measured_speedup = (f"{float(line['speedup']):.2f} [{_fmt(line.get('speedup_low'))}, "
                                f"{_fmt(line.get('speedup_high'))}]")
        table.add_row(
            line["method"], model, top1, _fmt(line.get("params_m_published")), _fmt(line.get("params_m"), ".3f"),
            delta, _fmt(line.get("gmacs_published"), ".3f"), _fmt(line.get("gmacs"), ".3f"), gdelta,
            _fmt(line.get("latency_ms_published")), _fmt(line.get("median_ms")), _fmt(line.get("speedup_published")),
            measured_speedup, _fmt(line.get("theoretical_speedup")), line.get("baseline") or "",
        )
    return table


def params_warnings(lines: Sequence[dict[str, Any]]) -> list[str]:
    """One line per row whose measured params differ from the published ones beyond the printed precision."""
    out = []
    for line in lines:
        match = line.get("params_match")
        if match is False or str(match).lower() == "false":
            note = f" ({line['note']})" if not _blank(line.get("note")) else ""
            out.append(
                f"warning: {line['model']}: measured {float(line['params_m']):.3f} M params, published "
                f"{_fmt(line.get('params_m_published'))} M{note}"
            )
    return out
