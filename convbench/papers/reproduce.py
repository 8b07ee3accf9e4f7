"""Rebuild a paper's table: published numbers beside convbench's counts and timings, row by row.

``reproduce(key, config)`` builds every registered model of a packaged table (``convbench.papers.tables``),
counts and times them with ``benchmark()`` in ONE run (interleaved within each trial, baselines included), and
returns one line per paper row with the published and the measured columns side by side, written to a CSV file.

Speed-ups. Each row names its own baseline (a paper may compare some rows with ResNet101 and others with
ResNet50). Every baseline a row needs is timed in the same interleaved trials as the row, and the row's speed-up
is median(baseline) / median(row) computed from the raw samples of those trials, with the same two-level
bootstrap 95% interval over trials as ``convbench compare`` (``convbench.stats.hierarchical_speedup``). A
speed-up therefore never compares timings from two different runs.

Resuming. Rows already in the output file that were measured with the same settings (model and its builder
arguments, device, runtime and its options, threads, batch size, resolution, MAC convention; the configuration's
``settings_key``) against the same baseline are not measured again unless ``force``. The rows still missing are
measured in one new run *together with the baselines they need*, which are timed again in that run even when the
file already has them; each row keeps the speed-up from its own run (its ``run_id`` and ``baseline_median_ms`` say
which baseline timing it was divided by). The baseline's own line shows its latest timing. One run is the unit of
resumption: an interrupted run writes nothing, and a complete one is never measured again.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, Plan, benchmark
from convbench.counting.macs import get_convention
from convbench.errors import UserInputError
from convbench.models.spec import resolve_model
from convbench.papers.accuracy import Accuracy, measured_top1
from convbench.papers.joins import join_gpu_speedups
from convbench.papers.tables import PublishedRow, PublishedTable, load_table
from convbench.progress import Progress
from convbench.results.files import SPEEDUP_COLUMNS, check_writable, is_blank, read_rows, rewrite_rows
from convbench.timing.stats import hierarchical_speedup


@dataclass
class ReproduceResult:
    """The side-by-side lines of one reproduction and what was measured for it."""

    table: PublishedTable
    config: BenchmarkConfig
    lines: list[dict[str, Any]]
    measured: list[str] = field(default_factory=list)  # models timed in this call
    reused: list[str] = field(default_factory=list)  # models whose lines came from the output file
    path: Path | None = None

    @property
    def measured_rows(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("model") in self.measured]


def default_output(key: str, config: BenchmarkConfig) -> Path:
    return Path("results") / f"{key}-{config.device}-{config.runtime_name}.csv"


def timing_convention(batch_size: int) -> str:
    """How a line's latency was taken, in words: the papers rarely say, so every line does."""
    if batch_size == 1:
        return "batch 1: latency of one image"
    return f"batch {batch_size}: per-image time = median batch time / {batch_size}"


def expected_settings(model: str, plan: Plan) -> dict[str, Any]:
    """The per-row settings a line measured for ``model`` under ``plan`` carries."""
    resolved = resolve_model(model)
    return {
        "device": plan.backend.device,
        "runtime": plan.backend.runtime,
        "threads": plan.backend.threads,
        "batch_size": plan.workload.batch_size,
        "resolution": plan.workload.resolution or resolved.resolution(),
        "macs_convention": get_convention(plan.workload.convention, resolved.paper_convention).name,
        "config_key": plan.settings_key,
    }


def _same(a: Any, b: Any) -> bool:
    if is_blank(a) or is_blank(b):
        return is_blank(a) and is_blank(b)
    if isinstance(a, bool | int | float) and isinstance(b, bool | int | float):
        return math.isclose(float(a), float(b))
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return str(a) == str(b)


def select_rows(table: PublishedTable, only: Sequence[str] | None = None) -> list[PublishedRow]:
    """The rows to show: all of them, or (``only``: shell-style patterns) the matching models and their baselines."""
    if not only:
        return list(table.rows)
    patterns = [p.lower() for p in only]
    chosen = {r.model for r in table.rows if r.model and any(fnmatch.fnmatchcase(r.model, p) for p in patterns)}
    if not chosen:
        raise UserInputError(
            f"--only {' '.join(only)!s} matches no model of table {table.key!r}; its models: {', '.join(table.models)}"
        )
    needed = chosen | {table.row_for(m).baseline for m in chosen if table.row_for(m).baseline}
    return [r for r in table.rows if r.model in needed]


def measurement_order(table: PublishedTable, models: Sequence[str]) -> list[str]:
    """Baselines first (in the table's order), then the other models in the table's order."""
    wanted = set(models)
    bases = [b for b in table.baselines if b in wanted]
    return bases + [m for m in table.models if m in wanted and m not in bases]


def find_reusable(
    existing: Sequence[dict[str, Any]], table: PublishedTable, models: Sequence[str], plan: Plan
) -> dict[str, dict[str, Any]]:
    """For each model, the latest line of ``existing`` measured with the same settings against the same baseline."""
    found: dict[str, dict[str, Any]] = {}
    for model in models:
        settings = expected_settings(model, plan)
        baseline = table.row_for(model).baseline
        for line in reversed(existing):
            if line.get("model") != model or is_blank(line.get("median_ms")) or not is_blank(line.get("error")):
                continue
            if not all(_same(line.get(k), v) for k, v in settings.items()):
                continue
            if not _same(line.get("baseline"), baseline or ""):
                continue
            found[model] = line
            break
    return found


def _with_speedups(
    table: PublishedTable, rows: list[dict[str, Any]], samples: dict[str, list[list[float]]]
) -> list[dict[str, Any]]:
    """Replace benchmark()'s speed-up over the first model by each row's speed-up over its own baseline."""
    by_model = {r["model"]: r for r in rows}
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in SPEEDUP_COLUMNS}
        base = table.row_for(row["model"]).baseline
        row["baseline"] = base or ""
        base_row = by_model.get(base) if base else None
        if base_row is not None and not row.get("error") and not base_row.get("error"):
            s = hierarchical_speedup(samples[base], samples[row["model"]])
            row.update(
                **s.as_row(baseline=base == row["model"]),
                theoretical_speedup=base_row["gmacs"] / row["gmacs"] if row["gmacs"] else math.nan,
                baseline_median_ms=base_row["median_ms"],
            )
        out.append(row)
    return out


def _measure(
    table: PublishedTable, models: Sequence[str], plan: Plan, progress: Progress | None
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    rows = benchmark(list(models), plan, progress, samples=records)
    samples: dict[str, list[list[float]]] = {}
    for r in records:  # one record per model and trial, in trial order
        samples.setdefault(r["model"], []).append([ms / 1e3 for ms in r["samples_ms"]])
    return _with_speedups(table, rows, samples)


def _published_columns(table: PublishedTable, row: PublishedRow, device: str) -> dict[str, Any]:
    return {
        "table": table.key,
        "method": row.method,
        "model": row.model or "",
        "baseline": row.baseline or "",
        "dataset": row.dataset,
        "top1_published": row.top1,
        "top1_std_published": row.top1_std,
        "top5_published": row.top5,
        "params_m_published": row.params_m,
        "macs_published": row.macs,
        "macs_unit_published": row.macs_unit or "",
        "gmacs_published": row.gmacs,
        "latency_ms_published": row.latency_ms(device),
        "speedup_published": row.speedup(device),
        "cpu_ms_published": row.cpu_ms,
        "gpu_ms_published": row.gpu_ms,
        "speedup_cpu_published": row.speedup_cpu,
        "speedup_gpu_published": row.speedup_gpu,
        "source_paper": row.paper,
        "source_table": row.table,
        "source": row.source,
        "note": row.note,
    }


def _comparison(row: PublishedRow, measured: dict[str, Any] | None) -> dict[str, Any]:
    if measured is None or is_blank(measured.get("params_m")):
        return {"params_delta_m": math.nan, "params_match": "", "gmacs_delta_pct": math.nan}
    params = float(measured["params_m"])
    agree = row.params_agree(params)
    gmacs = measured.get("gmacs")
    pub = row.gmacs
    return {
        "params_delta_m": params - row.params_m if row.params_m is not None else math.nan,
        "params_match": "" if agree is None else agree,
        "gmacs_delta_pct": 100 * (float(gmacs) - pub) / pub if pub and not is_blank(gmacs) else math.nan,
    }


LEADING = (
    "table",
    "method",
    "model",
    "baseline",
    "dataset",
    "top1",
    "top1_source",
    "top1_published",
    "top1_measured",
    "top1_std_published",
    "top5_published",
    "params_m_published",
    "params_m",
    "params_delta_m",
    "params_match",
    "macs_published",
    "macs_unit_published",
    "gmacs_published",
    "gmacs",
    "gmacs_delta_pct",
    "latency_ms_published",
    "median_ms",
    "speedup_published",
    "speedup",
    "speedup_low",
    "speedup_high",
    "theoretical_speedup",
    "baseline_median_ms",
)


def _line(
    table: PublishedTable,
    row: PublishedRow,
    measured: dict[str, Any] | None,
    plan: Plan,
    accuracy: dict[str, Accuracy],
) -> dict[str, Any]:
    line: dict[str, Any] = {**_published_columns(table, row, plan.backend.device)}
    found = accuracy.get(row.model or "")
    if found is not None and found.source == "measured":
        line.update(top1=found.top1, top1_source="measured", top1_measured=found.top1)
    elif row.top1 is not None:
        line.update(top1=row.top1, top1_source="published")
    if measured is not None:
        published = set(line)
        line.update({k: v for k, v in measured.items() if k not in published or k in ("model", "baseline")})
        line["model"], line["baseline"] = row.model or "", row.baseline or ""
    else:  # published only: still tagged with the settings, so the file groups it with its run
        line.update(
            device=plan.backend.device,
            runtime=plan.backend.runtime,
            threads=plan.backend.threads,
            batch_size=plan.workload.batch_size,
        )
    line["config_key"] = plan.settings_key
    line["timing_convention"] = timing_convention(plan.workload.batch_size)
    if measured is not None and not is_blank(measured.get("median_ms")):
        line["per_image_ms"] = float(measured["median_ms"]) / plan.workload.batch_size
    line.update(_comparison(row, measured))
    head = {k: line.get(k) for k in LEADING}
    return {**head, **{k: v for k, v in line.items() if k not in head}}


def reproduce(
    table: str | PublishedTable,
    config: BenchmarkConfig | None = None,
    output: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    only: Sequence[str] | None = None,
    save: bool = True,
    measured_files: Sequence[Path] | None = None,
) -> ReproduceResult:
    """Measure the registered models of ``table`` and line them up with the published rows.

    ``output`` defaults to ``results/<key>-<device>-<runtime>.csv``; with ``save`` the lines are written there
    (lines of other tables or settings in the file are kept). Rows already measured with the same settings are
    reused unless ``force``; ``only`` (shell-style patterns) restricts the table to some models and their
    baselines. Top-1 is the one measured by ``convbench evaluate`` where ``measured_files`` (default
    ``results/evaluate.csv``) hold it for a model, else the published one; ``top1_source`` says which.
    """
    table = load_table(table) if isinstance(table, str) else table
    config = config or BenchmarkConfig(convention="paper")
    if len(config.batch_size) > 1 or len(config.resolution) > 1:
        raise UserInputError("reproduce measures one batch size and one resolution; give one of each")
    plan = config.plan()
    rows = select_rows(table, only)
    models = [r.model for r in rows if r.model]
    if not models:
        raise UserInputError(f"table {table.key!r} has no model that convbench builds")
    for m in models:  # unknown convention or device fail here, before any work
        expected_settings(m, plan)
    path = output if output is not None else default_output(table.key, config)
    if save:
        if path.suffix.lower() != ".csv":
            raise UserInputError(f"reproduce writes CSV; give --output a .csv file, not {path.name!r}")
        check_writable(path)
    existing = read_rows(path) if path.exists() and path.stat().st_size > 0 else []
    reusable = {} if force else find_reusable(existing, table, models, plan)
    missing = [m for m in models if m not in reusable]
    measured: dict[str, dict[str, Any]] = {}
    if missing:
        needed = set(missing) | {table.row_for(m).baseline for m in missing if table.row_for(m).baseline}
        group = measurement_order(table, sorted(needed))
        for row in _measure(table, group, plan, progress):
            measured[row["model"]] = row
    results = {**reusable, **measured}
    accuracy = measured_top1(measured_files)
    lines = [_line(table, r, results.get(r.model) if r.model else None, plan, accuracy) for r in rows]
    if config.device == "cpu":
        join_gpu_speedups(lines, default_output(table.key, replace(config, device="cuda", runtime="torch")))
    result = ReproduceResult(table, config, lines, measured=list(measured), reused=list(reusable), path=None)
    if save:
        write_lines(path, existing, lines)
        result.path = path
    return result


def _identity(line: dict[str, Any]) -> tuple[str, ...]:
    """A line stands for one paper row under one configuration; a new line replaces the old one."""
    return tuple("" if is_blank(line.get(k)) else str(line[k]) for k in ("table", "method", "config_key"))


def write_lines(path: Path, existing: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]) -> Path:
    """Write ``lines`` to ``path`` atomically, replacing the lines of the same table rows and settings."""
    new = {_identity(line) for line in lines}
    # Read again under the file's lock: a concurrent reproduce run may have written lines since ``existing``.
    return rewrite_rows(
        path, lambda current: [*[x for x in current if _identity(x) not in new], *lines], "csv", schema=False
    )
