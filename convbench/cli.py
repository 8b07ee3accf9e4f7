"""The ``convbench`` command line: Typer commands that parse options, call library functions, and render.

Every error a user can cause (unknown model, impossible option, missing CUDA, unwritable path, corrupted
file) is reported as one line on stderr with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from convbench.errors import ConvbenchError, UserInputError

app = typer.Typer(
    name="convbench",
    help="Hardware-aware latency benchmarks for efficient-CNN papers: count MACs, export to ONNX, time, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn ConvbenchError into a one-line message and exit code; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from convbench.report import err_console

        try:
            return func(*args, **kwargs)
        except ConvbenchError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; nothing was written")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# Options shared by profile and compare.
Device = Annotated[str, typer.Option(help="cpu or cuda.")]
RuntimeOpt = Annotated[
    str | None, typer.Option("--runtime", help="onnxruntime or torch (default: onnxruntime on cpu).")
]
Threads = Annotated[int | None, typer.Option(help="Intra-op threads (default: the available cores).")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")]
Resolution = Annotated[int | None, typer.Option(help="Square input size (default: the model's).")]
Exporter = Annotated[str, typer.Option(help="ONNX exporter: dynamo or torchscript.")]
Warmup = Annotated[int, typer.Option(help="Warm-up runs (at least this many).")]
WarmupTime = Annotated[float, typer.Option("--warmup-time", help="Warm-up seconds (at least this long).")]
Runs = Annotated[int, typer.Option(help="Measured runs per model (at least this many).")]
MinTime = Annotated[float, typer.Option("--min-time", help="Measured seconds per model (at least this long).")]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Result file (default: results/<command>.csv); rows are appended.")
]
Format = Annotated[str | None, typer.Option("--format", help="csv or json (default: from the file suffix).")]
NoSave = Annotated[bool, typer.Option("--no-save", help="Print only; write no result file.")]
ModImpl = Annotated[
    str | None, typer.Option("--mod-impl", help="MoD block implementation for CNN-MoD models (see docs).")
]
Convention = Annotated[
    str, typer.Option(help="MAC counting convention: fvcore or mac+ (see `convbench count --help`).")
]


@app.command("list")
@reports_errors
def list_command(
    pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. 'resnet*-mod'.")] = None,
    family: Annotated[str | None, typer.Option(help="Only this family (mod, resnet, vgg, ...).")] = None,
) -> None:
    """List registered models: name, family, paper, input size."""
    from convbench.models import get_entry, list_models
    from convbench.report import console, models_table

    entries = [get_entry(n) for n in list_models(pattern)]
    if family:
        entries = [e for e in entries if e.family == family]
    if not entries:
        where = f" in family {family!r}" if family else ""
        raise UserInputError(f"no registered model matches {pattern or '*'!r}{where}")
    console.print(models_table(entries))


@app.command("count")
@reports_errors
def count_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    by_module: Annotated[bool, typer.Option("--by-module", help="Per-stage and per-block breakdown.")] = False,
    depth: Annotated[int, typer.Option(help="Module depth for --by-module.")] = 2,
    resolution: Resolution = None,
    convention: Convention = "fvcore",
) -> None:
    """GMACs and parameters (fvcore, batch 1).

    Conventions: 'fvcore' (default) counts one fused multiply-add as one MAC for convolutions, linear layers
    and matrix products, BatchNorm as 2 per element and adaptive pooling as 1 per input element;
    element-wise ops are not counted and are listed as such. 'mac+' adds activations (1 per output element)
    and max-pooling (1 per input element), as ptflops' module backend and the CNN-MoD paper count.
    """
    from convbench.counting import count
    from convbench.report import console, count_table, module_table

    if resolution is not None and not 8 <= resolution <= 4096:
        raise UserInputError(f"--resolution must be between 8 and 4096 pixels, got {resolution}")
    if depth < 1:
        raise UserInputError(f"--depth must be at least 1, got {depth}")
    result = count(model, resolution=resolution, convention=convention)
    console.print(count_table(model, result))
    if by_module:
        console.print(module_table(model, result, depth))


@app.command("export")
@reports_errors
def export_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Copy the verified model here.")] = None,
    batch_size: BatchSize = 1,
    resolution: Resolution = None,
    exporter: Exporter = "dynamo",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Export again even if cached.")] = False,
    mod_impl: ModImpl = None,
) -> None:
    """Export to ONNX (cached) and verify the result against PyTorch."""
    from convbench.benchmark import BenchmarkConfig
    from convbench.export import export_onnx
    from convbench.models import get_entry
    from convbench.report import console, export_table, progress_display

    with progress_display() as progress:
        progress.phase(f"exporting {model} ({exporter})", None)
        overrides = BenchmarkConfig(mod_impl=mod_impl).validate().overrides_for(get_entry(model))
        result = export_onnx(
            model, batch_size=batch_size, resolution=resolution, exporter=exporter, opset=opset, output=output,
            use_cache=not no_cache, **overrides,
        )
    console.print(export_table(result))


def _run_benchmark(
    command: str, models: list[str], device: str, runtime: str | None, threads: int | None, batch_size: int,
    resolution: int | None, exporter: str, warmup: int, warmup_time: float, runs: int, min_time: float,
    output: Path | None, fmt: str | None, no_save: bool, convention: str, mod_impl: str | None,
    op_profile: bool = False,
) -> None:
    from convbench.benchmark import BenchmarkConfig, benchmark
    from convbench.measure import TimingSettings
    from convbench.report import console, err_console, noisy_warnings, progress_display, results_table
    from convbench.results import check_writable, output_format, write_rows

    config = BenchmarkConfig(
        device=device, runtime=runtime, threads=threads, batch_size=batch_size, resolution=resolution,
        exporter=exporter, convention=convention, mod_impl=mod_impl,
        timing=TimingSettings(warmup=warmup, warmup_time=warmup_time, runs=runs, min_time=min_time),
    ).validate()
    path = None
    if not no_save:
        path = output or Path("results") / f"{command}.csv"
        output_format(path, fmt)
        check_writable(path)  # before minutes of measuring, not after
    with progress_display() as progress:
        rows = benchmark(models, config, progress)
    title = "convbench " + command + " " + " ".join(models)
    console.print(results_table(rows, title))
    for line in noisy_warnings(rows):
        err_console.print(line, style="yellow")
    if path is not None:
        write_rows(path, rows, fmt)
        err_console.print(f"wrote {len(rows)} row(s) to {path}")
    if op_profile:
        _print_operator_profiles(models, rows, config)


def _print_operator_profiles(models: list[str], rows: list[dict[str, Any]], config: Any) -> None:
    from convbench.export import export_onnx
    from convbench.models import get_entry
    from convbench.report import console, operator_table, progress_display
    from convbench.runtimes.onnxruntime import operator_profile

    for model, row in zip(models, rows, strict=True):
        with progress_display() as progress:
            progress.phase(f"profiling operators of {model}", None)
            exported = export_onnx(model, batch_size=config.batch_size, resolution=config.resolution,
                                   exporter=config.exporter, **config.overrides_for(get_entry(model)))
            ops = operator_profile(exported, row["threads"], runs=min(config.timing.runs, 20))
        console.print(operator_table(model, ops))


@app.command("profile")
@reports_errors
def profile_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    device: Device = "cpu",
    runtime: RuntimeOpt = None,
    threads: Threads = None,
    batch_size: BatchSize = 1,
    resolution: Resolution = None,
    exporter: Exporter = "dynamo",
    warmup: Warmup = 10,
    warmup_time: WarmupTime = 1.0,
    runs: Runs = 50,
    min_time: MinTime = 2.0,
    output: Output = None,
    fmt: Format = None,
    no_save: NoSave = False,
    convention: Convention = "fvcore",
    mod_impl: ModImpl = None,
    op_profile: Annotated[
        bool, typer.Option("--op-profile", help="Also print ONNX Runtime's time per operator type.")
    ] = False,
) -> None:
    """Count, export and time one model; one result row."""
    if op_profile and runtime not in (None, "onnxruntime"):
        raise UserInputError("--op-profile uses ONNX Runtime's profiler; it needs --runtime onnxruntime")
    _run_benchmark("profile", [model], device, runtime, threads, batch_size, resolution, exporter, warmup,
                   warmup_time, runs, min_time, output, fmt, no_save, convention, mod_impl, op_profile)


@app.command("compare")
@reports_errors
def compare_command(
    models: Annotated[list[str], typer.Argument(help="Two or more models; the first is the baseline.")],
    device: Device = "cpu",
    runtime: RuntimeOpt = None,
    threads: Threads = None,
    batch_size: BatchSize = 1,
    resolution: Resolution = None,
    exporter: Exporter = "dynamo",
    warmup: Warmup = 10,
    warmup_time: WarmupTime = 1.0,
    runs: Runs = 50,
    min_time: MinTime = 2.0,
    output: Output = None,
    fmt: Format = None,
    no_save: NoSave = False,
    convention: Convention = "fvcore",
    mod_impl: ModImpl = None,
) -> None:
    """Time models interleaved in one process; speed-up over the first with a bootstrap 95% interval."""
    if len(models) < 2:
        raise UserInputError("compare needs at least two models (the first is the baseline); use profile for one")
    _run_benchmark("compare", models, device, runtime, threads, batch_size, resolution, exporter, warmup,
                   warmup_time, runs, min_time, output, fmt, no_save, convention, mod_impl)


def main() -> None:
    app(prog_name="convbench")


if __name__ == "__main__":
    sys.exit(main())
