"""Do MACs predict latency here? Every registered model, on ONNX Runtime and OpenVINO, CPU, 1 thread, batch 1.

Each model is profiled on its own (``convbench.benchmark.benchmark``: counted with convbench's convention,
exported once, then timed in independent trials), for each runtime; the rows go to
``results/macs-vs-latency-cpu-rows.csv``. ``convbench.results.analyze`` then fits latency against GMACs per runtime and
writes the fit (``results/macs-vs-latency-cpu.csv``: Spearman's ρ, the median absolute percentage error, each
model's measured / predicted latency) and the plot (``results/macs-vs-latency-cpu.png``).

    .venv/bin/python benchmarks/macs_vs_latency.py                    # ~30 min on 2 cores with a warm cache
    .venv/bin/python benchmarks/macs_vs_latency.py --models 'resnet*' --runtimes onnxruntime
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from convbench.benchmark import BenchmarkConfig, benchmark
from convbench.errors import ConvbenchError
from convbench.models import list_models
from convbench.results.analyze import analyze, plot_fit, write_fit_csv
from convbench.results.files import read_rows, write_rows
from convbench.timing.measure import TimingSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--models", default=None, help="shell-style pattern (default: the whole registry)")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--rows", type=Path, default=Path("results/macs-vs-latency-cpu-rows.csv"))
    parser.add_argument("-o", "--output", type=Path, default=Path("results/macs-vs-latency-cpu.csv"))
    args = parser.parse_args()

    models = list_models(args.models)
    rows: list[dict[str, Any]] = []
    for runtime in args.runtimes:
        config = BenchmarkConfig(
            runtime=runtime,
            threads=1,
            trials=args.trials,
            isolate="session",
            timing=TimingSettings(warmup=2, warmup_time=0.2, runs=10, min_time=0.3),
        )
        for i, model in enumerate(models, start=1):
            print(f"{runtime} {i}/{len(models)} {model}", file=sys.stderr, flush=True)
            try:
                rows += benchmark([model], config)
            except ConvbenchError as exc:  # recorded, so the file says which models could not run and why
                rows.append({"model": model, "runtime": runtime, "device": "cpu", "error": str(exc)})
            write_rows(args.rows, rows, append=False)
    results = analyze([args.rows])
    write_fit_csv(results, args.output)
    plot_fit(results, read_rows(args.rows), args.output.with_suffix(".png"))
    for r in results:
        worst = ", ".join(f"{w.model} {w.ratio:.2f}×" for w in r.worst[:3])
        print(f"{r.label}: Spearman {r.spearman:.3f}, MdAPE {r.mdape:.1f}% over {r.models} models; worst: {worst}")
    print(f"wrote {args.rows}, {args.output} and {args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
