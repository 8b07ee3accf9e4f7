"""Run specs, shards and merging: sweeps that can be repeated and spread over many machines.

A run spec is a TOML file::

    output = "results/sweep.csv"        # optional; `convbench run --output` overrides it

    [defaults]                          # any option of profile/compare, by its name (trials, threads, ...)
    device = "cpu"
    threads = 1

    [[job]]
    models = ["resnet50", "resnet75-mod", "resnet75-mod[impl=gather-concat]"]  # the first is the baseline
    runtime = ["onnxruntime", "openvino"]   # a list expands into one job per value
    batch_size = [1, 8]
    model_arg = ["impl=gather-concat"]      # builder arguments, as --model-arg

Every list-valued option of a job (``models`` and ``model_arg`` aside) expands into separate jobs, in the
file's order and then the options' order, so the job list is the same on every machine. ``--shard i/n`` runs
jobs i, i+n, i+2n, ... (1-based): a Slurm array job (``--shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT``),
a Kubernetes indexed job or a CI matrix spreads a sweep without a scheduler of ours. Run one latency job per
machine at a time: two benchmarks on one machine disturb each other's timings.

``merge_files`` joins result files and keeps each row's environment fingerprint. It never divides timings
from different runs: every speed-up convbench reports comes from models interleaved in one run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, config_from_mapping
from convbench.errors import ConvbenchError, UserInputError
from convbench.models.spec import ModelSpec, parse_model_args, resolve_model, split_model_text
from convbench.results.files import (
    FINGERPRINT_COLUMNS,
    SCHEMA_VERSION,
    SPEEDUP_COLUMNS,
    check_writable,
    output_format,
    read_rows,
    write_rows,
)

NOT_EXPANDED = ("models", "model_arg")


@dataclass(frozen=True)
class Job:
    """One benchmark of a run spec: models timed together under one configuration."""

    index: int  # 1-based, stable for a given spec file
    models: tuple[ModelSpec, ...]
    config: BenchmarkConfig
    values: dict[str, Any] = field(default_factory=dict)  # the options this job sets

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.values.items() if k not in NOT_EXPANDED)
        return f"{' '.join(m.label for m in self.models)}" + (f" ({settings})" if settings else "")


@dataclass
class RunSpec:
    path: Path
    jobs: list[Job]
    output: Path | None = None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"no run spec {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read run spec {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"cannot parse run spec {path}: {exc}") from None


def load_spec(path: Path) -> RunSpec:
    """Parse and check a run spec: every job's options and models are valid before anything runs."""
    data = _load_toml(path)
    unknown = [k for k in data if k not in ("output", "defaults", "job")]
    if unknown:
        raise UserInputError(f"{path}: unknown key {unknown[0]!r}; a run spec has output, [defaults] and [[job]]")
    defaults = data.get("defaults", {})
    raw_jobs = data.get("job", [])
    if not isinstance(defaults, dict) or not isinstance(raw_jobs, list) or not raw_jobs:
        raise UserInputError(f"{path}: a run spec needs at least one [[job]] table")
    jobs: list[Job] = []
    for number, raw in enumerate(raw_jobs, start=1):
        where = f"{path}, job {number}"
        merged = {**defaults, **raw}
        models = merged.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise UserInputError(f"{where}: 'models' must be a list of model names")
        args = merged.get("model_arg", [])
        model_args = parse_model_args([args] if isinstance(args, str) else args)
        specs = tuple(
            ModelSpec(source, tuple({**dict(model_args), **dict(own)}.items()))
            for source, own in map(split_model_text, models)
        )
        for spec in specs:
            try:
                resolve_model(spec)
            except UserInputError as exc:
                raise UserInputError(f"{where}: {exc}") from None
        options = {k: v for k, v in merged.items() if k not in NOT_EXPANDED}
        swept = [k for k, v in options.items() if isinstance(v, list)]
        for combo in itertools.product(*(options[k] for k in swept)):
            values = {**options, **dict(zip(swept, combo, strict=True))}
            try:
                config = config_from_mapping(values, where=where)
            except UserInputError as exc:
                message = str(exc)
                raise UserInputError(message if message.startswith(where) else f"{where}: {message}") from None
            jobs.append(Job(len(jobs) + 1, specs, config, values))
    output = data.get("output")
    return RunSpec(path, jobs, Path(output) if output else None)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: 1-based shard index and shard count."""
    index_text, sep, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise UserInputError(f"--shard takes i/n with 1 ≤ i ≤ n (for example 2/8), got {text!r}")
    return index, count


def select_shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Jobs ``index``, ``index + count``, ...: every job in exactly one shard, shards of near-equal size."""
    return [job for job in jobs if (job.index - 1) % count == index - 1]


@dataclass
class MergeResult:
    rows: int
    machines: int
    runs: int
    notes: list[str] = field(default_factory=list)


def merge_files(files: Sequence[Path], output: Path, speedup_vs: str | None = None) -> MergeResult:
    """Join result files into ``output`` (atomically), refusing files of another schema version.

    With ``speedup_vs``, a row keeps its speed-up only where that model was its run's baseline; no speed-up is
    computed across runs, and the notes say for how many rows and why.
    """
    if not files:
        raise UserInputError("merge needs at least one result file")
    output_format(output, None)
    check_writable(output)
    rows: list[dict[str, Any]] = []
    for path in files:
        if not path.is_file():
            raise UserInputError(f"no result file {path}")
        try:
            found = read_rows(path)
        except ConvbenchError as exc:
            raise UserInputError(str(exc)) from None
        versions = {str(r.get("schema_version")) for r in found}
        if not found or versions == {"None"} or versions == {"nan"}:
            raise UserInputError(
                f"{path} is not a convbench result file of schema {SCHEMA_VERSION} "
                "(no schema_version column); rerun it with this convbench"
            )
        if versions != {str(SCHEMA_VERSION)}:
            other = ", ".join(sorted(versions - {str(SCHEMA_VERSION)}))
            raise UserInputError(
                f"{path} has schema version {other}; this convbench reads and writes "
                f"{SCHEMA_VERSION}, so its columns may mean other things: refusing to merge"
            )
        rows += [{**r, "source_file": str(path)} for r in found]
    notes: list[str] = []
    if speedup_vs is not None:
        notes += _restrict_speedups(rows, speedup_vs)
    write_rows(output, rows, append=False)
    machines = {tuple(str(r.get(c)) for c in FINGERPRINT_COLUMNS) for r in rows}
    return MergeResult(len(rows), len(machines), len({r.get("run_id") for r in rows}), notes)


def _restrict_speedups(rows: list[dict[str, Any]], baseline: str) -> list[str]:
    kept = cleared = 0
    for row in rows:
        if row.get("baseline") == baseline:
            kept += 1
            continue
        if row.get("model") == baseline:
            continue
        in_run = any(r.get("model") == baseline and r.get("run_id") == row.get("run_id") for r in rows)
        for column in SPEEDUP_COLUMNS:
            if column != "baseline":
                row[column] = None
        row["baseline"] = baseline
        row["speedup_note"] = (
            f"{baseline} was timed in this row's run but was not its baseline; rerun with it first"
            if in_run
            else f"{baseline} was not timed in this row's run; a ratio across runs would mix the differences "
            "between machines and sessions into it"
        )
        cleared += 1
    notes = [f"{kept} row(s) keep their speed-up over {baseline}, measured interleaved in their own run"]
    if cleared:
        notes.append(
            f"{cleared} row(s) get no speed-up over {baseline}: it was not timed in their run, and "
            "convbench never divides timings from different runs or machines"
        )
    return notes
