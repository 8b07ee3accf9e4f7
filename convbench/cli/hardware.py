"""Command functions ``peak`` and ``analyze`` (registered on the app by ``convbench.cli.main``).

Both keep their imports inside the function bodies, so ``convbench --help`` does not pay for NumPy, SciPy,
ONNX Runtime or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convbench.errors import UserInputError


def peak_command(
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Runtime whose GEMM is timed: onnxruntime, openvino or "
            "torch. Default: onnxruntime on cpu, torch on cuda."
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Threads (default: every core this process may use).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            help="Compute precision of the GEMM: fp32 (IEEE), tf32, fp16 or bf16. On cuda tf32, fp16 and bf16 run "
            "on the tensor cores; on the CPU each runtime offers what this CPU multiplies in natively."
        ),
    ] = "fp32",
    size: Annotated[int, typer.Option(help="n of the n×n by n×n GEMM (n³ MACs).")] = 2048,
    repeats: Annotated[int, typer.Option(help="Timed GEMMs; the fastest counts.")] = 7,
    force: Annotated[bool, typer.Option("--force", help="Measure again instead of reusing the cached peak.")] = False,
) -> None:
    """This machine's attainable GMAC/s for one runtime, precision and thread count: the best of several large GEMMs.

    The ceiling a model's achieved MAC rate is compared with; cached per CPU or GPU, runtime version, threads, size
    and precision.
    """
    from rich.table import Table

    from convbench.results.console import console, err_console
    from convbench.timing.peak import measure_peak

    with err_console.status(f"timing {size}×{size} GEMMs in {runtime or 'the default runtime'}..."):
        result = measure_peak(
            runtime, threads, device=device, size=size, repeats=repeats, force=force, precision=precision
        )
    table = Table(title=f"Attainable MAC rate (best {result.precision} GEMM)")
    columns = ("runtime", "version", "device", "precision", "threads", "size", "best GEMM (ms)", "GMAC/s", "source")
    for column in columns:
        table.add_column(
            column, justify="right" if column in ("threads", "size", "best GEMM (ms)", "GMAC/s") else "left"
        )
    table.add_row(
        result.runtime,
        result.runtime_version,
        result.gpu or f"{result.device}: {result.cpu}",
        result.precision,
        str(result.threads),
        str(result.size),
        f"{result.seconds * 1e3:.2f}",
        f"{result.gmacs_per_s:.1f}",
        f"cached ({result.measured_at})" if result.cached else "measured now",
    )
    console.print(table)


def analyze_command(
    files: Annotated[list[Path], typer.Argument(help="Result files (CSV or JSON) of profile, compare or reproduce.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write the per-model fit here (CSV); the plot goes beside it with the same stem (.png and .svg).",
        ),
    ] = None,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Draw latency against GMACs beside -o.")] = True,
) -> None:
    """How well MACs predict latency: per runtime a linear fit, Spearman's ρ, its error and the worst models."""
    from rich.table import Table

    from convbench.results.analyze import analyze, plot_fit, write_fit_csv
    from convbench.results.console import console, err_console
    from convbench.results.files import check_writable, read_rows

    for path in files:  # a missing file is bad input (exit 2), like every other command's
        if not path.is_file():
            raise UserInputError(f"no result file {path}" if not path.exists() else f"{path} is not a file")
    if output is not None:
        check_writable(output)  # before the analysis, so a bad path fails first
    results = analyze(files)
    table = Table(title="Latency against GMACs (least squares per runtime)")
    for column in (
        "runtime",
        "device",
        "threads",
        "batch",
        "models",
        "Spearman ρ",
        "p",
        "ms/GMAC",
        "intercept ms",
        "MdAPE %",
        "furthest off the fit (measured/predicted)",
    ):
        table.add_column(
            column, justify="left" if column in ("runtime", "device") or column.startswith("furthest") else "right"
        )
    for fit in results:
        worst = ", ".join(f"{p.model} {p.ratio:.2f}×" for p in fit.worst)
        table.add_row(
            fit.runtime,
            fit.device,
            str(fit.threads),
            str(fit.batch_size),
            str(fit.models),
            f"{fit.spearman:.3f}",
            f"{fit.spearman_p:.2g}",
            f"{fit.slope_ms_per_gmac:.3g}",
            f"{fit.intercept_ms:.3g}",
            f"{fit.mdape:.1f}",
            worst,
        )
    console.print(table)
    for note in results.notes:
        err_console.print(f"note: {note}", highlight=False)
    if output is None:
        if plot:
            err_console.print("note: give -o FILE.csv to write the per-model fit and the plot", highlight=False)
        return
    written = [write_fit_csv(results, output)]
    if plot:
        rows = [row for path in files for row in read_rows(path)]
        written += plot_fit(results, rows, output.with_suffix(".png"))
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
