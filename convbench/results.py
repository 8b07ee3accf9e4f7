"""Result rows, the environment they were measured in, and atomic CSV/JSON writing.

One schema serves CSV and JSON: a row is a flat dict whose first columns are ``COLUMNS`` in that order;
runtime-specific settings follow. Writes go to a temporary file in the target directory and are renamed
into place, so an interrupted run never leaves a half-written file; appending keeps the existing rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import convbench
from convbench.errors import ConvbenchError, UserInputError

FORMATS = ("csv", "json")

COLUMNS = [
    "run_id", "model", "family", "paper", "batch_size", "resolution", "device", "runtime", "threads",
    "exporter", "mod_impl", "gmacs", "conv_gmacs", "params_m", "macs_convention", "error",
    "median_ms", "median_low_ms", "median_high_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p90_ms",
    "p99_ms", "iqr_ms", "cv", "n_runs", "first_run_ms", "setup_ms", "throughput_ips", "noisy", "noisy_reason",
    "baseline", "speedup", "speedup_low", "speedup_high", "p_value", "significant", "verdict",
    "theoretical_speedup",
]
ENVIRONMENT_COLUMNS = [
    "cpu", "cores", "os", "python", "torch", "torchvision", "onnxruntime", "onnx", "fvcore", "convbench",
    "git_commit", "timestamp", "load_avg_before", "load_avg_after",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(convbench.__file__).parent, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def environment() -> dict[str, Any]:
    """The software and hardware a measurement ran on."""
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return ""

    return {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": v("torch"),
        "torchvision": v("torchvision"),
        "onnxruntime": v("onnxruntime"),
        "onnx": v("onnx"),
        "fvcore": v("fvcore"),
        "convbench": convbench.__version__,
        "git_commit": _git_commit(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def order_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The row with schema columns first, then runtime settings, then the environment."""
    head = [c for c in COLUMNS if c in row]
    tail = [c for c in ENVIRONMENT_COLUMNS if c in row]
    middle = [c for c in row if c not in head and c not in tail]
    return {c: row[c] for c in head + middle + tail}


def output_format(path: Path, fmt: str | None) -> str:
    """``fmt`` if given, else from the file suffix (CSV by default)."""
    if fmt is None:
        fmt = "json" if path.suffix.lower() == ".json" else "csv"
    if fmt not in FORMATS:
        raise UserInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def check_writable(path: Path) -> None:
    """Fail early, before any measuring, if ``path`` cannot be written."""
    if path.is_dir():
        raise UserInputError(f"cannot write {path}: it is a directory")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot write {path}: cannot create directory {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserInputError(f"cannot write {path}: permission denied")


def read_rows(path: Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Rows of an existing result file; a clear error if it is not one."""
    fmt = output_format(path, fmt)
    try:
        if fmt == "json":
            data = json.loads(path.read_text())
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ValueError("expected a JSON list of row objects")
            return data
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConvbenchError(f"cannot read result file {path}: {str(exc).splitlines()[0]}") from None
    if "model" not in frame.columns:
        raise ConvbenchError(f"cannot read result file {path}: it has no 'model' column (not a convbench file?)")
    return frame.to_dict(orient="records")


def write_rows(
    path: Path, rows: Sequence[dict[str, Any]], fmt: str | None = None, append: bool = True, schema: bool = True
) -> Path:
    """Write ``rows`` to ``path`` atomically; with ``append`` keep the rows already there.

    With ``schema`` the result-row columns come first (``COLUMNS``); files with their own layout pass False.
    """
    fmt = output_format(path, fmt)
    check_writable(path)
    existing = read_rows(path, fmt) if append and path.exists() and path.stat().st_size > 0 else []
    all_rows = [*existing, *(order_columns(r) if schema else r for r in rows)]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file private (0600); give the result the permissions any new file would get.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            if fmt == "json":
                clean = [{k: _json_value(v) for k, v in r.items()} for r in all_rows]
                json.dump(clean, handle, indent=2, default=_json_default)
                handle.write("\n")
            else:
                pd.DataFrame(all_rows).to_csv(handle, index=False)
        os.replace(tmp, path)
    except OSError as exc:  # disk full, path vanished: one line, and the old file is untouched
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ConvbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _json_value(value: Any) -> Any:
    # JSON has no NaN: missing numbers are null.
    return None if isinstance(value, float) and math.isnan(value) else value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def write_samples(path: Path, records: Sequence[dict[str, Any]], fmt: str | None = None) -> Path:
    """Raw per-run latencies: JSON keeps one record per model; CSV has one line per run (long format)."""
    fmt = output_format(path, fmt)
    if fmt == "json":
        return write_rows(path, records, fmt, append=False)
    long_rows = [
        {**{k: v for k, v in r.items() if k != "samples_ms"}, "run": i, "latency_ms": ms}
        for r in records
        for i, ms in enumerate(r["samples_ms"])
    ]
    return write_rows(path, long_rows, fmt, append=False)
