"""Top-1 for a model: measured by ``convbench evaluate`` where a result file holds it, else the published figure.

Every consumer (``reproduce``, ``tables``, ``plot``) says which one it shows: the ``top1_source`` column is
``measured`` or ``published``, and column headers and legends carry the same word.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from convbench.results.files import is_blank

EVALUATE_FILE = Path("results/evaluate.csv")


@dataclass(frozen=True)
class Accuracy:
    top1: float
    source: str  # "measured" or "published"
    where: str  # the result file, or the published table's key


def measured_top1(paths: Iterable[Path] | None = None) -> dict[str, Accuracy]:
    """The latest measured top-1 per model (row ``model`` label) in evaluate result files."""
    from convbench.errors import ConvbenchError
    from convbench.results.files import read_rows

    files = list(paths) if paths is not None else ([EVALUATE_FILE] if EVALUATE_FILE.is_file() else [])
    found: dict[str, Accuracy] = {}
    for path in files:
        try:
            rows = read_rows(path)
        except ConvbenchError:
            continue
        for row in rows:  # later rows win: result files are appended to
            if not is_blank(row.get("top1_measured")) and not is_blank(row.get("model")):
                found[str(row["model"])] = Accuracy(float(row["top1_measured"]), "measured", str(path))
    return found


def top1_for(
    models: Sequence[str], table: str | None = None, measured_files: Iterable[Path] | None = None
) -> dict[str, Accuracy]:
    """Measured top-1 where a result file holds one, else the published one (from ``table`` or the best match)."""
    from convbench.papers.tables import published_top1

    measured = measured_top1(measured_files)
    published = published_top1([m for m in models if m not in measured], table)
    out = {m: measured[m] for m in models if m in measured}
    out.update({m: Accuracy(top1, "published", key) for m, (top1, key) in published.items()})
    return out
