"""The ``convbench`` command line: Typer commands that parse options, call library functions, and render.

Options are declared once, as fields of option dataclasses (``BenchmarkConfig``, ``TimingSettings``, each
runtime's options, ``ModelOptions``, ``OutputOptions``); ``convbench.options.takes`` turns them into flags.
Every error a user can cause (unknown model, impossible option, missing CUDA, unwritable path, corrupted
file) is reported as one line on stderr with a non-zero exit code, never as a traceback. Importing this
module does not import PyTorch: ``--help`` and ``list`` answer at once.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from convbench.benchmark import BenchmarkConfig, config_from_mapping, runtime_option_classes
from convbench.cli.evaluate import evaluate_command
from convbench.cli.hardware import analyze_command, peak_command
from convbench.cli.report import report_command
from convbench.errors import ConvbenchError, UserInputError
from convbench.models.spec import ModelOptions
from convbench.options import Uses, option, takes

app = typer.Typer(
    name="convbench",
    help="Hardware-aware latency benchmarks for efficient-CNN papers: count MACs, export to ONNX, time, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs wrap to the terminal instead of keeping line breaks
)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn ConvbenchError into a one-line message and exit code; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from convbench.results.console import err_console

        try:
            return func(*args, **kwargs)
        except ConvbenchError as exc:
            err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; nothing was written")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class OutputOptions:
    """Where results go."""

    output: Path | None = option(
        None,
        "Result file (default: results/profile.csv or results/compare.csv); rows are appended.",
        flags=("--output", "-o"),
    )
    fmt: str | None = option(None, "csv or json (default: from the file suffix).", flags=("--format",))
    no_save: bool = option(False, "Print only; write no result file.")
    save_samples: Path | None = option(None, "Also write every raw latency (CSV/JSON), per model and trial.")
    wide: bool = option(False, "Show every column in the terminal (the result file always has them all).")


def _config(raw: dict[str, Any]) -> BenchmarkConfig:
    return config_from_mapping(raw)


def _reproduce_config(raw: dict[str, Any]) -> BenchmarkConfig:
    # A paper's table is compared with the paper's own figures, so it is counted the paper's way by default.
    return config_from_mapping({**raw, "convention": raw.get("convention") or "paper"})


def _benchmark_options(only: tuple[str, ...] | None = None, build: Callable = _config) -> Uses:
    return Uses((BenchmarkConfig, *runtime_option_classes()), build, only)


MODEL_OPTIONS = Uses((ModelOptions,))
COUNT_OPTIONS = Uses((BenchmarkConfig,), _config, ("resolution", "convention"))
EXPORT_OPTIONS = Uses((BenchmarkConfig,), _config, ("batch_size", "resolution", "exporter"))
ModelArg = Annotated[
    str, typer.Argument(help="Registered name, path/file.py:builder, package.module:builder or model.onnx.")
]


@app.command("list")
@reports_errors
def list_command(
    pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. 'resnet*-mod'.")] = None,
    family: Annotated[str | None, typer.Option(help="Only this family (resnet, vgg, micronet, ...).")] = None,
) -> None:
    """List registered models (plugins included): name, family, paper, input size, published top-1, source.
    A pattern starting with timm/ lists timm's models instead ('timm/resnet*'; 'timm/resnet50.*' for tags)."""
    from convbench.models import get_entry, list_models
    from convbench.results.console import console, models_table

    if pattern and pattern.startswith("timm/"):
        from convbench.models.timm_models import list_timm

        names = list_timm(pattern)  # timm is imported only here, so plain `list` stays fast
        if not names:
            raise UserInputError(f"no timm model matches {pattern!r}")
        console.print("\n".join(names), highlight=False, soft_wrap=True)
        return
    entries = [get_entry(n) for n in list_models(pattern)]
    if family:
        entries = [e for e in entries if e.family == family]
    if not entries:
        where = f" in family {family!r}" if family else ""
        raise UserInputError(f"no registered model matches {pattern or '*'!r}{where}")
    console.print(models_table(entries))


@app.command("count")
@reports_errors
@takes(config=COUNT_OPTIONS, model_options=MODEL_OPTIONS)
def count_command(
    model: ModelArg,
    config: BenchmarkConfig,
    model_options: ModelOptions,
    by_module: Annotated[bool, typer.Option("--by-module", help="Per-stage and per-block breakdown.")] = False,
    depth: Annotated[int, typer.Option(help="Module depth for --by-module.")] = 2,
) -> None:
    """GMACs and parameters (fvcore, batch 1): total MACs and the convolutions' MACs, uncounted ops listed.

    One fused multiply-add counts as one MAC. Conventions:

    convbench (default): fvcore's handles (convolutions, matrix products, linear layers; BatchNorm 2 per
    element; average pooling 1 per input element) plus element-wise products and divisions (1 per element)
    and means (1 per input element). One rule for every dynamic convolution: KernelWarehouse's kernel
    assembly and ODConv's / DY-Conv's aggregation are matrix products, their attention is products.
    Additions, activations, max, top-k and gathers are free.

    fvcore: fvcore's defaults only. mac+: the default plus activations and max-pooling (ptflops' module
    backend; how CNN-MoD counts). micronet: convolutions, linear layers and element-wise products, no
    BatchNorm or pooling (MicroNet's MAdds). paper: the convention of the model family's paper.

    A model given as an ONNX file is counted from its graph (convolutions, matrix products, parameters).
    """
    from convbench.counting.macs import count
    from convbench.results.console import console, count_table, module_table

    if depth < 1:
        raise UserInputError(f"--depth must be at least 1, got {depth}")
    (spec,) = model_options.specs([model])
    for resolution in config.resolution or (None,):
        result = count(spec, resolution=resolution, convention=config.convention)
        console.print(count_table(spec.label, result))
        if by_module:
            console.print(module_table(spec.label, result, depth))


@app.command("export")
@reports_errors
@takes(config=EXPORT_OPTIONS, model_options=MODEL_OPTIONS)
def export_command(
    model: ModelArg,
    config: BenchmarkConfig,
    model_options: ModelOptions,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Copy the verified model here.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Export again even if cached.")] = False,
) -> None:
    """Export to ONNX (cached) and verify the result against PyTorch."""
    from convbench.export import export_onnx
    from convbench.results.console import console, export_table, progress_display
    from convbench.results.files import check_writable

    combos = [(b, r) for b in config.batch_size for r in (config.resolution or (None,))]
    if output is not None:
        if len(combos) > 1:
            raise UserInputError("--output takes one exported file; give one batch size and one resolution")
        check_writable(output)  # before the export starts
    (spec,) = model_options.specs([model])
    for batch_size, resolution in combos:
        with progress_display() as progress:
            progress.phase(f"exporting {spec.label} ({config.exporter})", None)
            result = export_onnx(
                spec,
                batch_size=batch_size,
                resolution=resolution,
                exporter=config.exporter,
                opset=opset,
                output=output,
                use_cache=not no_cache,
            )
        console.print(export_table(result))


def run_and_report(
    command: str,
    models: list[str],
    config: BenchmarkConfig,
    model_options: ModelOptions,
    out: OutputOptions,
    op_profile: bool = False,
) -> list[dict[str, Any]]:
    """Measure, print, save: what profile and compare share."""
    from convbench.benchmark import resolve_for, sweep
    from convbench.results.console import console, err_console, noisy_warnings, progress_display, results_view
    from convbench.results.files import check_writable, output_format, write_rows_or_rescue, write_samples

    if op_profile:
        _check_operator_profiler(config)
    specs = model_options.specs(models)
    for plan in config.plans():  # unknown models and impossible inputs fail before any file or folder is made
        resolve_for(specs, plan)
    path = None
    if not out.no_save:
        path = out.output or Path("results") / f"{command}.csv"
        output_format(path, out.fmt)
        check_writable(path)  # before minutes of measuring, not after
    if out.save_samples is not None:
        output_format(out.save_samples, None)
        check_writable(out.save_samples)
    samples: list[dict[str, Any]] = []
    with progress_display() as progress:
        rows = sweep(specs, config, progress, samples)
    command_line = shlex.join(["convbench", *sys.argv[1:]])  # provenance, shown by `convbench report`
    rows = [{**row, "command": command_line} for row in rows]
    console.print(results_view(rows, f"convbench {command} " + " ".join(models), wide=out.wide))
    for line in noisy_warnings(rows):  # model labels such as name[impl=x] are text, not markup
        err_console.print(line, style="yellow", highlight=False, markup=False)
    if path is not None:
        write_rows_or_rescue(path, rows, out.fmt)
        err_console.print(f"wrote {len(rows)} row(s) to {path}")
    if out.save_samples is not None:
        write_samples(out.save_samples, samples)
        err_console.print(f"wrote raw latencies of {len(samples)} model trial(s) to {out.save_samples}")
    if op_profile:
        _print_operator_profiles(rows, specs, config)
    return rows


def _check_operator_profiler(config: BenchmarkConfig) -> None:
    from convbench.runtimes import runtime_class, runtime_names

    if not runtime_class(config.runtime, config.device).operator_profiler:
        profiled = [n for n in runtime_names(config.device) if runtime_class(n, config.device).operator_profiler]
        raise UserInputError(
            f"--op-profile: runtime {config.runtime_name} on {config.device} has no operator profiler; "
            f"use --runtime {' or '.join(profiled)}"
        )


def _print_operator_profiles(rows: list[dict[str, Any]], specs: list[Any], config: BenchmarkConfig) -> None:
    """Each measured row's time per operator type, from its runtime's own profiler (``Runtime.operator_profile``)."""
    from convbench.results.console import console, operator_table, progress_display

    plans = config.plans()
    runtime = plans[0].backend.runtime_class()
    by_label = {s.label: s for s in specs}
    for row in rows:
        if row.get("error") or row["model"] not in by_label:
            continue
        plan = next(
            p
            for p in plans
            if p.workload.batch_size == row["batch_size"] and p.workload.resolution in (None, row["resolution"])
        )
        model = plan.resolve(by_label[row["model"]])
        with progress_display() as progress:
            progress.phase(f"profiling operators of {row['model']}", None)
            profile = runtime.operator_profile(
                model, plan.run_settings(model), plan.backend.options, min(config.timing.runs, 20)
            )
        console.print(operator_table(f"{row['model']} (batch {row['batch_size']}, {row['resolution']} px)", profile))


@app.command("profile")
@reports_errors
@takes(config=_benchmark_options(), model_options=MODEL_OPTIONS, out=OutputOptions)
def profile_command(
    model: ModelArg,
    config: BenchmarkConfig,
    model_options: ModelOptions,
    out: OutputOptions,
    op_profile: Annotated[
        bool,
        typer.Option(
            "--op-profile",
            help="Also print time and calls per operator type from the runtime's own profiler (ONNX Runtime's; "
            "torch.profiler for torch, with kernels per operator on cuda).",
        ),
    ] = False,
) -> None:
    """Count, export and time one model: one result row per batch size and resolution."""
    run_and_report("profile", [model], config, model_options, out, op_profile)


@app.command("compare")
@reports_errors
@takes(config=_benchmark_options(), model_options=MODEL_OPTIONS, out=OutputOptions)
def compare_command(
    models: Annotated[list[str], typer.Argument(help="Two or more models; the first is the baseline.")],
    config: BenchmarkConfig,
    model_options: ModelOptions,
    out: OutputOptions,
) -> None:
    """Time models interleaved, in independent trials: speed-up over the first with a 95% interval that
    includes the variation between trials, the spread over trials, and a verdict ("no significant
    difference" when that is the honest answer)."""
    if len(models) < 2:
        raise UserInputError("compare needs at least two models (the first is the baseline); use profile for one")
    run_and_report("compare", models, config, model_options, out)


@app.command("tables")
@reports_errors
def tables_command(
    key: Annotated[str | None, typer.Argument(help="A table key: show that table as published.")] = None,
) -> None:
    """The papers' published tables convbench knows: key, paper, title, rows and models. With a key, that table
    as published, beside the top-1 measured by `convbench evaluate` where results/evaluate.csv has one."""
    from convbench.papers.tables import load_all, load_table
    from convbench.results.console import console
    from convbench.results.tables import published_table, tables_table

    if key:
        from convbench.papers.accuracy import measured_top1

        console.print(published_table(load_table(key), measured_top1()))
    else:
        console.print(tables_table(load_all()))


@app.command("reproduce")
@reports_errors
@takes(config=_benchmark_options(build=_reproduce_config))
def reproduce_command(
    key: Annotated[str, typer.Argument(help="Table key (see `convbench tables`), e.g. mod-imagenet.")],
    config: BenchmarkConfig,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Result CSV (default: results/<key>-<device>-<runtime>.csv)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Measure again rows the result file already has.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only these models (shell-style pattern; repeatable) and their baselines."),
    ] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Show every column in the terminal.")] = False,
) -> None:
    """Rebuild a paper's table: published and measured params, GMACs, latency and speed-ups side by side.

    All registered models of the table are timed in one interleaved run per trial, each row's baselines
    included, and each speed-up is taken against the row's own baseline. Rows already in the result file with
    the same settings are not measured again (--force measures them again). MACs are counted the way the
    paper counts them unless --convention says otherwise.
    """
    from convbench.papers.reproduce import reproduce
    from convbench.results.console import console, err_console, noisy_warnings, progress_display
    from convbench.results.tables import params_warnings, reproduce_view

    with progress_display() as progress:
        result = reproduce(key, config, output=output, force=force, progress=progress, only=only)
    console.print(reproduce_view(result.table, result.lines, result.reused, wide=wide))
    for line in noisy_warnings(result.measured_rows) + params_warnings(result.lines):
        err_console.print(line, style="yellow", highlight=False, markup=False)
    err_console.print(
        f"measured {len(result.measured)} model(s), reused {len(result.reused)}; wrote {len(result.lines)} row(s) "
        f"to {result.path}"
    )


@app.command("plot")
@reports_errors
def plot_command(
    result_file: Annotated[Path, typer.Argument(help="Result CSV from reproduce, compare or profile.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="PNG to write; an SVG of the same stem is written too.")
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="Take the published top-1 from this table (default: best match).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Figure title.")] = None,
) -> None:
    """Top-1 against measured latency and GMACs, one marker per model, the Pareto front marked. Top-1 is the
    measured one where a result file holds it (`convbench evaluate`), else the published figure; the legend
    says which."""
    from convbench.results.console import err_console
    from convbench.results.plot import check_output, plot

    if not result_file.is_file():
        raise UserInputError(f"no result file {result_file}")
    target = output or result_file.with_suffix(".png")
    check_output(target)
    result = plot(result_file, target, table=table, title=title)
    for note in result.notes:
        err_console.print(f"note: {note}", highlight=False)
    err_console.print(
        f"plotted {result.points} point(s) in {len(result.panels)} panel row(s): "
        + ", ".join(str(p) for p in result.paths)
    )


@app.command("run")
@reports_errors
def run_command(
    spec_file: Annotated[Path, typer.Argument(help="Run spec (TOML): models, settings, sweeps; see the README.")],
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/n: run only the i-th of n deterministic slices of the jobs.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Result file (default: the spec's, else results/run.csv).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the jobs (of this shard) without running them.")
    ] = False,
) -> None:
    """Run every job of a run spec (or one shard of them, for a Slurm array, a Kubernetes indexed job or a CI
    matrix: one latency job per machine at a time), appending rows to one result file."""
    from convbench.benchmark.runspec import load_spec, parse_shard, select_shard
    from convbench.results.console import console, err_console, progress_display, results_view
    from convbench.results.files import check_writable, write_rows_or_rescue

    spec = load_spec(spec_file)
    index, count = parse_shard(shard) if shard else (1, 1)
    jobs = select_shard(spec.jobs, index, count)
    path = output or spec.output or Path("results/run.csv")
    if dry_run:
        for job in jobs:
            console.print(f"job {job.index}: {job.describe()}", highlight=False, markup=False)
        return
    check_writable(path)
    if not jobs:
        err_console.print(f"shard {index}/{count} has no jobs (the spec has {len(spec.jobs)})")
        return
    for job in jobs:
        from convbench.benchmark import sweep

        with progress_display() as progress:
            progress.phase(f"job {job.index} of {len(spec.jobs)}: {job.describe()}", None)
            rows = sweep(job.models, job.config, progress)
        for row in rows:
            row.update(spec_file=str(spec_file), job=job.index, shard=f"{index}/{count}")
        console.print(results_view(rows, f"job {job.index}: {job.describe()}"))
        write_rows_or_rescue(path, rows)  # after every job, so a sharded sweep that stops keeps what it measured
        err_console.print(f"wrote {len(rows)} row(s) to {path}")


@app.command("merge")
@reports_errors
def merge_command(
    files: Annotated[list[Path], typer.Argument(help="Result files (CSV or JSON) to join.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged file (CSV or JSON by suffix).")],
    speedup_vs: Annotated[
        str | None,
        typer.Option(
            "--speedup-vs",
            help="Keep only speed-ups over this model, each measured in its own run; others are cleared, with why.",
        ),
    ] = None,
) -> None:
    """Join result files from several machines or shards, keeping each row's environment fingerprint.

    Speed-ups are never computed between rows from different runs or machines: each run's samples were
    interleaved with its own baseline, and a ratio across sessions mixes in the differences between them.
    """
    from convbench.results.console import err_console
    from convbench.results.merge import merge_files

    merged = merge_files(files, output, speedup_vs=speedup_vs)
    for note in merged.notes:
        err_console.print(f"note: {note}", highlight=False)
    err_console.print(
        f"merged {merged.rows} row(s) from {len(files)} file(s) ({merged.machines} machine(s), "
        f"{merged.runs} run(s)) into {output}"
    )


# Commands that live in their own modules (their heavy imports stay inside the functions).
app.command("evaluate")(reports_errors(evaluate_command))
app.command("peak")(reports_errors(peak_command))
app.command("analyze")(reports_errors(analyze_command))
app.command("report")(reports_errors(report_command))


def main() -> None:
    app(prog_name="convbench")


if __name__ == "__main__":
    sys.exit(main())
