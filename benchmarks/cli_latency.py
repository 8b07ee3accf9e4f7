"""How long does convbench take to answer? Wall time of CLI commands, beside `python -c "import torch"`.

Each command runs ``--repeats`` times as a fresh process (after one unrecorded run that fills the caches: the
registry index, the counts, the ONNX export, the machine's peak); the CSV holds the median and the minimum
wall time, and the torch import time measured in the same run, so the targets read as "above the torch
import" on any machine:

- ``convbench --help`` and ``convbench list``: ≤ 0.5 s;
- ``convbench count resnet50`` (cached): ≤ 1 s above the torch import;
- ``convbench profile resnet50 --runs 10 --min-time 0 --warmup 2 --warmup-time 0`` (cached export): ≤ 2 s above
  the torch import plus its own timed runs (first runs, warm-up and measured runs, from the result row).

    .venv/bin/python benchmarks/cli_latency.py -o results/cli_latency.csv
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from convbench.results.files import environment, write_rows

PROFILE = ["profile", "resnet50", "--runs", "10", "--min-time", "0", "--warmup", "2", "--warmup-time", "0"]
COMMANDS: list[tuple[str, list[str], float, bool]] = [  # name, arguments, target seconds, relative to torch import
    ("--help", ["--help"], 0.5, False),
    ("list", ["list"], 0.5, False),
    ("count resnet50", ["count", "resnet50"], 1.0, True),
    ("profile resnet50 (default trials)", PROFILE, 2.0, True),
    ("profile resnet50 --trials 1 --isolate session", [*PROFILE, "--trials", "1", "--isolate", "session"], 2.0, True),
]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds


def timed_runs_seconds(csv: Path) -> float:
    """Seconds the profile spent in inference it was asked for: first runs, warm-up and measured runs."""
    row = pd.read_csv(csv).iloc[0]
    trials = int(row.get("trials", 1))
    per_trial_extra = (1 + int(row["warmup_runs"])) * float(row["median_ms"])
    return (float(row["n_runs"]) * float(row["mean_ms"]) + trials * per_trial_extra) / 1e3


def measured_as(relative: bool, imports_torch: bool, own_runs_s: float) -> str:
    if not relative:
        return "wall"
    if not imports_torch:
        return "wall (shorter than the torch import: torch not imported)"
    return "wall − torch import − its own timed runs" if own_runs_s else "wall − torch import"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, default=Path("results/cli_latency.csv"))
    args = parser.parse_args()

    convbench = [sys.executable, "-m", "convbench"]
    torch_import = statistics.median(wall([sys.executable, "-c", "import torch"]) for _ in range(args.repeats))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="convbench-cli-latency-") as tmp:
        for name, arguments, target, relative in COMMANDS:
            extra: list[str] = []
            if arguments[0] == "profile":
                extra = ["-o", str(Path(tmp) / "profile.csv")]
            wall([*convbench, *arguments, *extra])  # fills the caches; not recorded
            times, timed = [], []
            for _ in range(args.repeats):
                csv = Path(tmp) / "profile.csv"
                csv.unlink(missing_ok=True)
                times.append(wall([*convbench, *arguments, *extra]))
                timed.append(timed_runs_seconds(csv) if extra else 0.0)
            median = statistics.median(times)
            own = statistics.median(timed)
            # A command faster than the torch import cannot have imported torch (a cached count does not):
            # its own wall time is what it costs, not a negative difference.
            imports_torch = relative and median > torch_import
            above = median - (torch_import if imports_torch else 0.0) - own
            rows.append(
                {
                    "command": f"convbench {name}",
                    "median_s": median,
                    "min_s": min(times),
                    "repeats": args.repeats,
                    "torch_import_s": torch_import,
                    "timed_runs_s": own,
                    "measured_s": above,
                    "measured_as": measured_as(relative, imports_torch, own),
                    "target_s": target,
                    "met": above <= target,
                    **environment(),
                }
            )
            print(
                f"{name:48s} median {median:6.2f} s  ({rows[-1]['measured_as']}: {above:5.2f} s, "
                f"target ≤ {target} s: {'met' if above <= target else 'MISSED'})",
                flush=True,
            )
    print(f"python -c 'import torch': {torch_import:.2f} s")
    write_rows(args.output, rows, append=False, schema=False)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
