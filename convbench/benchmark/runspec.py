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

Merging result files is ``convbench.results.merge.merge_files``: it keeps each row's environment fingerprint and
never divides timings from different runs (every speed-up comes from models interleaved in one run).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, config_from_mapping
from convbench.errors import UserInputError
from convbench.models.spec import ModelSpec, parse_model_args, resolve_model, split_model_text

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
