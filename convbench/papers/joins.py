"""GPU speed-ups beside a CPU reproduction, as a paper puts its GPU column beside its CPU one.

``reproduce --device cuda`` writes its own file; a CPU reproduction of the same table shows that file's speed-ups
in its GPU column. Each keeps its own interval: both were measured against their row's baseline in their own run,
and nothing is divided across the two files. A GPU speed-up is shown only where the GPU line was measured like the
CPU line in what changes a speed-up's meaning: batch size, precision and MAC convention. Where they differ, the
line gets no GPU figure and a ``gpu_note`` saying what differs, which the table prints under itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convbench.results.files import is_blank, read_rows

# What must agree between the CPU line and the GPU line for the two speed-ups to stand side by side.
MATCHED_SETTINGS = {"batch_size": "batch", "precision": "precision", "macs_convention": "convention"}


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return str(a).strip() == str(b).strip()


def _show(value: Any) -> str:
    if is_blank(value):
        return "unknown"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def settings_difference(cpu: dict[str, Any], gpu: dict[str, Any]) -> str:
    """What differs between the two lines in ``MATCHED_SETTINGS`` ("batch 64 vs 1, precision amp-fp16 vs fp32");
    empty where they agree. A setting missing on either side counts as differing: agreement must be shown."""
    parts = []
    for key, label in MATCHED_SETTINGS.items():
        ours, theirs = cpu.get(key), gpu.get(key)
        if is_blank(ours) or is_blank(theirs) or not _same(ours, theirs):
            parts.append(f"{label} {_show(theirs)} on the GPU vs {_show(ours)} here")
    return ", ".join(parts)


def join_gpu_speedups(lines: Sequence[dict[str, Any]], gpu_file: Path) -> list[str]:
    """Put the GPU speed-ups of ``gpu_file`` beside the CPU ``lines`` of the same table row (table, method) where
    batch size, precision and convention agree; elsewhere the line gets a ``gpu_note`` instead. Returns the
    notes, one line per distinct difference, for the caller to print under the table."""
    if not gpu_file.is_file():
        return []
    gpu: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_rows(gpu_file):
        if not is_blank(row.get("speedup")):
            gpu[(str(row.get("table")), str(row.get("method")))] = row  # the latest line wins
    withheld: dict[str, list[str]] = {}
    for line in lines:
        found = gpu.get((str(line.get("table")), str(line.get("method"))))
        if found is None:
            continue
        differs = settings_difference(line, found)
        if differs:
            line["gpu_note"] = f"GPU speed-up in {gpu_file} not shown: {differs}"
            withheld.setdefault(differs, []).append(str(line.get("method")))
            continue
        line.update(
            speedup_gpu=found["speedup"],
            speedup_gpu_low=found.get("speedup_low"),
            speedup_gpu_high=found.get("speedup_high"),
            gpu_source=str(gpu_file),
        )
    return [
        f"GPU speed-ups in {gpu_file} not shown for {', '.join(methods)}: {differs}"
        for differs, methods in withheld.items()
    ]
