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
    rich_markup_mode="markdown",  # docstring paragraphs wrap to the terminal instead of keeping line breaks
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
BatchSizes = Annotated[str, typer.Option("--batch-size", "-b", help="Batch size, or a list to sweep: 1,8,32.")]
Resolutions = Annotated[
    str | None, typer.Option("--resolution", help="Square input size (default: the model's), or a list: 160,224.")
]
Precision = Annotated[str, typer.Option(help="fp32, or fp16 / bf16 autocast (cuda).")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="channels-last memory format (torch).")]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the model (torch).")]
TF32 = Annotated[bool, typer.Option("--tf32", help="Allow TF32 matmuls and convolutions (cuda; off by default).")]
CudnnBenchmark = Annotated[
    bool, typer.Option("--cudnn-benchmark/--no-cudnn-benchmark", help="cuDNN autotuning (cuda).")
]
CudaGraphs = Annotated[bool, typer.Option("--cuda-graphs", help="Capture once, replay per run (cuda).")]
SaveSamples = Annotated[Path | None, typer.Option("--save-samples", help="Also write every raw latency (CSV/JSON).")]
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
    str, typer.Option(help="MAC counting convention: convbench, fvcore, mac+, micronet or paper (`count --help`).")
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
    convention: Convention = "convbench",
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

    Module-hook counters (thop, torchinfo, ptflops' default backend) miss batch-folded convolutions and
    kernel assembly, so their numbers for dynamic convolutions are far lower.
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
    from convbench.results import check_writable

    if output is not None:
        check_writable(output)  # before the export starts
    with progress_display() as progress:
        progress.phase(f"exporting {model} ({exporter})", None)
        overrides = BenchmarkConfig(mod_impl=mod_impl).validate().overrides_for(get_entry(model))
        result = export_onnx(
            model, batch_size=batch_size, resolution=resolution, exporter=exporter, opset=opset, output=output,
            use_cache=not no_cache, **overrides,
        )
    console.print(export_table(result))


def parse_sizes(text: str | None, option: str) -> list[int | None]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; ``None`` -> ``[None]`` (the model's default)."""
    if text is None:
        return [None]
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserInputError(f"{option} takes whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise UserInputError(f"{option} needs at least one value")
    return list(dict.fromkeys(values))


def _run_benchmark(command: str, models: list[str], *, op_profile: bool = False, **options: Any) -> None:
    from convbench.benchmark import BenchmarkConfig, sweep
    from convbench.measure import TimingSettings
    from convbench.report import console, err_console, noisy_warnings, progress_display, results_table
    from convbench.results import check_writable, output_format, write_rows, write_samples

    batch_sizes = parse_sizes(options["batch_size"], "--batch-size")
    resolutions = parse_sizes(options["resolution"], "--resolution")
    config = BenchmarkConfig(
        device=options["device"], runtime=options["runtime"], threads=options["threads"],
        batch_size=batch_sizes[0] or 1, resolution=resolutions[0], exporter=options["exporter"],
        convention=options["convention"], mod_impl=options["mod_impl"], precision=options["precision"],
        channels_last=options["channels_last"], compile=options["compile"], tf32=options["tf32"],
        cudnn_benchmark=options["cudnn_benchmark"], cuda_graphs=options["cuda_graphs"],
        timing=TimingSettings(warmup=options["warmup"], warmup_time=options["warmup_time"], runs=options["runs"],
                              min_time=options["min_time"]),
    ).validate()
    if op_profile and config.runtime_name != "onnxruntime":
        raise UserInputError("--op-profile uses ONNX Runtime's profiler; it needs --runtime onnxruntime")
    path = None
    if not options["no_save"]:
        path = options["output"] or Path("results") / f"{command}.csv"
        output_format(path, options["fmt"])
        check_writable(path)  # before minutes of measuring, not after
    samples_path = options["save_samples"]
    if samples_path is not None:
        output_format(samples_path, None)
        check_writable(samples_path)
    samples: list[dict[str, Any]] = []
    with progress_display() as progress:
        rows = sweep(models, config, batch_sizes, resolutions, progress, samples)
    console.print(results_table(rows, "convbench " + command + " " + " ".join(models)))
    for line in noisy_warnings(rows):
        err_console.print(line, style="yellow")
    if path is not None:
        write_rows(path, rows, options["fmt"])
        err_console.print(f"wrote {len(rows)} row(s) to {path}")
    if samples_path is not None:
        write_samples(samples_path, samples)
        err_console.print(f"wrote raw latencies of {len(samples)} model run(s) to {samples_path}")
    if op_profile:
        _print_operator_profiles(rows, config)


def _print_operator_profiles(rows: list[dict[str, Any]], config: Any) -> None:
    from convbench.export import export_onnx
    from convbench.models import get_entry
    from convbench.report import console, operator_table, progress_display
    from convbench.runtimes.onnxruntime import operator_profile

    for row in rows:
        if row.get("error"):
            continue
        model = row["model"]
        with progress_display() as progress:
            progress.phase(f"profiling operators of {model}", None)
            exported = export_onnx(model, batch_size=row["batch_size"], resolution=row["resolution"],
                                   exporter=config.exporter, **config.overrides_for(get_entry(model)))
            ops = operator_profile(exported, row["threads"], runs=min(config.timing.runs, 20))
        console.print(operator_table(f"{model} (batch {row['batch_size']}, {row['resolution']} px)", ops))


@app.command("profile")
@reports_errors
def profile_command(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    device: Device = "cpu",
    runtime: RuntimeOpt = None,
    threads: Threads = None,
    batch_size: BatchSizes = "1",
    resolution: Resolutions = None,
    exporter: Exporter = "dynamo",
    warmup: Warmup = 10,
    warmup_time: WarmupTime = 1.0,
    runs: Runs = 50,
    min_time: MinTime = 2.0,
    output: Output = None,
    fmt: Format = None,
    no_save: NoSave = False,
    save_samples: SaveSamples = None,
    convention: Convention = "convbench",
    mod_impl: ModImpl = None,
    precision: Precision = "fp32",
    channels_last: ChannelsLast = False,
    compile: Compile = False,
    tf32: TF32 = False,
    cudnn_benchmark: CudnnBenchmark = True,
    cuda_graphs: CudaGraphs = False,
    op_profile: Annotated[
        bool, typer.Option("--op-profile", help="Also print ONNX Runtime's time per operator type.")
    ] = False,
) -> None:
    """Count, export and time one model: one result row per batch size and resolution."""
    options = dict(locals())
    del options["model"], options["op_profile"]
    _run_benchmark("profile", [model], op_profile=op_profile, **options)


@app.command("compare")
@reports_errors
def compare_command(
    models: Annotated[list[str], typer.Argument(help="Two or more models; the first is the baseline.")],
    device: Device = "cpu",
    runtime: RuntimeOpt = None,
    threads: Threads = None,
    batch_size: BatchSizes = "1",
    resolution: Resolutions = None,
    exporter: Exporter = "dynamo",
    warmup: Warmup = 10,
    warmup_time: WarmupTime = 1.0,
    runs: Runs = 50,
    min_time: MinTime = 2.0,
    output: Output = None,
    fmt: Format = None,
    no_save: NoSave = False,
    save_samples: SaveSamples = None,
    convention: Convention = "convbench",
    mod_impl: ModImpl = None,
    precision: Precision = "fp32",
    channels_last: ChannelsLast = False,
    compile: Compile = False,
    tf32: TF32 = False,
    cudnn_benchmark: CudnnBenchmark = True,
    cuda_graphs: CudaGraphs = False,
) -> None:
    """Time models interleaved in one process: speed-up over the first with a bootstrap 95% interval and a
    Mann–Whitney U test ("no significant difference" when that is the honest answer)."""
    if len(models) < 2:
        raise UserInputError("compare needs at least two models (the first is the baseline); use profile for one")
    options = dict(locals())
    del options["models"]
    _run_benchmark("compare", models, **options)


@app.command("tables")
@reports_errors
def tables_command(
    key: Annotated[str | None, typer.Argument(help="A table key: show that table as published.")] = None,
) -> None:
    """The papers' published tables convbench knows: key, paper, title, rows and models."""
    from convbench.papers.tables import load_all, load_table
    from convbench.report import console
    from convbench.report_tables import published_table, tables_table

    if key:
        console.print(published_table(load_table(key)))
    else:
        console.print(tables_table(load_all()))


@app.command("reproduce")
@reports_errors
def reproduce_command(
    key: Annotated[str, typer.Argument(help="Table key (see `convbench tables`), e.g. mod-imagenet.")],
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
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Result CSV (default: results/<key>-<device>-<runtime>.csv)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Measure again rows the result file already has.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only these models (shell-style pattern; repeatable) and their baselines."),
    ] = None,
    convention: Convention = "convbench",
    mod_impl: ModImpl = None,
    precision: Precision = "fp32",
    channels_last: ChannelsLast = False,
    compile: Compile = False,
    tf32: TF32 = False,
    cudnn_benchmark: CudnnBenchmark = True,
    cuda_graphs: CudaGraphs = False,
) -> None:
    """Rebuild a paper's table: published and measured params, GMACs, latency and speed-ups side by side.

    All registered models of the table are timed in one interleaved run, each row's baselines included, and each
    speed-up is taken against the row's own baseline. Rows already in the result file with the same settings
    are not measured again (--force measures them again); missing rows are measured with their baselines.
    """
    from convbench.benchmark import BenchmarkConfig
    from convbench.measure import TimingSettings
    from convbench.report import console, err_console, noisy_warnings, progress_display
    from convbench.report_tables import params_warnings, reproduce_table
    from convbench.reproduce import reproduce

    config = BenchmarkConfig(
        device=device, runtime=runtime, threads=threads, batch_size=batch_size, resolution=resolution,
        exporter=exporter, convention=convention, mod_impl=mod_impl, precision=precision,
        channels_last=channels_last, compile=compile, tf32=tf32, cudnn_benchmark=cudnn_benchmark,
        cuda_graphs=cuda_graphs,
        timing=TimingSettings(warmup=warmup, warmup_time=warmup_time, runs=runs, min_time=min_time),
    ).validate()
    with progress_display() as progress:
        result = reproduce(key, config, output=output, force=force, progress=progress, only=only)
    console.print(reproduce_table(result.table, result.lines, result.reused))
    for line in noisy_warnings(result.measured_rows) + params_warnings(result.lines):
        err_console.print(line, style="yellow", highlight=False)
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
    """Published top-1 against measured latency and GMACs, one marker per model, the Pareto front marked."""
    from convbench.plot import check_output, plot
    from convbench.report import err_console

    if not result_file.is_file():
        raise UserInputError(f"no result file {result_file}")
    target = output or result_file.with_suffix(".png")
    check_output(target)
    result = plot(result_file, target, table=table, title=title)
    for note in result.notes:
        err_console.print(f"note: {note}", highlight=False)
    err_console.print(f"plotted {result.points} point(s) in {len(result.panels)} panel row(s): "
                      + ", ".join(str(p) for p in result.paths))


def main() -> None:
    app(prog_name="convbench")


if __name__ == "__main__":
    sys.exit(main())
