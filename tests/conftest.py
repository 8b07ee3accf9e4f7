"""Shared test set-up: a private cache (exports, counts, the model index, peaks) for the whole session."""

from __future__ import annotations

import os
import shutil
import tempfile

# Exports made by the tests go to a throw-away cache, never the user's; they are shared by every test of the run
# (and by the trial worker processes, which inherit the variable), and removed at its end. A cache given in the
# environment is used as it is and kept.
_OWN_CACHE = None
if not os.environ.get("CONVBENCH_CACHE"):
    _OWN_CACHE = tempfile.mkdtemp(prefix="convbench-test-cache-")
    os.environ["CONVBENCH_CACHE"] = _OWN_CACHE


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
