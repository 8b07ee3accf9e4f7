"""A trial in a fresh process: ``python -m convbench.benchmark.worker JOB.pickle RESULT.json``.

The parent (``convbench.benchmark.trials.run_worker``) writes the job (model specs, the resolved plan, the model
order); the worker prepares the models with fresh sessions, times them interleaved and writes the raw
measurements. A fresh process per trial is how pyperf samples the variation between processes (memory layout,
allocator state, core placement) that no number of samples inside one process can see. Errors are written as
data, so the parent reports them as one line.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from convbench.errors import ConvbenchError

    job_path, out_path = Path(argv[0]), Path(argv[1])
    try:
        from convbench.benchmark.trials import job_result

        # The job file is written by the parent process of this same run, in a private temporary directory.
        result = job_result(pickle.loads(job_path.read_bytes()))
    except ConvbenchError as exc:
        result = {"error": str(exc), "exit_code": exc.exit_code}
    out_path.write_text(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
