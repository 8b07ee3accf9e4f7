"""Print the README's result tables from the committed CSVs, so every number there is one of theirs.

    .venv/bin/python benchmarks/readme_tables.py > /tmp/tables.md     # then paste the tables into README.md

Each table names its file; each row shows its noise flag (⚠ with the reason's kind, or "quiet").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path("results")


def num(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "—"
    return format(float(value), spec)


def ci(row: pd.Series, key: str, low: str, high: str, spec: str = ".3f", suffix: str = "") -> str:
    return f"{num(row[key], spec)}{suffix} ({num(row[low], spec)}–{num(row[high], spec)})"


def flag(row: pd.Series) -> str:
    if not bool(row.get("noisy")) or str(row.get("noisy")).lower() == "false":
        return "quiet"
    reason = str(row.get("noisy_reason", ""))
    kinds = []
    for word, label in (
        ("CV", "CV"),
        ("drift", "drift"),
        ("other processes", "busy machine"),
        ("stole", "steal"),
        ("descheduled", "descheduled"),
        ("context switches", "switches"),
    ):
        if word in reason and label not in kinds:
            kinds.append(label)
    return "⚠ " + ", ".join(kinds)


def runs_range(d: pd.DataFrame) -> str:
    low, high = int(d["n_runs"].min()), int(d["n_runs"].max())
    return str(low) if low == high else f"{low}–{high}"


def compare_table(path: Path, extra: str | None = None) -> str:
    d = pd.read_csv(path)
    lines = [
        f"`{path}` ({d['runtime'].iloc[0]}, {int(d['threads'].iloc[0])} thread, {int(d['trials'].iloc[0])} "
        f"trials × ≥{int(d['timing_runs'].iloc[0])} runs, {runs_range(d)} runs per model in all)",
        "",
        "| model | GMACs | params (M) | median ms (95% CI) | speed-up (95% CI) | over trials | MAC speed-up | "
        "realised ÷ MAC | verdict | noise |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in d.iterrows():
        base = r["verdict"] == "baseline"
        speed = "1" if base else ci(r, "speedup", "speedup_low", "speedup_high", suffix="×")
        spread = "—" if base else f"{num(r['speedup_trial_min'], '.3f')}–{num(r['speedup_trial_max'], '.3f')}"
        ratio = "—" if base else num(r["speedup"] / r["theoretical_speedup"], ".3f")
        lines.append(
            f"| {r['model']} | {num(r['gmacs'], '.3f')} | {num(r['params_m'])} | "
            f"{ci(r, 'median_ms', 'median_low_ms', 'median_high_ms', '.2f')} | {speed} | {spread} | "
            f"{'1' if base else num(r['theoretical_speedup'], '.3f') + '×'} | {ratio} | {r['verdict']} | "
            f"{flag(r)} |"
        )
    return "\n".join(lines)


def main() -> None:
    for name in (
        "mod-onnxruntime-cpu",
        "mod-openvino-cpu",
        "mod-torch-cpu",
        "kw-resnet18-onnxruntime-cpu",
        "micronet-onnxruntime-cpu",
        "compconv-resnet50-onnxruntime-cpu",
    ):
        path = RESULTS / f"{name}.csv"
        if path.exists():
            print(f"### {name}\n\n{compare_table(path)}\n")
    path = RESULTS / "mod_speedup.csv"
    if path.exists():
        d = pd.read_csv(path)
        print(f"### mod_speedup\n\n`{path}`: realised ÷ MAC speed-up over ResNet50 (95% CI)\n")
        print("| runtime | impl | R50-MoD | R75-MoD | R86-MoD | noise |\n|---|---|---|---|---|---|")
        for (runtime, impl), g in d[d["impl"].notna()].groupby(["runtime", "impl"], sort=False):
            cells = []
            for model in ("resnet50-mod", "resnet75-mod", "resnet86-mod"):
                r = g[g["base_model"] == model]
                cells.append("—" if r.empty else ci(r.iloc[0], "realised_over_theoretical", "ratio_low", "ratio_high"))
            flags = sorted({flag(r) for _, r in g.iterrows()})
            print(f"| {runtime} | {impl} | {' | '.join(cells)} | {'; '.join(flags)} |")
        print()
    path = RESULTS / "thread-defaults.csv"
    if path.exists():
        from thread_defaults import summarise  # this folder is on sys.path when run as a script

        print(
            f"### thread-defaults\n\n`{path}`: ResNet-50 over ResNet-18 at the default thread count "
            "(the reference setting: one thread), per setting\n"
        )
        print(
            "| runtime | setting | runs | speed-up (min–max) | spread | median CV | trials flagged noisy "
            "| other processes (max cores) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for _, r in summarise(pd.read_csv(path)).iterrows():
            print(
                f"| {r['runtime']} | {r['setting']} | {r['runs']} | {num(r['speedup_min'], '.3f')}–"
                f"{num(r['speedup_max'], '.3f')} | {num(r['spread'], '.1%')} | {num(r['median_cv'], '.1%')} | "
                f"{'⚠ ' if r['noisy_trials'] else ''}{r['noisy_trials']} of {r['trials_timed']} | "
                f"{num(r['other_cpu_cores_max'])} |"
            )
        print()
    for name in ("reproducibility", "harness_overhead", "cli_latency", "macs-vs-latency-cpu"):
        path = RESULTS / f"{name}.csv"
        if path.exists():
            print(f"### {name}\n\n```\n{pd.read_csv(path).to_string(max_cols=16, max_colwidth=40)}\n```\n")


if __name__ == "__main__":
    main()
