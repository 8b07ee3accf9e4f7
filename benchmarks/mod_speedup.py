"""Does CNN-MoD deliver its theoretical speed-up? Every MoD implementation, on every CPU runtime.

For each runtime, ResNet50 and ResNet50/75/86-MoD in every implementation of ``MOD_IMPLS`` (the builder
argument ``impl``) are timed together with ``convbench.benchmark.benchmark``: independent trials, each in a
fresh process, all models and implementations interleaved within a trial, intervals from the two-level
bootstrap over trials. Per model and implementation the CSV holds everything a ``compare`` row holds (noise
flags and the timed-window signals included), plus ``impl`` and ``realised_over_theoretical``: the realised
speed-up over ResNet50 divided by the theoretical one (MAC ratio, counted in the paper's formulation, the same
for every implementation), with its interval.

    .venv/bin/python benchmarks/mod_speedup.py                       # ~15 min on 2 cores
    .venv/bin/python benchmarks/mod_speedup.py --runtimes onnxruntime --impls gather-concat index-embed
    .venv/bin/python benchmarks/mod_speedup.py --runtimes torch --device cuda -o results/mod_speedup-cuda.csv

``default_impl`` marks the implementation the family builds on that runtime and device when none is named
(``MOD_RUNTIME_IMPLS`` in convbench/models/mod.py, chosen from these measurements).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, benchmark
from convbench.models.mod import MOD_IMPLS, MOD_RUNTIME_IMPLS
from convbench.models.spec import ModelSpec
from convbench.results.files import write_rows
from convbench.timing.measure import TimingSettings

BASELINE = "resnet50"
MOD_MODELS = ("resnet50-mod", "resnet75-mod", "resnet86-mod")
TARGET = 0.95  # realised / theoretical the default implementation should reach on ONNX Runtime


class PrintProgress:
    """The benchmark's progress as one line per phase on stderr."""

    def phase(self, description: str, total: int | None) -> None:
        print(f"  {description}", file=sys.stderr, flush=True)

    def advance(self, steps: int = 1) -> None:
        pass


def run_runtime(runtime: str, impls: list[str], models: list[str], config: BenchmarkConfig) -> list[dict[str, Any]]:
    specs = [ModelSpec(BASELINE), *(ModelSpec(m, (("impl", i),)) for i in impls for m in models)]
    rows = benchmark(specs, replace(config, runtime=runtime), PrintProgress())
    default = MOD_RUNTIME_IMPLS.get((runtime, config.device))
    for row, spec in zip(rows, specs, strict=True):
        impl = dict(spec.args).get("impl", "")
        row.update(impl=impl, default_impl=impl == default, base_model=spec.source)
        theoretical = row.get("theoretical_speedup", float("nan"))
        for key, column in (
            ("speedup", "realised_over_theoretical"),
            ("speedup_low", "ratio_low"),
            ("speedup_high", "ratio_high"),
        ):
            row[column] = row.get(key, float("nan")) / theoretical
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'runtime':12s} {'model':14s} {'impl':14s} {'median ms':>10s} {'realised (95% CI)':>22s} "
        f"{'theor.':>7s} {'ratio':>6s} noisy"
    )
    for r in rows:
        mark = " *" if r["default_impl"] else ""
        print(
            f"{r['runtime']:12s} {r['base_model']:14s} {r['impl'] or '-':14s} {r['median_ms']:10.2f} "
            f"{r['speedup']:7.3f} [{r['speedup_low']:.3f}, {r['speedup_high']:.3f}] "
            f"{r['theoretical_speedup']:7.3f} {r['realised_over_theoretical']:6.3f}{mark} {r['noisy']}"
        )
    print(f"* the runtime's default implementation; target realised/theoretical >= {TARGET} on onnxruntime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino", "torch"])
    parser.add_argument("--impls", nargs="+", default=list(MOD_IMPLS), choices=list(MOD_IMPLS))
    parser.add_argument("--models", nargs="+", default=list(MOD_MODELS), choices=list(MOD_MODELS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model, implementation and trial")
    parser.add_argument("--min-time", type=float, default=1.0, help="timed seconds per model and trial (at least)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/mod_speedup.csv"))
    args = parser.parse_args()

    config = BenchmarkConfig(
        device=args.device,
        threads=args.threads,
        trials=args.trials,
        timing=TimingSettings(warmup=5, warmup_time=0.5, runs=args.runs, min_time=args.min_time),
    )
    rows: list[dict[str, Any]] = []
    for runtime in args.runtimes:
        rows += run_runtime(runtime, args.impls, args.models, config)
        write_rows(args.output, rows, append=False)  # after each runtime, so a later failure keeps these
    print_table([r for r in rows if r["impl"]])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
