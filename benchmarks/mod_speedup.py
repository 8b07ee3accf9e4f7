"""Does CNN-MoD deliver its theoretical speed-up? Every MoD implementation, ONNX Runtime and PyTorch eager, CPU.

For each runtime, ResNet50 and ResNet50/75/86-MoD in every implementation of ``MOD_IMPLS`` are prepared in
this one process and timed interleaved (all models and implementations in alternating blocks, so drift of
the shared machine hits them alike). Per model and implementation the CSV holds the median latency, the
realised speed-up over ResNet50 (median ratio, bootstrap 95% interval), the theoretical speed-up (fvcore MAC
ratio, counted on the reference implementation "gather-concat": the architecture's MACs, the same for every
implementation) and realised / theoretical. ``impl_gmacs`` is what fvcore counts for the implementation as
written (the "-embed" ones add a one-hot 1×1 convolution, about 1%).

    .venv/bin/python benchmarks/mod_speedup.py                       # ~10 min on 2 cores
    .venv/bin/python benchmarks/mod_speedup.py --runtimes onnxruntime --impls gather-concat nchwc-embed

Exports come from convbench's ONNX cache, which is keyed by model name and builder arguments, not by the
code of an implementation: after editing one, pass ``--fresh-exports``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from convbench.counting import count
from convbench.measure import TimingSettings, measure
from convbench.models.mod import DEFAULT_MOD_IMPL, MOD_IMPLS
from convbench.results import environment, load_average, write_rows
from convbench.runtimes import RuntimeOptions, get_runtime
from convbench.runtimes.base import PreparedModel
from convbench.stats import median_interval, speedup, summarize

BASELINE = "resnet50"
MOD_MODELS = ("resnet50-mod", "resnet75-mod", "resnet86-mod")
REFERENCE_IMPL = "gather-concat"
TARGET = 0.95  # realised / theoretical the default implementation should reach on ONNX Runtime


class PrintProgress:
    """The measuring loop's progress as one line per phase on stderr."""

    def phase(self, description: str, total: int | None) -> None:
        print(f"  {description}", file=sys.stderr, flush=True)

    def advance(self, steps: int = 1) -> None:
        pass


def label(model: str, impl: str) -> str:
    return f"{model} [{impl}]" if impl else model


def run_runtime(
    runtime_name: str, impls: list[str], models: list[str], threads: int, timing: TimingSettings,
    ref_macs: dict[str, int], impl_macs: dict[tuple[str, str], int],
) -> list[dict[str, Any]]:
    """Prepare the baseline and every (model, implementation) on one runtime, time them interleaved, make rows."""
    runtime = get_runtime(runtime_name, "cpu")
    keys = [(BASELINE, ""), *((m, i) for i in impls for m in models)]
    prepared: dict[str, PreparedModel] = {}
    for model, impl in keys:
        print(f"preparing {label(model, impl)} on {runtime_name}", file=sys.stderr, flush=True)
        overrides = {"impl": impl} if impl else {}
        prepared[label(model, impl)] = runtime.prepare(model, RuntimeOptions(threads=threads, overrides=overrides))
    load_before = load_average()
    measured = measure(prepared, timing, PrintProgress())
    load_after = load_average()
    env = environment()
    base = measured[label(BASELINE, "")].samples
    rows = []
    for model, impl in keys:
        m = measured[label(model, impl)]
        summary = summarize(m.samples)
        low_ms, high_ms = median_interval(m.samples)
        s = speedup(base, m.samples)
        theoretical = ref_macs[BASELINE] / ref_macs[model]
        rows.append({
            "run_id": env["timestamp"], "runtime": runtime_name, "model": model, "mod_impl": impl,
            "default_impl": impl == DEFAULT_MOD_IMPL, "baseline": BASELINE, "device": "cpu", "threads": threads,
            "batch_size": 1, "resolution": 224,
            "median_ms": summary.median_ms, "median_low_ms": low_ms, "median_high_ms": high_ms,
            "mean_ms": summary.mean_ms, "cv": summary.cv, "n_runs": summary.n,
            "speedup": s.ratio, "speedup_low": s.low, "speedup_high": s.high,
            "theoretical_speedup": theoretical, "realised_over_theoretical": s.ratio / theoretical,
            "ratio_low": s.low / theoretical, "ratio_high": s.high / theoretical,
            "gmacs": ref_macs[model] / 1e9, "impl_gmacs": impl_macs.get((model, impl), ref_macs[model]) / 1e9,
            "macs_convention": "convbench", "runs_requested": timing.runs, "min_time_s": timing.min_time,
            "block": timing.block, "load_avg_before": load_before, "load_avg_after": load_after,
            **{k: v for k, v in env.items() if k not in ("load_avg_before", "load_avg_after")},
        })
    for p in prepared.values():
        p.close()
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'runtime':12s} {'model':14s} {'impl':14s} {'median ms':>10s} {'realised (95% CI)':>22s} "
          f"{'theor.':>7s} {'ratio':>6s}")
    for r in rows:
        mark = " *" if r["default_impl"] else ""
        print(f"{r['runtime']:12s} {r['model']:14s} {r['mod_impl'] or '-':14s} {r['median_ms']:10.2f} "
              f"{r['speedup']:7.3f} [{r['speedup_low']:.3f}, {r['speedup_high']:.3f}] "
              f"{r['theoretical_speedup']:7.3f} {r['realised_over_theoretical']:6.3f}{mark}")
    print(f"* default implementation ({DEFAULT_MOD_IMPL}); target realised/theoretical >= {TARGET} on onnxruntime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "torch"], choices=["onnxruntime", "torch"])
    parser.add_argument("--impls", nargs="+", default=list(MOD_IMPLS), choices=list(MOD_IMPLS))
    parser.add_argument("--models", nargs="+", default=list(MOD_MODELS), choices=list(MOD_MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=80, help="timed runs per model and implementation (at least)")
    parser.add_argument("--min-time", type=float, default=4.0, help="timed seconds per model (at least)")
    parser.add_argument("--block", type=int, default=5, help="consecutive runs of one model per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--fresh-exports", action="store_true", help="export into a new, temporary ONNX cache")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/mod_speedup.csv"))
    args = parser.parse_args()

    timing = TimingSettings(warmup=args.warmup, warmup_time=1.0, runs=args.runs, min_time=args.min_time,
                            block=args.block).validate()
    if args.fresh_exports:
        os.environ["CONVBENCH_CACHE"] = tempfile.mkdtemp(prefix="convbench-mod-speedup-")
    print("counting MACs (fvcore)", file=sys.stderr, flush=True)
    ref_macs = {m: count(m, impl=REFERENCE_IMPL).macs for m in args.models}
    ref_macs[BASELINE] = count(BASELINE).macs
    impl_macs = {(m, i): count(m, impl=i).macs for m in args.models for i in args.impls}

    rows = []
    for runtime_name in args.runtimes:
        rows += run_runtime(runtime_name, args.impls, args.models, args.threads, timing, ref_macs, impl_macs)
        write_rows(args.output, rows, append=False)  # after each runtime, so a later failure keeps these
    print_table(rows)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
