"""Result files that never lose a row: many writers at once, writers killed mid-write, locks held too long, and
files that become unwritable halfway through a sweep."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convbench.errors import ConvbenchError, UserInputError
from convbench.results.files import (
    LOCK_TIMEOUT_ENV,
    lock_path,
    lock_timeout,
    locked,
    read_rows,
    rewrite_rows,
    write_rows,
    write_rows_or_rescue,
    write_samples,
)

WRITERS = 12
ROWS_PER_WRITE = 2
WRITES_PER_WRITER = 2


def _row(writer: int, write: int, index: int) -> dict:
    return {"schema_version": 2, "run_id": f"w{writer}", "model": f"m{writer}-{write}-{index}", "median_ms": 1.0}


def _append_rows(path: str, writer: int, barrier) -> None:
    barrier.wait()  # all writers start together, as the shards of an array job do
    for write in range(WRITES_PER_WRITER):
        write_rows(Path(path), [_row(writer, write, i) for i in range(ROWS_PER_WRITE)])


def _run_writers(path: Path, target, count: int) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    workers = [context.Process(target=target, args=(str(path), n, barrier)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * count


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_twelve_processes_appending_to_one_file_lose_no_row(tmp_path, suffix):
    """Fails without the lock around read-append-replace: two writers that read the same old file each replace
    it with their own rows only (the issue saw 16 of 24 rows kept, then 8 of 24)."""
    path = tmp_path / f"shards{suffix}"
    _run_writers(path, _append_rows, WRITERS)
    models = sorted(r["model"] for r in read_rows(path))
    expected = sorted(
        _row(w, k, i)["model"] for w in range(WRITERS) for k in range(WRITES_PER_WRITER) for i in range(ROWS_PER_WRITE)
    )
    assert models == expected
    # Nothing left behind: no temporary, and the lock file leaves with its last holder.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


KILLED_WRITER = """
import sys
from pathlib import Path
from convbench.results.files import write_rows
rows = [{"model": f"big{i}", "run_id": "big", "schema_version": 2, "note": "x" * 200} for i in range(200_000)]
print("writing", flush=True)
write_rows(Path(sys.argv[1]), rows)
"""


def _temporaries(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]


def test_a_writer_killed_mid_write_leaves_the_previous_file_whole(tmp_path):
    """Fails if a write truncates or rewrites the file in place: the SIGKILL lands while the new content is being
    written, and the file must still hold exactly the rows it held before. Also fails if the dead writer's lock
    or temporary outlives it: the next write must succeed at once and clean up."""
    path = tmp_path / "sweep.csv"
    before = [_row(0, 0, i) for i in range(3)]
    write_rows(path, before)
    content = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in _temporaries(path)):  # mid-write: the new content is growing
            assert child.poll() is None, "the writer finished before it could be killed; give it more rows"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == content
    assert [r["model"] for r in read_rows(path)] == [r["model"] for r in before]
    assert _temporaries(path), "the killed writer's temporary should still be there for this test to mean anything"
    os.environ[LOCK_TIMEOUT_ENV] = "5"
    try:
        write_rows(path, [_row(1, 0, 0)])  # the kernel released the dead writer's lock
    finally:
        del os.environ[LOCK_TIMEOUT_ENV]
    assert len(read_rows(path)) == 4
    assert not _temporaries(path)  # the killed writer's debris is gone


def _hold_lock(path: str, ready, release) -> None:
    with locked(Path(path)):
        ready.set()
        release.wait(60)


def test_a_lock_held_too_long_is_one_line_naming_the_file_and_the_holder(tmp_path, monkeypatch):
    """Fails if a writer waits forever, overwrites the holder's work, or cannot say who holds the lock."""
    path = tmp_path / "run.csv"
    write_rows(path, [_row(0, 0, 0)])
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.3")
        with pytest.raises(UserInputError) as info:
            write_rows(path, [_row(1, 0, 0)])
        message = str(info.value)
        assert str(path) in message and f"pid {holder.pid}" in message and LOCK_TIMEOUT_ENV in message
        assert "\n" not in message
        assert len(read_rows(path)) == 1  # nothing half-written
    finally:
        release.set()
        holder.join(30)
    write_rows(path, [_row(1, 0, 0)])  # once released, the lock is free again
    assert len(read_rows(path)) == 2 and not lock_path(path).exists()


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_an_invalid_lock_timeout_is_refused_in_one_line(monkeypatch, value):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, value)
    with pytest.raises(UserInputError, match=LOCK_TIMEOUT_ENV):
        lock_timeout()


def test_the_lock_timeout_defaults_to_a_minute_and_follows_the_environment(monkeypatch):
    monkeypatch.delenv(LOCK_TIMEOUT_ENV, raising=False)
    assert lock_timeout() == 60
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout() == 2.5


def make_unwritable(path: Path) -> bool:
    """Make ``path`` read-only as far as this process is concerned: its mode, and for root (whom modes do not
    stop) the immutable attribute. False where neither holds here."""
    path.chmod(0o444)
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    try:
        with path.open("a"):
            pass
    except PermissionError:
        return True
    return False


def make_writable(path: Path) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    path.chmod(0o644)


def test_rows_of_a_file_made_read_only_mid_sweep_are_rescued_and_the_error_says_where(tmp_path, monkeypatch):
    """Fails if the rows in memory are dropped when the file cannot be written, if the message does not say
    where they went, or if the rescue touches the original file."""
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "sweep.csv"
    first = [_row(0, 0, i) for i in range(2)]
    write_rows_or_rescue(path, first)
    content = path.read_bytes()
    if not make_unwritable(path):
        pytest.skip("cannot make a file read-only for this user here")
    try:
        second = [_row(1, 0, i) for i in range(3)]
        with pytest.raises(ConvbenchError) as info:
            write_rows_or_rescue(path, second)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and "3 new row(s)" in message
        rescued = [p for p in (tmp_path / "cache" / "rescued").iterdir() if p.suffix == ".csv"]
        assert len(rescued) == 1 and str(rescued[0]) in message
        assert [r["model"] for r in read_rows(rescued[0])] == [r["model"] for r in second]
        assert path.read_bytes() == content
    finally:
        make_writable(path)


def test_a_write_that_succeeds_needs_no_rescue(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "sweep.json"
    assert write_rows_or_rescue(path, [_row(0, 0, 0)]) == path
    assert not (tmp_path / "cache" / "rescued").exists() or not any((tmp_path / "cache" / "rescued").iterdir())


def test_samples_are_written_under_the_same_lock(tmp_path):
    """Fails if write_samples bypasses the lock: a held lock must make it wait (here: time out)."""
    path = tmp_path / "samples.csv"
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        os.environ[LOCK_TIMEOUT_ENV] = "0.2"
        with pytest.raises(UserInputError, match="lock"):
            write_samples(path, [{"model": "m", "run_id": "r", "samples_ms": [1.0, 2.0]}])
    finally:
        os.environ.pop(LOCK_TIMEOUT_ENV, None)
        release.set()
        holder.join(30)
    assert not path.exists()


def _replace_own_line(path: str, writer: int, barrier) -> None:
    barrier.wait()
    for round_ in range(3):  # each writer replaces its own line, as reproduce replaces a table row's line
        line = {**_row(writer, 0, 0), "median_ms": float(round_)}
        rewrite_rows(Path(path), lambda rows, line=line: [*[r for r in rows if r["run_id"] != f"w{writer}"], line])


def test_replacing_writers_keep_each_others_lines(tmp_path):
    """Fails if the rows to keep are read outside the lock: a writer then drops the line another one just wrote."""
    path = tmp_path / "table.csv"
    _run_writers(path, _replace_own_line, 6)
    rows = read_rows(path)
    assert sorted(r["run_id"] for r in rows) == [f"w{n}" for n in range(6)]
    assert {r["median_ms"] for r in rows} == {2.0}  # every writer's last line, once
