"""A trial in a fresh process: ``python -m convbench.benchmark.worker JOB.json RESULT.json``.

The parent (``convbench.benchmark``) writes the job (model specs, configuration, model order); the worker
prepares the models with fresh sessions, times them interleaved and writes the raw measurements. A fresh
process per trial is how pyperf samples the variation between processes (memory layout, allocator state, core
placement) that no number of samples inside one process can see. Errors are written as data, so the parent
reports them as one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from convbench.errors import ConvbenchError

    job_path, out_path = Path(argv[0]), Path(argv[1])
    try:
        from convbench.benchmark import trial_job_result

        result = trial_job_result(json.loads(job_path.read_text()))
    except ConvbenchError as exc:
        result = {"error": str(exc), "exit_code": exc.exit_code}
    out_path.write_text(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
