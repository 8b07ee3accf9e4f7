"""Which thread settings keep interleaved multi-threaded models from disturbing each other?

convbench times models interleaved in one process. ONNX Runtime gives each session its own intra-op workers,
and workers that spin after their session's run take the cores the next model's workers need. This runs

    convbench compare resnet18 resnet50 --device cpu --isolate session --trials 3 --runs 20 [setting]

at the default thread count (every available core) for each runtime and setting, the settings interleaved and the
whole set repeated. One reference setting runs at one thread: no worker threads at all, so the noise it shows is
the machine's own (other tenants, a hypervisor), which no thread setting can remove. It records per run: the
median CV of the two models (their samples over all trials), the trials flagged noisy, the speed-up of ResNet-50
over ResNet-18 with its interval, and how busy the machine was (other processes' CPU use during the timed runs,
the load average before). It prints per setting how far the speed-up moved between repeats.

    .venv/bin/python benchmarks/thread_defaults.py --repeats 2 -o results/thread-defaults.csv
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from convbench.results.files import environment, write_rows

MODELS = ("resnet18", "resnet50")
# (runtime, setting name, extra compare options)
SETTINGS: list[tuple[str, str, list[str]]] = [
    # Every ONNX Runtime setting names both spinning flags, so a change of default does not change what it runs.
    ("onnxruntime", "session pools, spinning", ["--ort-spinning", "--no-ort-spin-stop"]),
    ("onnxruntime", "session pools, no spinning", ["--no-ort-spinning"]),
    ("onnxruntime", "session pools, spinning stops per run", ["--ort-spinning", "--ort-spin-stop"]),
    ("onnxruntime", "one thread (no workers)", ["--threads", "1"]),
    ("onnxruntime", "global pool", ["--ort-thread-pool", "global"]),
    ("openvino", "default", []),
    ("torch", "default", []),
]


def noisy_trials(reason: Any, trials: int) -> int:
    """Trials a row's noise reason names: "trial 3: ..." (one line per trial) or "4/10 trials: ..." (per signal)."""
    text = "" if not isinstance(reason, str) else reason
    named = {int(k) for k in re.findall(r"\btrial (\d+):", text)}
    counted = [int(k) for k in re.findall(r"\b(\d+)/\d+ trials?:", text)]
    return min(trials, max([len(named), *counted]))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per runtime and setting over all its runs, in the order first measured: what decides a default
    is how far the speed-up moves between runs (``spread``: max / min - 1) and how noisy the runs were."""
    lines = []
    for (runtime, name), group in rows.groupby(["runtime", "setting"], sort=False):
        lines.append(
            {
                "runtime": runtime,
                "setting": name,
                "runs": len(group),
                "spread": group["speedup"].max() / group["speedup"].min() - 1,
                "speedup_min": group["speedup"].min(),
                "speedup_max": group["speedup"].max(),
                "median_cv": group["median_cv"].median(),
                "noisy_trials": int(group["noisy_trials"].sum()),
                "trials_timed": int(group["trials_timed"].sum()),
                "other_cpu_cores_max": group["other_cpu_cores_max"].max(),
            }
        )
    return pd.DataFrame(lines)


def one_run(runtime: str, extra: list[str], trials: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="convbench-threads-") as tmp:
        out = Path(tmp) / "compare.csv"
        command = [sys.executable, "-m", "convbench", "compare", *MODELS, "--device", "cpu", "--runtime", runtime]
        command += ["--isolate", "session", "--trials", str(trials), "--runs", str(runs), "-o", str(out), *extra]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"compare failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        rows = pd.read_csv(out)
    candidate = rows[rows["model"] == MODELS[1]].iloc[0]
    return {
        "median_cv": float(rows["cv"].median()),
        "noisy_trials": int(sum(noisy_trials(r, trials) for r in rows["noisy_reason"])),
        "trials_timed": trials * len(rows),
        "speedup": float(candidate["speedup"]),
        "speedup_low": float(candidate["speedup_low"]),
        "speedup_high": float(candidate["speedup_high"]),
        "threads": int(candidate["threads"]),
        "other_cpu_cores_max": float(rows["other_cpu_cores"].max()),
        "load_avg_before": load_before,
        "wall_s": wall,
        # What actually ran, as the rows record it.
        "ort_workers_spin": candidate.get("ort_workers_spin", ""),
        "ort_spin_stop": candidate.get("ort_spin_stop", ""),
        "ort_thread_pool": candidate.get("ort_thread_pool", ""),
        "ov_num_streams": candidate.get("ov_num_streams", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="how many times to run every setting")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runtimes", default="onnxruntime,openvino,torch", help="comma-separated")
    parser.add_argument("--settings", default="", help="setting names to run, separated by semicolons (default: all)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/thread-defaults.csv"))
    parser.add_argument("--append", action="store_true", help="keep the rows already in the output file")
    parser.add_argument("--label", default="", help="what this batch of runs is (e.g. quiet, busy machine)")
    args = parser.parse_args()
    wanted = set(args.runtimes.split(","))
    names = {n.strip() for n in args.settings.split(";") if n.strip()}
    unknown = names - {s[1] for s in SETTINGS}
    if unknown:
        raise SystemExit(f"unknown setting(s) {sorted(unknown)}; choose from {sorted({s[1] for s in SETTINGS})}")
    settings = [s for s in SETTINGS if s[0] in wanted and (not names or s[1] in names)]
    if not settings or args.repeats < 1:
        raise SystemExit("nothing to run: check --runtimes and --repeats")
    rows = []
    env = environment()
    for repeat in range(1, args.repeats + 1):
        for runtime, name, extra in settings:
            result = one_run(runtime, extra, args.trials, args.runs)
            rows.append(
                {"label": args.label, "runtime": runtime, "setting": name, "options": " ".join(extra), "repeat": repeat}
                | result
            )
            print(
                f"{runtime:12s} {name:38s} repeat {repeat}: median CV {result['median_cv']:.1%}, "
                f"{result['noisy_trials']}/{result['trials_timed']} trials noisy, speed-up {result['speedup']:.3f} "
                f"({result['speedup_low']:.3f}–{result['speedup_high']:.3f}); others used up to "
                f"{result['other_cpu_cores_max']:.2f} cores, load {result['load_avg_before']:.1f}",
                flush=True,
            )
    command = f"convbench compare {' '.join(MODELS)} --device cpu --isolate session --trials {args.trials} "
    command += f"--runs {args.runs}"
    rows = [{"model": MODELS[1], **r, "command": command, **env} for r in rows]
    if args.append and args.output.exists():  # files of this script's own layout: plain concatenation
        rows = pd.read_csv(args.output).to_dict("records") + rows
    write_rows(args.output, rows, append=False, schema=False)
    for _, line in summarise(pd.DataFrame(rows)).iterrows():
        print(
            f"{line['runtime']:12s} {line['setting']:38s} {line['runs']} runs: speed-up spread {line['spread']:.1%}, "
            f"median CV {line['median_cv']:.1%}, noisy trials {line['noisy_trials']}/{line['trials_timed']}"
        )
    print(f"wrote {len(rows)} rows to {args.output}")


if __name__ == "__main__":
    main()
