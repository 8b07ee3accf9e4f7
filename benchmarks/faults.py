"""Fault injection: does convbench lose or corrupt anything when processes collide, die or lose their disk?

Each case injects one fault into the real code paths (``write_rows``, ``export_onnx``, ``count``, the trial
worker) in a private temporary directory and cache, and records one row in ``results/faults.csv``:

- ``case``: the fault's name; ``action``: what was done; ``expected``: what surviving it means;
- ``observed``: what happened, measured after the fault; ``survived``: yes when observed meets expected;
- ``rows_lost``: result rows that were written or in memory before the fault and are in no file after it
  (blank where the case has no rows); ``seconds``: the case's wall time.

Cases: twelve shards appending to one file at once; two processes exporting one model into one cache at once; a
writer killed with SIGKILL in mid-write; a truncated export and a broken count entry in the cache; a lock held
past the timeout; an unwritable cache; a trial worker that hangs (the worker timeout); a result file made
read-only halfway through a sweep (the rows in memory go to a rescue file and the error says where).

    .venv/bin/python benchmarks/faults.py -o results/faults.csv      # about a minute and a half on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convbench.errors import ConvbenchError, UserInputError
from convbench.results.files import LOCK_TIMEOUT_ENV, locked, read_rows, write_rows, write_rows_or_rescue

SHARDS = 12
ROWS_PER_WRITE = 2
WRITES_PER_SHARD = 2
EXPORT_MODEL = "resnet18-cifar10"


def _row(shard: int, write: int, index: int) -> dict[str, Any]:
    return {"schema_version": 2, "run_id": f"shard{shard}", "model": f"m{shard}-{write}-{index}", "median_ms": 1.0}


def _models(path: Path) -> list[str]:
    return [str(r["model"]) for r in read_rows(path)] if path.exists() else []


def _shard(path: str, shard: int, barrier: Any) -> None:
    barrier.wait()  # every shard starts at once, as the tasks of a Slurm array do
    for write in range(WRITES_PER_SHARD):
        write_rows(Path(path), [_row(shard, write, i) for i in range(ROWS_PER_WRITE)])


def concurrent_shards(work: Path) -> dict[str, Any]:
    path = work / "shards.csv"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(SHARDS)
    shards = [context.Process(target=_shard, args=(str(path), n, barrier)) for n in range(SHARDS)]
    for shard in shards:
        shard.start()
    for shard in shards:
        shard.join(300)
    expected = {_row(s, w, i)["model"] for s in range(SHARDS) for w in range(WRITES_PER_SHARD) for i in range(2)}
    found = _models(path)
    failed = sum(1 for s in shards if s.exitcode != 0)
    lost = len(expected - set(found))
    return {
        "action": f"{SHARDS} processes each append {WRITES_PER_SHARD}× {ROWS_PER_WRITE} rows to one CSV "
        "through write_rows, all released at once",
        "expected": f"all {len(expected)} rows, each once; every process exits 0",
        "observed": f"{len(found)} rows ({len(set(found))} distinct); {failed} process(es) failed",
        "survived": lost == 0 and len(found) == len(expected) and failed == 0,
        "rows_lost": lost,
    }


EXPORT_CHILD = """
import sys, time
from pathlib import Path
from convbench.export import export_onnx
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
print(export_onnx(sys.argv[1]).path, flush=True)
"""


def _entries(cache: Path) -> list[Path]:
    folder = cache / "onnx"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []


def two_exports(work: Path, cache: Path) -> dict[str, Any]:
    import onnx

    go = work / "go"
    command = [sys.executable, "-c", EXPORT_CHILD, EXPORT_MODEL, str(go)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    for child in children:
        assert child.stdout is not None
        child.stdout.readline()
    go.write_text("")
    outputs = [child.communicate(timeout=600) for child in children]
    codes = [c.returncode for c in children]
    paths = {out.strip() for out, _ in outputs}
    entries = _entries(cache)
    try:
        onnx.checker.check_model(str(entries[0] / "model.onnx"))
        valid = len(entries) == 1
    except (IndexError, onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError):
        valid = False
    errors = "; ".join(err.strip().splitlines()[-1] for _, err in outputs if err.strip() and codes != [0, 0])
    return {
        "action": f"two fresh processes run export_onnx({EXPORT_MODEL!r}) into one empty cache, released at once",
        "expected": "both exit 0 with the same model.onnx; one complete entry, no staging folder left",
        "observed": f"exit codes {codes}; {len(paths)} distinct path(s); {len(entries)} entry folder(s) "
        f"({', '.join(p.name[:24] for p in entries)}); entry {'valid' if valid else 'INVALID'}"
        + (f"; {errors}" if errors else ""),
        "survived": codes == [0, 0] and len(paths) == 1 and valid,
        "rows_lost": "",
    }


KILLED_WRITER = """
import sys
from pathlib import Path
from convbench.results.files import write_rows
rows = [{"model": f"big{i}", "run_id": "big", "schema_version": 2, "note": "x" * 200} for i in range(200_000)]
print("writing", flush=True)
write_rows(Path(sys.argv[1]), rows)
"""


def sigkill_mid_write(work: Path) -> dict[str, Any]:
    path = work / "sweep.csv"
    before = [_row(0, 0, i) for i in range(5)]
    write_rows(path, before)
    content = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()
    temporaries: list[Path] = []
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in temporaries) and child.poll() is None and time.monotonic() < deadline:
        temporaries = [p for p in work.iterdir() if p.name.startswith(".sweep.csv.") and p.name.endswith(".tmp")]
        time.sleep(0.002)
    written = sum(p.stat().st_size for p in temporaries if p.exists())
    killed_mid_write = child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    intact = path.read_bytes() == content
    lost = len({r["model"] for r in before} - set(_models(path)))
    os.environ[LOCK_TIMEOUT_ENV] = "10"
    try:
        write_rows(path, [_row(1, 0, 0)])  # the next writer: the dead one's lock and temporary must not block it
        next_ok = len(_models(path)) == len(before) + 1
    except ConvbenchError:
        next_ok = False
    finally:
        del os.environ[LOCK_TIMEOUT_ENV]
    leftovers = [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
    return {
        "action": "SIGKILL a process while write_rows writes 200,000 rows over a 5-row file "
        f"({written / 1024:.0f} KiB of the new content on disk when killed)",
        "expected": "the file is byte-for-byte the 5-row file; the next write succeeds and removes the debris",
        "observed": f"killed mid-write: {'yes' if killed_mid_write else 'no'}; "
        f"file intact: {'yes' if intact else 'no'}; next write: {'ok' if next_ok else 'FAILED'}; "
        f"temporaries left: {len(leftovers)}",
        "survived": killed_mid_write and intact and next_ok and not leftovers,
        "rows_lost": lost,
    }


def truncated_export(cache: Path) -> dict[str, Any]:
    import onnx

    entry = _entries(cache)[0]
    model = entry / "model.onnx"
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[: size // 2])
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from convbench.export import export_onnx; print(export_onnx({EXPORT_MODEL!r}).cached)",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    notes = [line for line in child.stderr.splitlines() if line.startswith("note:")]
    try:
        onnx.checker.check_model(str(model))
        rebuilt = model.stat().st_size == size
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError):
        rebuilt = False
    return {
        "action": f"cut the cached model.onnx of {EXPORT_MODEL} to half its {size / 2**20:.1f} MiB, then export again",
        "expected": "exit 0; a one-line note on stderr; the entry exported again, whole and valid",
        "observed": f"exit {child.returncode}; cached={child.stdout.strip() or '?'}; {len(notes)} note line(s)"
        + (f" ({notes[0][:90]}...)" if notes else "")
        + f"; entry {'rebuilt and valid' if rebuilt else 'NOT rebuilt'}",
        "survived": child.returncode == 0 and child.stdout.strip() == "False" and len(notes) == 1 and rebuilt,
        "rows_lost": "",
    }


def broken_count(work: Path) -> dict[str, Any]:
    from convbench.counting import macs
    from convbench.models.spec import resolve_model

    first = macs.count(EXPORT_MODEL)
    resolved = resolve_model(EXPORT_MODEL)
    path = macs._cache_path(resolved, resolved.input_shape(1), first.convention)
    path.write_text(path.read_text()[:20])
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from convbench.counting.macs import count; r = count({EXPORT_MODEL!r}); print(r.macs, r.cached)",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    notes = [line for line in child.stderr.splitlines() if line.startswith("note:")]
    macs_text, _, cached = child.stdout.strip().partition(" ")
    same = macs_text == str(first.macs)
    return {
        "action": f"cut the cached MAC count of {EXPORT_MODEL} to 20 bytes of JSON, then count again",
        "expected": "exit 0; a one-line note; the same MACs, counted afresh",
        "observed": f"exit {child.returncode}; MACs {'the same' if same else 'DIFFERENT'}; cached={cached or '?'}; "
        f"{len(notes)} note line(s)",
        "survived": child.returncode == 0 and same and cached == "False" and len(notes) == 1,
        "rows_lost": "",
    }


def _hold(path: str, ready: Any, release: Any) -> None:
    with locked(Path(path)):
        ready.set()
        release.wait(120)


def lock_timeout(work: Path) -> dict[str, Any]:
    path = work / "held.csv"
    write_rows(path, [_row(0, 0, 0)])
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(path), ready, release))
    holder.start()
    ready.wait(60)
    os.environ[LOCK_TIMEOUT_ENV] = "1"
    message = ""
    try:
        write_rows(path, [_row(1, 0, 0)])
    except UserInputError as exc:
        message = str(exc)
    finally:
        del os.environ[LOCK_TIMEOUT_ENV]
        release.set()
        holder.join(60)
    named = str(path) in message and f"pid {holder.pid}" in message and "\n" not in message
    return {
        "action": f"another process holds the file's lock; write with {LOCK_TIMEOUT_ENV}=1",
        "expected": "one-line error (exit 2) naming the file and the holder's pid; the file unchanged",
        "observed": (message[:150] + ("..." if len(message) > 150 else "")) or "no error",
        "survived": named and len(_models(path)) == 1,
        "rows_lost": max(0, 1 - len(_models(path))),
    }


def unwritable_cache(work: Path) -> dict[str, Any]:
    blocker = work / "a-file"
    blocker.write_text("")
    env = {**os.environ, "CONVBENCH_CACHE": str(blocker / "cache")}
    child = subprocess.run(
        [sys.executable, "-m", "convbench", "export", EXPORT_MODEL, "-o", str(work / "m.onnx")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    named = len(lines) == 1 and str(blocker / "cache") in lines[0]
    return {
        "action": f"convbench export {EXPORT_MODEL} with CONVBENCH_CACHE under a regular file",
        "expected": "exit 2 with one line naming the cache directory; no model file written",
        "observed": f"exit {child.returncode}; {len(lines)} line(s): {lines[0][:120] if lines else ''}",
        "survived": child.returncode == 2 and named and not (work / "m.onnx").exists(),
        "rows_lost": "",
    }


HANGING_MODEL = """
import os, time
from pathlib import Path
from torch import nn
default_input_size = (3, 16, 16)
def build():
    Path(os.environ["CONVBENCH_FAULTS_PID"]).write_text(str(os.getpid()))
    time.sleep(3600)  # a runtime that never returns
    return nn.Identity()
"""


def hung_worker(work: Path) -> dict[str, Any]:
    try:
        from convbench.benchmark.plan import BenchmarkConfig
        from convbench.benchmark.trials import TrialJob, run_worker
    except ImportError as exc:
        return {
            "action": "a trial worker that hangs",
            "expected": "stopped at the worker timeout",
            "observed": f"not run: {exc}",
            "survived": False,
            "rows_lost": "",
        }
    from convbench.models.spec import ModelSpec

    source = work / "hang.py"
    source.write_text(HANGING_MODEL)
    pid_file = work / "worker.pid"
    os.environ["CONVBENCH_FAULTS_PID"] = str(pid_file)
    timeout = 15.0  # the worker imports torch first: a few seconds here
    plan = BenchmarkConfig(runtime="torch", device="cpu", threads=1).plan()
    job = TrialJob((ModelSpec(f"{source}:build"),), plan, (0,))
    start = time.monotonic()
    message = ""
    try:
        run_worker(job, timeout)
    except ConvbenchError as exc:
        message = str(exc)
    elapsed = time.monotonic() - start
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    gone = pid is not None and not Path(f"/proc/{pid}").exists()
    return {
        "action": f"run_worker on a model whose build never returns, worker timeout {timeout:g} s",
        "expected": "a one-line error after about the timeout; the hung worker process is gone",
        "observed": f"after {elapsed:.1f} s: {message[:110] or 'no error'}; worker pid {pid} "
        f"{'gone' if gone else 'STILL THERE' if pid else 'never started'}",
        "survived": bool(message) and "\n" not in message and gone and elapsed < timeout + 10,
        "rows_lost": "",
    }


def make_read_only(path: Path) -> str:
    """Mode 0444, and for root (whom modes do not stop) the immutable attribute; how, in words."""
    path.chmod(0o444)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        return "chmod 0444 + chattr +i (running as root)"
    return "chmod 0444"


def read_only_halfway(work: Path, cache: Path) -> dict[str, Any]:
    path = work / "sweep-ro.csv"
    jobs = [[_row(job, 0, i) for i in range(3)] for job in range(4)]
    measured: list[str] = []
    message, how = "", ""
    try:
        for number, rows in enumerate(jobs):
            if number == 2:
                how = make_read_only(path)
            measured += [r["model"] for r in rows]
            write_rows_or_rescue(path, rows)  # what the sweep does after each job
    except ConvbenchError as exc:
        message = str(exc)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
        path.chmod(0o644)
    rescued = sorted((cache / "rescued").glob("*.csv")) if (cache / "rescued").is_dir() else []
    in_files = set(_models(path)) | {m for r in rescued for m in _models(r)}
    lost = len(set(measured) - in_files)
    said = bool(rescued) and all(str(r) in message for r in rescued)
    return {
        "action": f"a 4-job sweep writes after each job; before job 3 the file is made read-only ({how})",
        "expected": "jobs 1–2 in the file; job 3's rows in a rescue file; one-line error naming it; nothing lost",
        "observed": f"{len(_models(path))} rows in the file, {sum(len(_models(r)) for r in rescued)} in "
        f"{len(rescued)} rescue file(s); message names it: {'yes' if said else 'no'}",
        "survived": lost == 0 and said and "\n" not in message,
        "rows_lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/faults.csv"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="convbench-faults-"))
    cache = work / "cache"
    previous_cache = os.environ.get("CONVBENCH_CACHE")
    os.environ["CONVBENCH_CACHE"] = str(cache)  # a private cache: the user's is never touched
    cases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("concurrent shards, one file", lambda: concurrent_shards(work)),
        ("two exports, one cache entry", lambda: two_exports(work, cache)),
        ("writer killed mid-write", lambda: sigkill_mid_write(work)),
        ("truncated export in the cache", lambda: truncated_export(cache)),
        ("broken count in the cache", lambda: broken_count(work)),
        ("lock held past the timeout", lambda: lock_timeout(work)),
        ("cache directory not writable", lambda: unwritable_cache(work)),
        ("worker hangs", lambda: hung_worker(work)),
        ("result file read-only mid-sweep", lambda: read_only_halfway(work, cache)),
    ]
    rows = []
    try:
        for name, case in cases:
            start = time.monotonic()
            try:
                row = case()
            except Exception as exc:  # a case that breaks is recorded as not survived, and the others still run
                row = {"action": "", "expected": "", "observed": f"the case itself failed: {exc!r}"[:200]}
                row.update(survived=False, rows_lost="")
            # The private folder's name changes every run and says nothing; the file reads the same every time.
            row["observed"] = str(row["observed"]).replace(str(work), "$TMP")
            row = {"case": name, **row, "survived": "yes" if row["survived"] else "no"}
            row["seconds"] = round(time.monotonic() - start, 1)
            rows.append(row)
            print(f"{row['survived']:>3}  {name}: {row['observed']}", flush=True)
    finally:
        if previous_cache is None:
            os.environ.pop("CONVBENCH_CACHE", None)
        else:
            os.environ["CONVBENCH_CACHE"] = previous_cache
        shutil.rmtree(work, ignore_errors=True)
    write_rows(args.output, rows, append=False, schema=False)
    survived = sum(r["survived"] == "yes" for r in rows)
    print(f"{survived}/{len(rows)} faults survived; wrote {args.output}")


if __name__ == "__main__":
    main()
