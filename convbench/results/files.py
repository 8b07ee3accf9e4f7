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

import convbench
from convbench.errors import ConvbenchError, UserInputError

FORMATS = ("csv", "json")
# Bumped when a column changes meaning; ``merge`` refuses to join files of different versions.
SCHEMA_VERSION = 2

# The columns about a speed-up over a baseline; recomputed together (reproduce) or cleared together (merge).
SPEEDUP_COLUMNS = (
    "baseline",
    "speedup",
    "speedup_low",
    "speedup_high",
    "speedup_trial_min",
    "speedup_trial_max",
    "p_value",
    "significant",
    "verdict",
    "theoretical_speedup",
    "baseline_median_ms",
)
COLUMNS = [
    "schema_version",
    "run_id",
    "model",
    "family",
    "paper",
    "model_source",
    "model_origin",
    "model_args",
    "batch_size",
    "resolution",
    "device",
    "runtime",
    "threads",
    "exporter",
    "precision",
    "gmacs",
    "conv_gmacs",
    "params_m",
    "macs_convention",
    "error",
    "median_ms",
    "median_low_ms",
    "median_high_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "p90_ms",
    "p99_ms",
    "iqr_ms",
    "cv",
    "n_runs",
    "trials",
    "trial_median_min_ms",
    "trial_median_max_ms",
    "first_run_ms",
    "setup_ms",
    "throughput_ips",
    "peak_mb",
    "peak_added_mb",
    "achieved_gmacs_per_s",
    "peak_fraction",
    "noisy",
    "noisy_reason",
    *SPEEDUP_COLUMNS,
    "stopping",
    "config_key",
]
ENVIRONMENT_COLUMNS = [
    "cpu",
    "cores",
    "os",
    "python",
    "torch",
    "torchvision",
    "onnxruntime",
    "onnx",
    "fvcore",
    "convbench",
    "git_commit",
    "git_dirty",
    "host",
    "timestamp",
    "load_avg_before",
    "load_avg_after",
]
# Columns that are text even where a value looks like a number; the numeric environment columns are the
# exceptions read as numbers.
TEXT_COLUMNS = ["run_id", "model", "family", "paper", "model_source", "model_origin", "model_args", "baseline"]
NUMERIC_ENVIRONMENT = {"cores", "load_avg_before", "load_avg_after"}
# What says two rows were measured on the same machine with the same software: speed-ups are only ever taken
# between rows that agree on all of these and share a run_id.
FINGERPRINT_COLUMNS = ["cpu", "cores", "os", "python", "torch", "onnxruntime", "convbench", "git_commit", "host"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(convbench.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> tuple[str, str]:
    """(commit, dirty) of the installed convbench; a failure to read either says so instead of staying empty."""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown (not a git checkout, or git unavailable)", "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None else ("yes" if status.strip() else "no")
    return commit.strip(), dirty


def new_run_id() -> str:
    """A unique id for one benchmark run: the UTC time, readable, plus random hex (two runs in one second differ)."""
    import uuid

    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


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

    commit, dirty = git_state()
    return {
        "schema_version": SCHEMA_VERSION,
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
        "git_commit": commit,
        "git_dirty": dirty,
        "host": platform.node(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def order_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The row with schema columns first, then runtime settings, then the environment."""
    head = [c for c in COLUMNS if c in row]
    tail = [c for c in ENVIRONMENT_COLUMNS if c in row]
    middle = [c for c in row if c not in head and c not in tail]
    return {c: row[c] for c in head + middle + tail}


def output_format(path: Path, fmt: str | None) -> str:
    """``fmt`` if given, else from the file suffix (.csv or .json); any other suffix needs ``fmt``."""
    if fmt is None:
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".json"):
            raise UserInputError(
                f"cannot tell the format of {path.name!r} from its suffix; use .csv or .json, or give --format"
            )
        fmt = suffix[1:]
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
    try:  # some directories (/proc, read-only mounts) pass access() and still refuse new files
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_rows(path: Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Rows of an existing result file; a clear error if it is not one."""
    import pandas as pd

    fmt = output_format(path, fmt)
    try:
        if fmt == "json":
            data = json.loads(path.read_text())
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ValueError("expected a JSON list of row objects")
            return data
        # Identity and environment columns are text even when they look like numbers (a commit "0123456").
        text = {c: str for c in (*TEXT_COLUMNS, *ENVIRONMENT_COLUMNS) if c not in NUMERIC_ENVIRONMENT}
        frame = pd.read_csv(path, dtype=text, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
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
    # The file's columns: the schema first and the environment last, whichever row brought a column first.
    columns = list(order_columns(dict.fromkeys(k for r in all_rows for k in r))) if schema else None
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
                import pandas as pd

                pd.DataFrame(all_rows, columns=columns).to_csv(handle, index=False)
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
