"""Shared test set-up: a private ONNX cache, and small, fast settings."""

from __future__ import annotations

import os
import tempfile

# Exports made by the tests go to a throw-away cache, never the user's.
os.environ.setdefault("CONVBENCH_CACHE", tempfile.mkdtemp(prefix="convbench-test-cache-"))
