"""Where convbench keeps what it can rebuild: ONNX exports, MAC counts, the model index, machine peaks.

One root for all of them, ``$CONVBENCH_CACHE``, else ``$XDG_CACHE_HOME/convbench``, else
``~/.cache/convbench``; never the repository. Every entry is keyed by the source of the code that produced it
(``source_digest``), so editing that code makes convbench build the entry again instead of serving an old one.
This module imports nothing heavy: the CLI's fast paths (``list``, ``--help``) read the index through it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

from convbench.errors import UserInputError

PACKAGE_ROOT = Path(__file__).resolve().parent


def cache_root() -> Path:
    """The cache directory: ``$CONVBENCH_CACHE``, else ``$XDG_CACHE_HOME/convbench`` or ``~/.cache/convbench``."""
    if os.environ.get("CONVBENCH_CACHE"):
        return Path(os.environ["CONVBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convbench"


@functools.cache
def source_digest(*parts: str) -> str:
    """Hash of the source files of ``parts`` (package-relative paths: ``"export.py"``, ``"counting"``).

    A folder stands for every ``.py`` file in it. Any edit to one of them changes the digest, and with it every
    cache key derived from it; unlike a version number it cannot be forgotten when a rule changes.
    """
    digest = hashlib.sha256()
    for part in sorted(parts):
        target = PACKAGE_ROOT / part
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def writable_cache_dir(*parts: str) -> Path:
    """``cache_root() / parts``, created; a one-line UserInputError naming it where it cannot be written."""
    return writable_directory(cache_root().joinpath(*parts))


def writable_directory(directory: Path) -> Path:
    """``directory`` (a cache folder), created; a one-line UserInputError naming it where it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # access() says yes to root on a read-only mount; only a file actually created proves the directory.
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserInputError(
            f"cannot write the convbench cache {directory}: {exc.strerror or exc}; "
            "set CONVBENCH_CACHE to a writable directory"
        ) from None
    return directory
