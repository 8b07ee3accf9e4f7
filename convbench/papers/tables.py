"""The papers' published result tables: package data, loaded into typed, validated objects.

One CSV file per table in ``convbench/papers/data/``. A file opens with ``# name: value`` metadata lines
(``key``, ``paper``, ``title``, ``source``, ``units``, ``counting`` are required; others such as ``timing``,
``training`` or ``baselines`` are kept as notes), then a header line and one row per line of the paper's table:

``model``       registered convbench model, or empty for a method convbench does not build (published only)
``method``      the row's label as the paper prints it
``dataset``     imagenet, cifar10 or cifar100
``top1``/``top1_std``/``top5``   accuracy in %, as printed
``params_m``    parameters in millions, as printed (its printed precision is kept: "3.5" is one decimal)
``macs``/``macs_unit``   MACs as printed and their unit, G or M (the table's ``counting`` line says how the
                paper counted them; ``PublishedRow.gmacs`` converts to G)
``cpu_ms``/``gpu_ms``/``speedup_cpu``/``speedup_gpu``   the paper's latencies and speed-ups
``baseline``    the registered model this row's speed-up is measured against (the baseline row names itself)
``paper``/``table``/``source``   where the row comes from: paper key, table number, section or page
``note``        footnotes and known inconsistencies

Numbers keep the paper's own units and counting; nothing is converted in the files.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from convbench.errors import ConvbenchError, UserInputError
from convbench.papers import PAPERS

COLUMNS = (
    "model",
    "method",
    "dataset",
    "top1",
    "top1_std",
    "top5",
    "params_m",
    "macs",
    "macs_unit",
    "cpu_ms",
    "gpu_ms",
    "speedup_cpu",
    "speedup_gpu",
    "baseline",
    "paper",
    "table",
    "source",
    "note",
)
NUMERIC = ("top1", "top1_std", "top5", "params_m", "macs", "cpu_ms", "gpu_ms", "speedup_cpu", "speedup_gpu")
REQUIRED_METADATA = ("key", "paper", "title", "source", "units", "counting")
MACS_UNITS = {"G": 1.0, "M": 1e-3}
DATASET_CLASSES = {"imagenet": 1000, "cifar10": 10, "cifar100": 100}


class TableError(ConvbenchError):
    """A published-table file that is missing, malformed or names something convbench does not know."""


@dataclass(frozen=True)
class PublishedRow:
    """One row of a paper's table, in the paper's units."""

    method: str
    model: str | None
    dataset: str
    top1: float | None
    top1_std: float | None
    top5: float | None
    params_m: float | None
    params_decimals: int | None  # printed precision of params_m ("25.56" -> 2)
    macs: float | None
    macs_unit: str | None
    macs_decimals: int | None  # printed precision of macs
    cpu_ms: float | None
    gpu_ms: float | None
    speedup_cpu: float | None
    speedup_gpu: float | None
    baseline: str | None
    paper: str
    table: str
    source: str
    note: str = ""

    @property
    def gmacs(self) -> float | None:
        """The published MACs in G (converted from the printed unit)."""
        if self.macs is None or self.macs_unit is None:
            return None
        return self.macs * MACS_UNITS[self.macs_unit]

    @property
    def is_baseline(self) -> bool:
        return self.model is not None and self.model == self.baseline

    def latency_ms(self, device: str) -> float | None:
        """The published latency on ``device`` ("cpu" or "cuda")."""
        return self.cpu_ms if device == "cpu" else self.gpu_ms

    def speedup(self, device: str) -> float | None:
        """The published speed-up over the baseline on ``device``; 1.0 for the baseline row itself."""
        value = self.speedup_cpu if device == "cpu" else self.speedup_gpu
        if value is None and self.is_baseline:
            return 1.0
        return value

    def params_agree(self, measured_m: float) -> bool | None:
        """Whether ``measured_m`` rounds to the printed value (None when the paper prints no params)."""
        return params_agree(self.params_m, self.params_decimals, measured_m)


def params_agree(published: float | None, decimals: int | None, measured: float) -> bool | None:
    """``measured`` agrees with ``published`` to the printed precision: within half a unit of the last digit."""
    if published is None or decimals is None or measured is None or math.isnan(measured):
        return None
    return abs(measured - published) <= 0.5 * 10.0**-decimals + 1e-9


@dataclass(frozen=True)
class PublishedTable:
    """A paper's table: metadata and rows, validated."""

    key: str
    paper: str
    title: str
    source: str
    units: str
    counting: str
    rows: tuple[PublishedRow, ...]
    notes: dict[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def models(self) -> list[str]:
        """Registered models of the table, in the table's order."""
        return [r.model for r in self.rows if r.model]

    @property
    def baselines(self) -> list[str]:
        """The baselines the rows name, in order of first use."""
        return list(dict.fromkeys(r.baseline for r in self.rows if r.baseline))

    def row_for(self, model: str) -> PublishedRow:
        for r in self.rows:
            if r.model == model:
                return r
        raise KeyError(model)

    @property
    def citation(self) -> str:
        return PAPERS[self.paper].citation


def data_dir() -> Path:
    return Path(str(resources.files("convbench.papers").joinpath("data")))


def list_tables() -> list[str]:
    """Keys of the packaged tables, sorted."""
    return sorted(p.stem for p in data_dir().glob("*.csv"))


@functools.cache
def load_table(key: str) -> PublishedTable:
    """The packaged table ``key`` (parsed once per process); an unknown key is a UserInputError that suggests
    the closest keys."""
    keys = list_tables()
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; known tables: {', '.join(keys)}"
        raise UserInputError(f"unknown table {key!r}{hint}")
    return load_table_file(data_dir() / f"{key}.csv")


def load_all() -> list[PublishedTable]:
    return [load_table(k) for k in list_tables()]


def load_table_file(path: Path) -> PublishedTable:
    """Read and validate one table file; any problem is a TableError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read paper table {path}: {exc}") from None
    return parse_table(text, str(path), expected_key=path.stem)


def parse_table(text: str, origin: str, expected_key: str | None = None) -> PublishedTable:
    """Parse the text of a table file (``origin`` names it in errors)."""
    lines = text.splitlines()
    metadata: dict[str, str] = {}
    first_data = 0
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            first_data = i
            break
        name, sep, value = line[1:].partition(":")
        if not sep or not name.strip():
            raise TableError(f"{origin}: line {i + 1}: metadata lines read '# name: value', got {line!r}")
        metadata[name.strip().lower()] = value.strip()
    else:
        first_data = len(lines)

    def fail(message: str, line: int | None = None) -> TableError:
        where = f"{origin}: line {line}: " if line else f"{origin}: "
        return TableError(f"invalid paper table {where}{message}")

    missing = [m for m in REQUIRED_METADATA if not metadata.get(m)]
    if missing:
        raise fail(f"missing metadata line(s) {', '.join('# ' + m + ': ...' for m in missing)}")
    key = metadata["key"]
    if expected_key is not None and key != expected_key:
        raise fail(f"key {key!r} does not match the file name {expected_key!r}")
    if metadata["paper"] not in PAPERS:
        raise fail(f"unknown paper key {metadata['paper']!r}; known: {', '.join(sorted(PAPERS))}")

    reader = csv.reader(io.StringIO("\n".join(lines[first_data:])))
    try:
        header = next(reader)
    except StopIteration:
        raise fail("no header line after the metadata") from None
    header = [h.strip() for h in header]
    if tuple(header) != COLUMNS:
        absent = [c for c in COLUMNS if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        detail = (
            "; ".join(
                part
                for part in (
                    f"missing column(s) {', '.join(absent)}" if absent else "",
                    f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
            or "columns out of order"
        )
        raise fail(f"header must be {','.join(COLUMNS)} ({detail})", first_data + 1)

    rows: list[PublishedRow] = []
    seen: set[str] = set()
    for offset, values in enumerate(reader):
        line = first_data + 2 + offset
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(COLUMNS):
            raise fail(f"expected {len(COLUMNS)} fields, got {len(values)} (a comma inside a value needs quotes)", line)
        cells = {c: v.strip() for c, v in zip(COLUMNS, values, strict=True)}
        rows.append(_parse_row(cells, line, fail, seen))
    if not rows:
        raise fail("no rows")
    models = {r.model for r in rows if r.model}
    baselines = {r.baseline for r in rows if r.baseline}
    methods: set[str] = set()
    for r in rows:
        if r.method in methods:
            raise fail(f"method {r.method!r} appears twice; row labels must be unique within a table")
        methods.add(r.method)
        if r.baseline and r.baseline not in models:
            raise fail(f"baseline {r.baseline!r} of row {r.method!r} is not the model of any row of the table")
        if r.model in baselines and r.baseline != r.model:
            raise fail(f"row {r.method!r} is a baseline, so its own baseline must be {r.model!r}")
    notes = {k: v for k, v in metadata.items() if k not in REQUIRED_METADATA}
    return PublishedTable(
        key=key,
        paper=metadata["paper"],
        title=metadata["title"],
        source=metadata["source"],
        units=metadata["units"],
        counting=metadata["counting"],
        rows=tuple(rows),
        notes=notes,
        path=origin,
    )


def _parse_row(cells: dict[str, str], line: int, fail: Any, seen: set[str]) -> PublishedRow:
    from convbench.models.registry import get_entry

    numbers: dict[str, float | None] = {}
    for column in NUMERIC:
        raw = cells[column]
        if not raw:
            numbers[column] = None
            continue
        try:
            value = float(raw)
        except ValueError:
            raise fail(f"column {column}: {raw!r} is not a number", line) from None
        if not math.isfinite(value) or value < 0:
            raise fail(f"column {column}: {raw!r} must be a finite number ≥ 0", line)
        numbers[column] = value
    for column in ("top1", "top5"):
        value = numbers[column]
        if value is not None and value > 100:
            raise fail(f"column {column}: {value} is not a percentage", line)
    if numbers["params_m"] == 0:
        raise fail("column params_m: 0 parameters", line)
    if not cells["method"]:
        raise fail("column method is empty", line)
    dataset = cells["dataset"]
    if dataset not in DATASET_CLASSES:
        raise fail(f"column dataset: {dataset!r}; choose from {', '.join(DATASET_CLASSES)}", line)
    unit = cells["macs_unit"] or None
    if unit is not None and unit not in MACS_UNITS:
        raise fail(f"column macs_unit: {unit!r}; choose from {', '.join(MACS_UNITS)}", line)
    if (numbers["macs"] is None) != (unit is None):
        raise fail("columns macs and macs_unit go together (both given or both empty)", line)
    for column in ("paper", "table", "source"):
        if not cells[column]:
            raise fail(f"column {column} is empty: every row cites its paper, table and section", line)
    if cells["paper"] not in PAPERS:
        raise fail(f"column paper: unknown paper key {cells['paper']!r}", line)

    model = cells["model"] or None
    if model is not None:
        try:
            entry = get_entry(model)
        except UserInputError as exc:
            raise fail(f"column model: {exc}", line) from None
        if model in seen:
            raise fail(f"model {model!r} appears twice", line)
        seen.add(model)
        if entry.num_classes != DATASET_CLASSES[dataset]:
            raise fail(f"model {model!r} has {entry.num_classes} classes but the row is {dataset}", line)
    baseline = cells["baseline"] or None
    if baseline is not None:
        try:
            get_entry(baseline)
        except UserInputError as exc:
            raise fail(f"column baseline: {exc}", line) from None
    params_raw = cells["params_m"]
    decimals = len(params_raw.partition(".")[2]) if params_raw else None
    macs_decimals = len(cells["macs"].partition(".")[2]) if cells["macs"] else None
    return PublishedRow(
        method=cells["method"],
        model=model,
        dataset=dataset,
        top1=numbers["top1"],
        top1_std=numbers["top1_std"],
        top5=numbers["top5"],
        params_m=numbers["params_m"],
        params_decimals=decimals,
        macs=numbers["macs"],
        macs_unit=unit,
        macs_decimals=macs_decimals,
        cpu_ms=numbers["cpu_ms"],
        gpu_ms=numbers["gpu_ms"],
        speedup_cpu=numbers["speedup_cpu"],
        speedup_gpu=numbers["speedup_gpu"],
        baseline=baseline,
        paper=cells["paper"],
        table=cells["table"],
        source=cells["source"],
        note=cells["note"],
    )


def published_top1(models: Sequence[str], table: str | None = None) -> dict[str, tuple[float, str]]:
    """Published top-1 per model and the table it comes from.

    With ``table`` only that table is used; otherwise the table holding most of ``models`` wins, and models it
    lacks come from the next tables in that order.
    """
    tables = [load_table(table)] if table else load_all()
    wanted = set(models)
    tables.sort(key=lambda t: -len(wanted & {r.model for r in t.rows if r.model and r.top1 is not None}))
    found: dict[str, tuple[float, str]] = {}
    for t in tables:
        for r in t.rows:
            if r.model in wanted and r.model not in found and r.top1 is not None:
                found[r.model] = (r.top1, t.key)
    return found


def model_top1(model: str, paper: str) -> tuple[float, str] | None:
    """A model's published top-1 and its table key, preferring the tables of the model's own paper."""
    for table in sorted(load_all(), key=lambda t: t.paper != paper):
        for row in table.rows:
            if row.model == model and row.top1 is not None:
                return row.top1, table.key
    return None
