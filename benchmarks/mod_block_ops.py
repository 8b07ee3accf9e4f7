"""How many operator calls does one CNN-MoD block make, per implementation, against the block it replaces?

On a GPU every operator call is at least one kernel launch, and at batch 1 the launches, not the arithmetic, set
the time of a small block. This counts them on the CPU with torch.profiler: one forward pass of one MoD block of
ResNet75-MoD (a stage-3 block, 1024 channels, k = 16, 14×14 maps), per implementation of ``MOD_IMPLS``, beside the
standard Bottleneck that ResNet50 has in the same place; and one forward pass of each whole model (at 64×64
pixels: which operators run does not depend on the map size, and 224×224 at batch 64 takes minutes on a CPU).

Counted are the ATen operators called from Python (the top of the profiler's tree; an operator's own internal
calls are not counted again):
``ops`` are those that compute or copy (one or more kernels each on a GPU), ``views`` those that only re-describe
a tensor (reshape, unsqueeze, slice, expand, ...: no kernel). ``by_op`` lists the computing ones by name.
Rows are appended under ``--label``; rows with the same label are replaced, so a "before" and an "after" run of a
change sit side by side.

    .venv/bin/python benchmarks/mod_block_ops.py --label after -o results/mod-block-ops.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from convbench.models.mod import MOD_IMPLS, MoDBlock
from convbench.models.spec import ModelSpec, resolve_model

MOD_MODEL = "resnet75-mod"
BASELINE = "resnet50"
MODEL_RESOLUTION = 64
# Operators that only describe a view of their input (or allocate without computing): no kernel on any device.
VIEW_OPS = {
    "aten::alias",
    "aten::as_strided",
    "aten::detach",
    "aten::expand",
    "aten::flatten",
    "aten::narrow",
    "aten::permute",
    "aten::reshape",
    "aten::select",
    "aten::slice",
    "aten::squeeze",
    "aten::t",
    "aten::transpose",
    "aten::unsqueeze",
    "aten::view",
    "aten::_reshape_alias",
    "aten::_unsafe_view",
    "aten::empty",
    "aten::empty_strided",
}


def top_level_ops(module: nn.Module, x: torch.Tensor) -> Counter[str]:
    """ATen operators called from Python during one forward pass of ``module`` on ``x`` (after one warm-up)."""
    with torch.inference_mode():
        module(x.clone())
        x = x.clone()  # an implementation that fuses in place must get a tensor of its own, as inside the model
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            module(x)
    calls: Counter[str] = Counter()
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            calls[event.name] += 1
    return calls


def row(label: str, model: str, impl: str, batch: int, scope: str, calls: Counter[str]) -> dict[str, Any]:
    computing = {name: n for name, n in sorted(calls.items()) if name not in VIEW_OPS}
    return {
        "label": label,
        "model": model,
        "impl": impl,
        "batch_size": batch,
        "scope": scope,
        "ops": sum(computing.values()),
        "views": sum(n for name, n in calls.items() if name in VIEW_OPS),
        "by_op": json.dumps({name.removeprefix("aten::"): n for name, n in computing.items()}),
    }


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "convbench"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="names this run's rows (e.g. before, after)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--impls", nargs="+", default=list(MOD_IMPLS), choices=list(MOD_IMPLS))
    parser.add_argument("-o", "--output", type=Path, default=Path("results/mod-block-ops.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    baseline = resolve_model(BASELINE).build(calibrate=False)
    replaced = baseline.layer3[1]  # the standard block that ResNet75-MoD's first stage-3 MoD block stands in for
    rows = []
    for batch in args.batch:
        block_input = torch.randn(batch, 1024, 14, 14)
        rows.append(row(args.label, BASELINE, "", batch, "block", top_level_ops(replaced, block_input)))
        model_input = torch.randn(batch, 3, MODEL_RESOLUTION, MODEL_RESOLUTION)
        rows.append(row(args.label, BASELINE, "", batch, "model", top_level_ops(baseline, model_input)))
        for impl in args.impls:
            model = resolve_model(ModelSpec(MOD_MODEL, (("impl", impl),))).build(calibrate=False)
            block = model.layer3[1]
            assert isinstance(block, MoDBlock)
            rows.append(row(args.label, MOD_MODEL, impl, batch, "block", top_level_ops(block, block_input)))
            rows.append(row(args.label, MOD_MODEL, impl, batch, "model", top_level_ops(model, model_input)))
    for r in rows:
        r.update(git_commit=git_commit(), torch=torch.__version__)
        print(
            f"{r['label']:8s} {r['model']:13s} {r['impl'] or '-':14s} b{r['batch_size']:<3d} {r['scope']:6s} "
            f"ops {r['ops']:4d}  views {r['views']:4d}"
        )
    table = pd.DataFrame(rows)
    if args.output.exists():
        old = pd.read_csv(args.output, keep_default_na=False)
        table = pd.concat([old[old["label"] != args.label], table], ignore_index=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
