"""Do convbench's intervals hold on a rerun? The reference comparison, K times, each in a fresh process.

Runs ``convbench compare resnet50 resnet75-mod --device cpu --threads 1`` (default settings otherwise) K times,
one after another, each as a new process, and does the same at the default thread count (every available core,
where ONNX Runtime's worker threads of the two interleaved models could disturb each other) with
``--threads 1,default``. For each thread setting it reports for the speed-up of ResNet75-MoD over ResNet50:

- coverage: the fraction of ordered pairs (i, j), i ≠ j, for which run i's 95% interval contains run j's
  estimate. For a correct 95% interval and two independent estimates of equal variance it is about 0.83
  (P(|Z| < 1.96/√2)); an interval that only sees the spread inside one session covers far less;
- spread: max / min of the K estimates, minus 1;
- wall time per run (the whole command, process start included).

    .venv/bin/python benchmarks/reproducibility.py --runs-of 8 --label after -o results/reproducibility.csv
    .venv/bin/python benchmarks/reproducibility.py --threads 1,default --label after -o results/reproducibility.csv
    # a quick check of the script itself (a few seconds of timing, not a measurement):
    .venv/bin/python benchmarks/reproducibility.py --runs-of 2 -o /tmp/repro.csv -- --trials 2 --runs 3 --min-time 0
    # the code before a change, from a checkout of it (its own package on PYTHONPATH):
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/reproducibility.py --label before --append

Rows: one per run (kind "run": estimate, interval, wall time) and one summary (kind "summary") per thread
setting, each labelled and with ``threads_setting`` ("1" or "default") and ``threads`` (the count that ran).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from convbench.results.files import environment, write_rows

BASELINE, CANDIDATE = "resnet50", "resnet75-mod"
TARGET_COVERAGE, TARGET_SPREAD, TARGET_WALL_S = 0.80, 0.02, 90.0


def thread_settings(text: str) -> list[str]:
    """``--threads``: a comma-separated list of thread counts and ``default`` (every available core)."""
    settings = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in settings if t != "default" and not (t.isdigit() and int(t) >= 1)]
    if not settings or bad:
        raise argparse.ArgumentTypeError(f"expected thread counts or 'default', comma-separated; got {text!r}")
    return list(dict.fromkeys(settings))


def threads_option(setting: str) -> list[str]:
    """The compare options for a thread setting: none for ``default``, so compare picks its own default."""
    return [] if setting == "default" else ["--threads", setting]


def one_run(extra: list[str], threads: str = "1") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="convbench-repro-") as tmp:
        out = Path(tmp) / "compare.csv"
        command = [
            sys.executable,
            "-m",
            "convbench",
            "compare",
            BASELINE,
            CANDIDATE,
            "--device",
            "cpu",
            *threads_option(threads),
            "-o",
            str(out),
            *extra,
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"compare failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        rows = pd.read_csv(out)
    row = rows[rows["model"] == CANDIDATE].iloc[0]
    return {
        "speedup": float(row["speedup"]),
        "speedup_low": float(row["speedup_low"]),
        "speedup_high": float(row["speedup_high"]),
        "verdict": row["verdict"],
        "wall_s": wall,
        "noisy": bool(row.get("noisy", False)),
        "noisy_reason": row.get("noisy_reason", ""),
        "trials": int(row["trials"]) if "trials" in row and row["trials"] == row["trials"] else 1,
        "threads_setting": threads,
        "threads": int(row["threads"]),
        "git_commit": row.get("git_commit", ""),
    }


def coverage(runs: list[dict[str, Any]]) -> float:
    pairs = list(itertools.permutations(range(len(runs)), 2))
    hits = sum(runs[i]["speedup_low"] <= runs[j]["speedup"] <= runs[i]["speedup_high"] for i, j in pairs)
    return hits / len(pairs)


def summarize(runs: list[dict[str, Any]], label: str, threads: str, extra: list[str]) -> dict[str, Any]:
    """The summary row of one thread setting's runs."""
    estimates = [r["speedup"] for r in runs]
    command = f"convbench compare {BASELINE} {CANDIDATE} --device cpu {' '.join(threads_option(threads))}"
    return {
        "kind": "summary",
        "label": label,
        "threads_setting": threads,
        "threads": runs[0]["threads"],
        "runs": len(runs),
        "coverage": coverage(runs),
        "spread": max(estimates) / min(estimates) - 1,
        "speedup_min": min(estimates),
        "speedup_max": max(estimates),
        "wall_s_mean": sum(r["wall_s"] for r in runs) / len(runs),
        "wall_s_max": max(r["wall_s"] for r in runs),
        "noisy_runs": sum(r["noisy"] for r in runs),
        "target_coverage": TARGET_COVERAGE,
        "target_spread": TARGET_SPREAD,
        "target_wall_s": TARGET_WALL_S,
        "command": f"{command} {' '.join(extra)}".strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-of", type=int, default=8, help="K: how many times to run the comparison")
    parser.add_argument(
        "--threads",
        type=thread_settings,
        default=["1"],
        help="thread settings to measure, comma-separated: counts and 'default' (every core), e.g. 1,default",
    )
    parser.add_argument("--label", default="after", help="what code this is (before / after a change)")
    parser.add_argument("--append", action="store_true", help="keep the rows already in the output file")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/reproducibility.csv"))
    parser.add_argument("extra", nargs="*", help="extra compare options, after --")
    args = parser.parse_args()
    if args.runs_of < 2:
        raise SystemExit("--runs-of must be at least 2: coverage compares runs with each other")
    if any(t.startswith("--threads") for t in args.extra):
        raise SystemExit("give thread counts with this script's --threads, not after --")

    env = environment()
    rows: list[dict[str, Any]] = []
    summaries = []
    for threads in args.threads:
        one_run(args.extra, threads)  # not recorded: exports, the registry index and the peak cache are made here
        runs = []
        for k in range(1, args.runs_of + 1):
            run = one_run(args.extra, threads)
            runs.append(run)
            print(
                f"threads {threads}, run {k}/{args.runs_of}: {run['speedup']:.3f} ({run['speedup_low']:.3f}–"
                f"{run['speedup_high']:.3f}) {run['wall_s']:.0f} s"
                f"{' noisy: ' + str(run['noisy_reason']) if run['noisy'] else ''}",
                flush=True,
            )
        summary = summarize(runs, args.label, threads, args.extra)
        summaries.append(summary)
        rows += [
            {"kind": "run", "label": args.label, "run": k, "model": CANDIDATE, **r, **env}
            for k, r in enumerate(runs, start=1)
        ]
        rows.append({**summary, "model": CANDIDATE, **env, "git_commit": runs[0]["git_commit"] or env["git_commit"]})
    write_rows(args.output, rows, append=args.append and args.output.exists(), schema=False)
    for summary in summaries:
        print(
            f"{args.label}, threads {summary['threads_setting']} ({summary['threads']}): coverage "
            f"{summary['coverage']:.2f} (target ≥ {TARGET_COVERAGE}), spread {summary['spread']:.1%} (target ≤ "
            f"{TARGET_SPREAD:.0%}), wall {summary['wall_s_mean']:.0f} s per run (target ≤ {TARGET_WALL_S:.0f} s)"
        )
    print(f"wrote {len(rows)} rows to {args.output}")


if __name__ == "__main__":
    main()
