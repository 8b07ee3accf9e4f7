"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``.

A builder is a plain function returning an ``nn.Module``; the decorator records what a benchmark needs to
know about the model without building it (family, paper, default input size, number of classes).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from convbench.errors import UserInputError
from convbench.papers import PAPERS

Builder = Callable[..., nn.Module]

DEFAULT_SEED = 0


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model without building it."""

    name: str
    family: str
    paper: str
    builder: Builder = field(repr=False)
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    description: str = ""
    # Models whose ONNX graph bakes in the batch size (e.g. batch folded into conv groups) say so here.
    static_batch: bool = False
    # Models whose output is random by design (the MoD random-selection control) cannot be checked for
    # ONNX parity value by value; only shape and finiteness are checked.
    stochastic: bool = False

    @property
    def resolution(self) -> int:
        return self.input_size[-1]

    @property
    def citation(self) -> str:
        return PAPERS[self.paper].citation


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    num_classes: int = 1000,
    description: str = "",
    static_batch: bool = False,
    stochastic: bool = False,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name`` (lowercase, hyphenated)."""
    if name != name.lower() or " " in name or "_" in name:
        raise ValueError(f"model names are lowercase with hyphens: {name!r}")
    if paper not in PAPERS:
        raise ValueError(f"unknown paper key {paper!r} for {name!r}; known: {sorted(PAPERS)}")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(
            name=name,
            family=family,
            paper=paper,
            builder=builder,
            input_size=input_size,
            num_classes=num_classes,
            description=description or (builder.__doc__ or "").strip().splitlines()[0],
            static_batch=static_batch,
            stochastic=stochastic,
        )
        return builder

    return decorator


def _ensure_loaded() -> None:
    # Importing the package registers every family; done lazily so `registry` has no import cycle.
    import convbench.models  # noqa: F401


def _natural_key(name: str) -> list[object]:
    # resnet18 < resnet50 < resnet101, as people read model names.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell-style wildcard (``resnet*-mod``)."""
    _ensure_loaded()
    names = sorted(_REGISTRY, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern.lower())]
    return names


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``, or a UserInputError that suggests the closest names."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; run `convbench list` to see them"
        raise UserInputError(f"unknown model {name!r}{hint}") from None


def create_model(name: str, *, seed: int = DEFAULT_SEED, **overrides: Any) -> nn.Module:
    """Build ``name`` in eval mode with weights drawn from a fixed seed (no pretrained weights exist here).

    ``overrides`` go to the builder (for example ``num_classes=10`` or a family-specific switch).
    """
    entry = get_entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = entry.builder(**overrides)
    return model.eval()
