"""Joining result files from many machines, shards or runs (``convbench merge``).

Every row keeps its environment fingerprint and the file it came from (``source_file``). Timings from different
runs are never divided: every speed-up convbench reports comes from models interleaved in one run.

What merge reads: result files of ``profile``, ``compare``, ``run`` and ``reproduce``. A ``reproduce`` file also
holds the paper's rows that convbench does not build; those lines carry published figures only, no measurement
and no ``schema_version``, and are kept as they are. Every other row must agree with the schema it names: the
current version or an older one whose differences are known (``OLDER_SCHEMAS``; a note says what reads differently),
and the columns every measured row has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.errors import ConvbenchError, UserInputError
from convbench.results.files import (
    FINGERPRINT_COLUMNS,
    OLDER_SCHEMAS,
    SCHEMA_VERSION,
    SPEEDUP_COLUMNS,
    check_writable,
    is_blank,
    output_format,
    read_rows,
    write_rows,
)

# What every measured row of this schema has; a row without them is not what its schema_version says.
REQUIRED_COLUMNS = ("run_id", "model")
# What only a measurement writes: a line without any of these (and without a schema_version) is a published one.
MEASURED_COLUMNS = ("schema_version", "run_id", "median_ms", "error")


@dataclass
class MergeResult:
    """What ``merge_files`` wrote: rows, distinct machines and runs among the measured rows, and notes."""

    rows: int
    machines: int
    runs: int
    notes: list[str] = field(default_factory=list)
    published: int = 0  # lines with published figures only (reproduce files)


def schema_major(value: Any) -> int | None:
    """The schema version a cell names, as an integer (CSV reads ``2`` as ``2.0`` where a column has blanks);
    None for a blank cell; -1 for text that is no version at all."""
    if is_blank(value):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return -1
    return int(number) if number.is_integer() else -1


def check_rows(path: Path, rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """Each row of ``path`` in order, with whether it is a measurement (its schema_version as an integer) or a
    line of published figures only; a one-line UserInputError where a row disagrees with its own schema."""
    checked: list[tuple[dict[str, Any], bool]] = []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}, {'line' if path.suffix.lower() == '.csv' else 'row'} {number}"
        version = schema_major(row.get("schema_version"))
        if version is None:
            if all(is_blank(row.get(c)) for c in MEASURED_COLUMNS):
                checked.append((row, False))
                continue
            raise UserInputError(
                f"{where} holds a measurement but no schema_version; it was not written by this convbench "
                f"(schema {SCHEMA_VERSION}): rerun it, or remove the row"
            )
        if version == -1:
            raise UserInputError(f"{where}: schema_version {row.get('schema_version')!r} is not a version number")
        if version > SCHEMA_VERSION:
            raise UserInputError(
                f"{where} has schema version {version}, newer than this convbench's {SCHEMA_VERSION}: "
                "upgrade convbench to merge it"
            )
        if version < SCHEMA_VERSION and version not in OLDER_SCHEMAS:
            raise UserInputError(
                f"{path} has schema version {version}; this convbench reads and writes {SCHEMA_VERSION}, "
                "so its columns may mean other things: refusing to merge"
            )
        missing = [c for c in REQUIRED_COLUMNS if is_blank(row.get(c))]
        if missing:
            raise UserInputError(
                f"{where} says schema version {version} but has no {missing[0]!r}, which every row of it has: "
                "the file was edited or cut; refusing to merge"
            )
        checked.append(({**row, "schema_version": version}, True))
    if not any(is_measured for _, is_measured in checked):
        raise UserInputError(
            f"{path} is not a convbench result file of schema {SCHEMA_VERSION} "
            "(no row with a schema_version); rerun it with this convbench"
        )
    return checked


def merge_files(files: Sequence[Path], output: Path, speedup_vs: str | None = None) -> MergeResult:
    """Join result files into ``output`` (atomically), refusing rows that disagree with their schema.

    With ``speedup_vs``, every row's speed-up columns are cleared, and a row gets them back only where that
    model was the baseline of its own run (the speed-up it already carries is then over that model, measured
    interleaved); no speed-up is computed across runs, and the notes say for how many rows and why.
    """
    if not files:
        raise UserInputError("merge needs at least one result file")
    output_format(output, None)
    check_writable(output)
    rows: list[dict[str, Any]] = []
    measured_rows: list[dict[str, Any]] = []
    published = 0
    for path in files:
        if not path.is_file():
            raise UserInputError(f"no result file {path}")
        try:
            found = read_rows(path)
        except ConvbenchError as exc:
            raise UserInputError(str(exc)) from None
        # In the file's order: published lines stay between the measured ones, as the paper's table has them.
        for row, is_measured in check_rows(path, found):
            rows.append({**row, "source_file": str(path)})
            if is_measured:
                measured_rows.append(rows[-1])
            else:
                published += 1
    notes: list[str] = []
    if published:
        notes.append(f"{published} line(s) hold published figures only (no measurement); kept as they are")
    for version in sorted({r["schema_version"] for r in measured_rows} & set(OLDER_SCHEMAS)):
        count = sum(r["schema_version"] == version for r in measured_rows)
        notes.append(f"{count} row(s) of schema {version} kept as written; in them {OLDER_SCHEMAS[version]}")
    if speedup_vs is not None:
        notes += restrict_speedups(measured_rows, speedup_vs)
    write_rows(output, rows, append=False)
    machines = {tuple(str(r.get(c)) for c in FINGERPRINT_COLUMNS) for r in measured_rows}
    runs = {r.get("run_id") for r in measured_rows}
    return MergeResult(len(rows), len(machines), len(runs), notes, published)


def restrict_speedups(rows: list[dict[str, Any]], baseline: str) -> list[str]:
    """Leave speed-ups over ``baseline`` only: a row keeps its own where ``baseline`` was its run's baseline (the
    baseline's own row included, 1.0 over itself); every other row, ``baseline``'s rows in runs that had another
    baseline too, has all speed-up columns cleared and a ``speedup_note`` saying why."""
    kept = cleared = 0
    baseline_runs = {r.get("run_id") for r in rows if r.get("model") == baseline}
    for row in rows:
        if row.get("baseline") == baseline:
            kept += 1
            continue
        for column in SPEEDUP_COLUMNS:
            row[column] = None
        row["baseline"] = baseline
        if row.get("model") == baseline:
            row["speedup_note"] = (
                f"{baseline} was timed here against another baseline; its speed-up over that one is cleared"
            )
        elif row.get("run_id") in baseline_runs:
            row["speedup_note"] = (
                f"{baseline} was timed in this row's run but was not its baseline; rerun with it first"
            )
        else:
            row["speedup_note"] = (
                f"{baseline} was not timed in this row's run; a ratio across runs would mix the differences "
                "between machines and sessions into it"
            )
        cleared += 1
    notes = [f"{kept} row(s) keep their speed-up over {baseline}, measured interleaved in their own run"]
    if cleared:
        notes.append(
            f"{cleared} row(s) get no speed-up over {baseline}: it was not their run's baseline, and "
            "convbench never divides timings from different runs or machines"
        )
    return notes
