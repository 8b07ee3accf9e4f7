"""Result rows, the environment they were measured in, and atomic CSV/JSON writing.

One schema serves CSV and JSON: a row is a flat dict whose first columns are ``COLUMNS`` in that order;
runtime-specific settings follow.

Writing. Any number of processes may write one result file at once (shards of a sweep, Slurm array tasks):
each write holds an advisory lock (``fcntl.flock`` on a hidden ``.<name>.lock`` beside the file) around
read, append and replace, so every process's rows arrive. The new content goes to a temporary file in the
target directory, is flushed to disk (``fsync``) and renamed over the old file (``os.replace``), so a process
killed at any moment leaves the previous file whole, never a truncated one. A lock not taken within
``$CONVBENCH_LOCK_TIMEOUT`` seconds (default 60) is one error line naming the file and the holder's pid.
``write_rows_or_rescue`` is for sweeps: where the file cannot be written, the rows go to a rescue file and
the error says where.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import convbench
from convbench.errors import ConvbenchError, UserInputError
from convbench.timing.machine import available_cores

FORMATS = ("csv", "json")
# Bumped when a column changes meaning. ``merge`` reads the older versions listed in OLDER_SCHEMAS (their rows keep
# their own schema_version, and the merge notes say what reads differently) and refuses any other.
SCHEMA_VERSION = 3
OLDER_SCHEMAS: dict[int, str] = {
    2: (
        "cuda_peak_allocated_mb is the whole trial's device peak (now the model's own), peak_fraction is against "
        "the fp32 GEMM peak whatever the precision, and noisy_reason lists each trial's reasons"
    ),
}

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
    "peak_precision",
    "energy_j_per_image",
    "power_w",
    "energy_note",
    "noisy",
    "noisy_reason",
    *SPEEDUP_COLUMNS,
    "stopping",
    "config_key",
    "command",
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


def is_blank(value: Any) -> bool:
    """No value: None, an empty or blank string, or NaN (how CSV files and pandas say "missing")."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def truthy(value: Any) -> bool:
    """A flag of a row, which a result file read back may hold as text."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return not is_blank(value) and bool(value)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
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
        "cpu": cpu_model(),
        "cores": available_cores(),
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


LOCK_TIMEOUT_ENV = "CONVBENCH_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 60.0


def lock_timeout() -> float:
    """Seconds a writer waits for another's lock: ``$CONVBENCH_LOCK_TIMEOUT``, else 60."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise UserInputError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds ≥ 0, got {text!r}")
    return value


def lock_path(path: Path) -> Path:
    """The lock file that serialises writers of ``path``: hidden, beside it, there only while a writer holds it."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the advisory write lock of ``path`` (``fcntl.flock``); the holder's pid is written into the lock.

    Waits up to ``timeout`` seconds (default ``lock_timeout()``), then raises a one-line UserInputError naming
    the file and the holder. The holder removes the lock file before letting go, so none is left behind; a
    waiter that then wins the lock on the removed file sees that it is no longer the one at the path and tries
    again (the usual open-lock-check pattern), so two writers never both hold it. Where ``fcntl`` does not exist
    (Windows) writers are not serialised.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    timeout = lock_timeout() if timeout is None else timeout
    where = lock_path(path)
    deadline = time.monotonic() + timeout
    fd = _take_lock(fcntl, path, where, deadline, timeout)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {platform.node()}\n".encode(), 0)
        yield
    finally:
        # Removed while still held: a waiter on this file then finds it gone and opens the next one.
        with contextlib.suppress(OSError):
            os.unlink(where)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _take_lock(fcntl: Any, path: Path, where: Path, deadline: float, timeout: float) -> int:
    pause = 0.005
    while True:
        try:
            fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        except OSError as exc:
            raise ConvbenchError(f"cannot write {path}: cannot open its lock file {where} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _lock_holder(fd)
                os.close(fd)
                raise UserInputError(
                    f"cannot write {path}: another process{holder} has held its lock {where.name} for over "
                    f"{timeout:g} s; wait for it, or set {LOCK_TIMEOUT_ENV} to wait longer"
                ) from None
            os.close(fd)
            time.sleep(pause)
            pause = min(pause * 2, 0.1)  # short waits while shards queue, without a busy loop
            continue
        except OSError as exc:  # a filesystem without locks (some network mounts)
            os.close(fd)
            raise ConvbenchError(f"cannot lock {path} through {where}: {exc.strerror or exc}") from None
        try:
            current = os.stat(where)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            return fd
        os.close(fd)  # the lock of a file its holder has just removed: take the one at the path now


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        return ""
    if not text or not text[0].isdigit():
        return ""
    host = f" on {text[1]}" if len(text) > 1 and text[1] != platform.node() else ""
    return f" (pid {text[0]}{host})"


def write_rows(
    path: Path, rows: Sequence[dict[str, Any]], fmt: str | None = None, append: bool = True, schema: bool = True
) -> Path:
    """Write ``rows`` to ``path`` atomically; with ``append`` keep the rows already there.

    Safe with many writers at once (they take turns on the file's lock, each re-reading what the others
    wrote) and against being killed (the old file stays until the new one is complete on disk). With
    ``schema`` the result-row columns come first (``COLUMNS``); files with their own layout pass False.
    """
    fmt = output_format(path, fmt)
    check_writable(path)
    with locked(path):
        _remove_stale_temporaries(path)
        existing = read_rows(path, fmt) if append and path.exists() and path.stat().st_size > 0 else []
        all_rows = [*existing, *(order_columns(r) if schema else r for r in rows)]
        _replace_with(path, all_rows, fmt, schema)
    return path


def rewrite_rows(
    path: Path,
    change: Callable[[list[dict[str, Any]]], Sequence[dict[str, Any]]],
    fmt: str | None = None,
    schema: bool = True,
) -> Path:
    """Replace ``path``'s rows with ``change(rows now in the file)``, read and written under the file's lock.

    For writers that replace some rows rather than append (``reproduce`` replaces the lines of the table rows it
    measured again): reading before the lock would drop whatever another process wrote in between.
    """
    fmt = output_format(path, fmt)
    check_writable(path)
    with locked(path):
        _remove_stale_temporaries(path)
        existing = read_rows(path, fmt) if path.exists() and path.stat().st_size > 0 else []
        new = list(change(existing))
        _replace_with(path, [order_columns(r) for r in new] if schema else new, fmt, schema)
    return path


def _replace_with(path: Path, all_rows: Sequence[dict[str, Any]], fmt: str, schema: bool) -> None:
    # The file's columns: the schema first and the environment last, whichever row brought a column first.
    columns = list(order_columns(dict.fromkeys(k for r in all_rows for k in r))) if schema else None

    def write(handle: Any) -> None:
        if fmt == "json":
            clean = [{k: _json_value(v) for k, v in r.items()} for r in all_rows]
            json.dump(clean, handle, indent=2, default=_json_default)
            handle.write("\n")
        else:
            import pandas as pd

            pd.DataFrame(all_rows, columns=columns).to_csv(handle, index=False)

    replace_atomically(path, write)


def replace_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Give ``path`` the text ``write(handle)`` writes, all at once: written beside it, synced, then renamed over
    it, so a reader or a killed process never sees half a file; one-line error where that fails."""
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    # mkstemp creates the file private (0600); give the result the permissions any new file would get.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            # On disk before the rename: otherwise a crash of the machine could leave the new name on an empty file.
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except OSError as exc:  # disk full, path vanished, file made immutable: one line, and the old file is untouched
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ConvbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _temporary_prefix(path: Path, pid: int | None = None) -> str:
    # Host and pid in the name: a later writer can tell a temporary whose writer was killed from a live one.
    return f".{path.name}.{platform.node()}.{os.getpid() if pid is None else pid}."


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of writers of ``path`` on this host that were killed mid-write.

    Called under the lock: a live writer of this file would hold it, so a temporary from a pid that no longer
    exists is debris. Temporaries from other hosts (shared storage) are left alone; their pids mean nothing here.
    """
    head = f".{path.name}.{platform.node()}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(head) and name.endswith(".tmp")):
            continue
        pid_text = name[len(head) :].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _sync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory is flushed; where that is refused, the file is
    # still complete, only its new name may not survive a power cut.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def rescue_directory() -> Path:
    """Where rows that could not be written to their file are kept: ``<cache>/rescued``, else the temp dir."""
    from convbench.cache import cache_root

    for candidate in (cache_root() / "rescued", Path(tempfile.gettempdir()) / "convbench-rescued"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return Path(tempfile.gettempdir())


def write_rows_or_rescue(
    path: Path, rows: Sequence[dict[str, Any]], fmt: str | None = None, append: bool = True, schema: bool = True
) -> Path:
    """``write_rows``, for sweeps: where ``path`` cannot be written (made read-only, disk full, lock timeout),
    ``rows`` go to a new file in ``rescue_directory()`` and the error says where, so nothing measured is lost.

    The rescue file has ``path``'s format and the rows alone; ``convbench merge`` joins it with ``path`` later.
    """
    fmt = output_format(path, fmt)
    try:
        return write_rows(path, rows, fmt, append=append, schema=schema)
    except ConvbenchError as exc:
        if not rows:
            raise
        reason = str(exc).removeprefix(f"cannot write {path}: ")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        rescue = rescue_directory() / f"{path.stem}-rescued-{stamp}-{os.getpid()}.{fmt}"
        try:
            write_rows(rescue, rows, fmt, append=True, schema=schema)
        except ConvbenchError as second:
            raise ConvbenchError(
                f"cannot write {path}: {reason}; saving its {len(rows)} row(s) elsewhere failed too ({second})"
            ) from None
        raise ConvbenchError(
            f"cannot write {path}: {reason}; its {len(rows)} new row(s) were saved to {rescue} "
            f"(join them later with `convbench merge {path} {rescue} -o ALL.{fmt}`)"
        ) from None


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
