"""How much does convbench's measuring harness add to what it measures?

Times the same ONNX Runtime session two ways, interleaved round by round: convbench's measuring loop
(``convbench.measure.measure`` driving ``OnnxRuntimeModel.timed_run``, with its memory and noise-window reads),
and a bare loop of ``session.run`` calls timed as a whole (one clock read per block, nothing else).

One definition of the overhead, used in the CSV and the README: ``overhead_ratio`` is the median over rounds of
(convbench's time per inference / the bare loop's time per inference) in the same round; ``ratio_p10`` and
``ratio_p90`` are the 10th and 90th percentiles of those per-round ratios. The target is a median of at most
1.02; the percentiles say how far single rounds stray on a shared machine.

    .venv/bin/python benchmarks/harness_overhead.py --model resnet18 --rounds 30 -o results/harness_overhead.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from convbench.export import export_onnx
from convbench.results.files import environment, write_rows
from convbench.runtimes.onnxruntime import OnnxRuntimeModel
from convbench.timing.measure import TimingSettings, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=20, help="inferences per round and method")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/harness_overhead.csv"))
    args = parser.parse_args()

    model = OnnxRuntimeModel(export_onnx(args.model), args.threads)
    session, feeds = model.session, model.feeds
    for _ in range(20):  # warm-up for both methods: they share the session
        session.run(None, feeds)
    timing = TimingSettings(warmup=0, warmup_time=0, runs=args.block, min_time=0, block=args.block)
    bare, harness = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.block):
            session.run(None, feeds)
        bare.append((time.perf_counter() - start) / args.block)
        start = time.perf_counter()
        measure({args.model: model}, timing)  # first run + block of timed runs, like a real measurement
        harness.append((time.perf_counter() - start) / (args.block + 1))
    ratios = np.asarray(harness) / np.asarray(bare)
    row = {
        "model": args.model,
        "threads": args.threads,
        "rounds": args.rounds,
        "block": args.block,
        "bare_ms": float(np.median(bare) * 1e3),
        "harness_ms": float(np.median(harness) * 1e3),
        "overhead_ratio": float(np.median(ratios)),
        "ratio_p10": float(np.percentile(ratios, 10)),
        "ratio_p90": float(np.percentile(ratios, 90)),
        "target": 1.02,
        **environment(),
    }
    write_rows(args.output, [row], append=False)
    print(
        f"bare {row['bare_ms']:.3f} ms, convbench {row['harness_ms']:.3f} ms per inference: "
        f"ratio {row['overhead_ratio']:.4f} (p10 {row['ratio_p10']:.4f}, p90 {row['ratio_p90']:.4f}); "
        f"wrote {args.output}"
    )


if __name__ == "__main__":
    main()
