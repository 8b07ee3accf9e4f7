"""Rebuild a paper's table: published numbers beside convbench's counts and timings, row by row.

``reproduce(key, config)`` builds every registered model of a packaged table (``convbench.papers.tables``),
counts and times them with ``benchmark()`` in ONE interleaved run (baselines first), and returns one line per
paper row with the published and the measured columns side by side. The lines are written to a CSV file.

Speed-ups. Each row names its own baseline (the MoD paper: ResNet101 for R152/R101-MoD, ResNet50 for R86/R75/
R50-MoD, ...). Every baseline a row needs is timed in the same interleaved run as the row, and the row's speed-up
is median(baseline) / median(row) computed from the raw samples of that run, with the same bootstrap 95% interval
and Mann–Whitney U test as ``convbench compare`` (``convbench.stats.speedup``). A speed-up therefore never
compares timings from two different runs.

Resuming. Rows already in the output file that were measured with the same settings (model, device, runtime,
threads, batch size, resolution, MoD implementation, MAC convention and the other timing switches) against the
same baseline are not measured again unless ``force``. The rows still missing are measured in one new
interleaved run *together with the baselines they need*, which are timed again in that run even when the file
already has them; each row keeps the speed-up from its own run (its ``run_id`` and ``baseline_median_ms`` say
which baseline timing it was divided by). The baseline's own line shows its latest timing. One run is the unit of
resumption: an interrupted run writes nothing, and a complete one is never measured again.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, available_cores, benchmark
from convbench.counting import get_convention
from convbench.errors import UserInputError
from convbench.measure import Progress
from convbench.models.mod import DEFAULT_MOD_IMPL
from convbench.models.registry import get_entry
from convbench.papers.tables import PublishedRow, PublishedTable, load_table
from convbench.results import check_writable, read_rows, write_rows
from convbench.stats import speedup

# Measured columns that are about the speed-up; recomputed per row against the row's own baseline.
SPEEDUP_COLUMNS = ("baseline", "speedup", "speedup_low", "speedup_high", "p_value", "significant", "verdict",
                   "theoretical_speedup", "baseline_median_ms")


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


def config_key(config: BenchmarkConfig) -> str:
    """Everything in ``config`` that decides a measurement, as one comparable string (timing settings aside)."""
    parts = {
        "device": config.device,
        "runtime": config.runtime_name,
        "threads": config.threads or available_cores(),
        "batch": config.batch_size,
        "resolution": config.resolution or "default",
        "mod_impl": config.mod_impl or "default",
        "convention": config.convention,
        "exporter": config.exporter if config.runtime_name == "onnxruntime" else "",
        "precision": getattr(config, "precision", "fp32"),
        "channels_last": getattr(config, "channels_last", False),
        "compile": getattr(config, "compile", False),
        "tf32": getattr(config, "tf32", False),
        "cudnn_benchmark": getattr(config, "cudnn_benchmark", True) if config.device == "cuda" else "",
        "cuda_graphs": getattr(config, "cuda_graphs", False),
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v not in ("", False))


def expected_settings(model: str, config: BenchmarkConfig) -> dict[str, Any]:
    """The per-row settings a line measured for ``model`` under ``config`` carries."""
    entry = get_entry(model)
    default_impl = DEFAULT_MOD_IMPL if entry.family == "mod" else ""
    return {
        "device": config.device,
        "runtime": config.runtime_name,
        "threads": config.threads or available_cores(),
        "batch_size": config.batch_size,
        "resolution": config.resolution if config.resolution is not None else entry.resolution,
        "mod_impl": config.overrides_for(entry).get("impl", default_impl),
        "macs_convention": get_convention(config.convention, entry.family).name,
        "config_key": config_key(config),
    }


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _same(a: Any, b: Any) -> bool:
    if _blank(a) or _blank(b):
        return _blank(a) and _blank(b)
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
    existing: Sequence[dict[str, Any]], table: PublishedTable, models: Sequence[str], config: BenchmarkConfig
) -> dict[str, dict[str, Any]]:
    """For each model, the latest line of ``existing`` measured with the same settings against the same baseline."""
    found: dict[str, dict[str, Any]] = {}
    for model in models:
        settings = expected_settings(model, config)
        baseline = table.row_for(model).baseline
        for line in reversed(existing):
            if line.get("model") != model or _blank(line.get("median_ms")) or not _blank(line.get("error")):
                continue
            if not all(_same(line.get(k), v) for k, v in settings.items()):
                continue
            if not _same(line.get("baseline"), baseline or ""):
                continue
            found[model] = line
            break
    return found


def _with_speedups(
    table: PublishedTable, rows: list[dict[str, Any]], samples: dict[str, list[float]]
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
            s = speedup(samples[base], samples[row["model"]])
            row.update(
                speedup=s.ratio, speedup_low=s.low, speedup_high=s.high, p_value=s.p_value,
                significant=s.significant, verdict="baseline" if base == row["model"] else s.verdict(),
                theoretical_speedup=base_row["gmacs"] / row["gmacs"] if row["gmacs"] else math.nan,
                baseline_median_ms=base_row["median_ms"],
            )
        out.append(row)
    return out


def _measure(
    table: PublishedTable, models: Sequence[str], config: BenchmarkConfig, progress: Progress | None
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    rows = benchmark(list(models), config, progress, samples=records)
    samples = {r["model"]: [ms / 1e3 for ms in r["samples_ms"]] for r in records}
    return _with_speedups(table, rows, samples)


def _published_columns(table: PublishedTable, row: PublishedRow, device: str) -> dict[str, Any]:
    return {
        "table": table.key, "method": row.method, "model": row.model or "", "baseline": row.baseline or "",
        "dataset": row.dataset, "top1_published": row.top1, "top1_std_published": row.top1_std,
        "top5_published": row.top5, "params_m_published": row.params_m, "macs_published": row.macs,
        "macs_unit_published": row.macs_unit or "", "gmacs_published": row.gmacs,
        "latency_ms_published": row.latency_ms(device), "speedup_published": row.speedup(device),
        "cpu_ms_published": row.cpu_ms, "gpu_ms_published": row.gpu_ms, "speedup_cpu_published": row.speedup_cpu,
        "speedup_gpu_published": row.speedup_gpu, "source_paper": row.paper, "source_table": row.table,
        "source": row.source, "note": row.note,
    }


def _comparison(row: PublishedRow, measured: dict[str, Any] | None) -> dict[str, Any]:
    if measured is None or _blank(measured.get("params_m")):
        return {"params_delta_m": math.nan, "params_match": "", "gmacs_delta_pct": math.nan}
    params = float(measured["params_m"])
    agree = row.params_agree(params)
    gmacs = measured.get("gmacs")
    pub = row.gmacs
    return {
        "params_delta_m": params - row.params_m if row.params_m is not None else math.nan,
        "params_match": "" if agree is None else agree,
        "gmacs_delta_pct": 100 * (float(gmacs) - pub) / pub if pub and not _blank(gmacs) else math.nan,
    }


LEADING = (
    "table", "method", "model", "baseline", "dataset", "top1_published", "top1_std_published", "top5_published",
    "params_m_published", "params_m", "params_delta_m", "params_match", "macs_published", "macs_unit_published",
    "gmacs_published", "gmacs", "gmacs_delta_pct", "latency_ms_published", "median_ms", "speedup_published",
    "speedup", "speedup_low", "speedup_high", "theoretical_speedup", "baseline_median_ms",
)


def _line(table: PublishedTable, row: PublishedRow, measured: dict[str, Any] | None,
          config: BenchmarkConfig) -> dict[str, Any]:
    line: dict[str, Any] = {**_published_columns(table, row, config.device)}
    if measured is not None:
        published = set(line)
        line.update({k: v for k, v in measured.items() if k not in published or k in ("model", "baseline")})
        line["model"], line["baseline"] = row.model or "", row.baseline or ""
    else:  # published only: still tagged with the settings, so the file groups it with its run
        line.update(device=config.device, runtime=config.runtime_name, threads=config.threads or available_cores(),
                    batch_size=config.batch_size)
    line["config_key"] = config_key(config)
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
) -> ReproduceResult:
    """Measure the registered models of ``table`` and line them up with the published rows.

    ``output`` defaults to ``results/<key>-<device>-<runtime>.csv``; with ``save`` the lines are written there
    (lines of other tables or settings in the file are kept). Rows already measured with the same settings are
    reused unless ``force``; ``only`` (shell-style patterns) restricts the table to some models and their
    baselines.
    """
    table = load_table(table) if isinstance(table, str) else table
    config = (config or BenchmarkConfig()).validate()
    rows = select_rows(table, only)
    models = [r.model for r in rows if r.model]
    if not models:
        raise UserInputError(f"table {table.key!r} has no model that convbench builds")
    for m in models:  # unknown convention or device fail here, before any work
        expected_settings(m, config)
    path = output if output is not None else default_output(table.key, config)
    if save:
        if path.suffix.lower() != ".csv":
            raise UserInputError(f"reproduce writes CSV; give --output a .csv file, not {path.name!r}")
        check_writable(path)
    existing = read_rows(path) if path.exists() and path.stat().st_size > 0 else []
    reusable = {} if force else find_reusable(existing, table, models, config)
    missing = [m for m in models if m not in reusable]
    measured: dict[str, dict[str, Any]] = {}
    if missing:
        needed = set(missing) | {table.row_for(m).baseline for m in missing if table.row_for(m).baseline}
        group = measurement_order(table, sorted(needed))
        for row in _measure(table, group, config, progress):
            measured[row["model"]] = row
    results = {**reusable, **measured}
    lines = [_line(table, r, results.get(r.model) if r.model else None, config) for r in rows]
    result = ReproduceResult(table, config, lines, measured=list(measured), reused=list(reusable), path=None)
    if save:
        write_lines(path, existing, lines)
        result.path = path
    return result


def _identity(line: dict[str, Any]) -> tuple[str, ...]:
    """A line stands for one paper row under one configuration; a new line replaces the old one."""
    return tuple("" if _blank(line.get(k)) else str(line[k]) for k in ("table", "method", "config_key"))


def write_lines(path: Path, existing: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]) -> Path:
    """Write ``lines`` to ``path`` atomically, replacing the lines of the same table rows and settings."""
    new = {_identity(line) for line in lines}
    kept = [line for line in existing if _identity(line) not in new]
    return write_rows(path, [*kept, *lines], "csv", append=False, schema=False)
