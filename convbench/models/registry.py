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


CALIBRATION_BATCH = 2


def calibrate_batchnorm(model: nn.Module, input_size: tuple[int, int, int]) -> None:
    """Set every BatchNorm's running statistics from one forward pass on random data.

    A trained network's BatchNorm layers hold the statistics of their inputs, so its activations keep a unit
    scale through any depth. Randomly initialised layers hold mean 0 / variance 1 instead, and in eval mode
    deep residual networks then grow activations without bound (ResNet152-MoD reaches logits near 1e4, where
    the MoD selector's sigmoid saturates to exact ties and top-k becomes arbitrary), while others vanish
    towards denormal numbers that slow CPUs down. One data-free calibration pass (a cumulative average over
    a random batch of two at the model's input size) gives activations the scale of a trained network. The
    input size matters: statistics gathered on smaller maps do not fit (ODConv's spatial attention, for one,
    then blows its last stage up). Latency
    does not depend on the values, but this keeps timings free of denormal slow paths and ONNX parity
    checks meaningful.
    """
    # Only feature-map BatchNorms: each channel's statistics then come from batch × H × W values. The
    # BatchNorm1d of attention branches (KernelWarehouse, ODConv) would see only the batch and keep unstable
    # variances, so they keep their initial statistics.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the pass's own statistics
    # Everything else behaves as at inference (attention BatchNorm1d, dropout), so the statistics gathered
    # are those that inference will meet.
    model.eval()
    for m in norms:
        m.train()
    with torch.no_grad():
        model(torch.randn(CALIBRATION_BATCH, *input_size))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def create_model(name: str, *, seed: int = DEFAULT_SEED, calibrate: bool = True, **overrides: Any) -> nn.Module:
    """Build ``name`` in eval mode with weights drawn from a fixed seed (no pretrained weights exist here).

    ``overrides`` go to the builder (for example ``num_classes=10`` or a family-specific switch). With
    ``calibrate`` the BatchNorm statistics are set from random data (see ``calibrate_batchnorm``).
    """
    entry = get_entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = entry.builder(**overrides)
        if calibrate:
            calibrate_batchnorm(model, entry.input_size)
    return model.eval()
