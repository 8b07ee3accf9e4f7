"""Command function ``report`` (registered on the app by ``convbench.cli.main``).

Its imports stay inside the function body, so ``convbench --help`` does not pay for pandas or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    # Optional here so that no files at all gets convbench's one-line error rather than a usage box.
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Result files (CSV or JSON) of profile, compare, reproduce, run or merge."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str | None, typer.Option(help="Page title (default: the files' names).")] = None,
) -> None:
    """One self-contained HTML page to share: sortable, filterable result tables with noise flags, the
    accuracy-vs-latency plots (inline SVG) and each run's machine, versions and commit. It fetches nothing
    and opens from file://."""
    from convbench.results.console import err_console
    from convbench.results.html import write_report

    written = write_report(files or [], output, title=title)
    err_console.print(f"wrote {written}", highlight=False)
