"""MACs and parameters with fvcore, with the counting convention stated and nothing swallowed.

Convention (fvcore's, and the one the papers' GMAC columns use): one fused multiply-add counts as one MAC.
Counts are taken at batch size 1 on a random input of the model's input size, in eval mode.

fvcore counts convolutions, linear layers and matrix products, BatchNorm (2 per element in eval) and
adaptive average pooling. Element-wise ops (add, mul, sigmoid, ...), max-pooling, top-k and gathers are
counted as zero; fvcore reports those it does not know as *unsupported*, and ``CountResult.uncounted``
keeps that list (operator -> number of calls) so users see what the total leaves out.

For CNN-MoD this reads about 0.3-0.6% below the paper's GMACs, which also include ReLU and pooling
elements in the way ptflops counts them (see the notes, §2.3): a check within 1.5% is what is meaningful.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# fvcore imports torch.jit.script, which newer torch marks deprecated; the warning says nothing to users.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
from fvcore.nn import FlopCountAnalysis, parameter_count  # noqa: E402
from fvcore.nn.jit_handles import get_shape  # noqa: E402
from torch import nn  # noqa: E402

from convbench.errors import UserInputError  # noqa: E402
from convbench.models.registry import create_model, get_entry  # noqa: E402

Handle = Callable[[list[Any], list[Any]], Any]



def _output_elements(inputs: list[Any], outputs: list[Any]) -> int:
    """One operation per output element (activations)."""
    return int(np.prod(get_shape(outputs[0]) or [1]))


def _input_elements(inputs: list[Any], outputs: list[Any]) -> int:
    """One operation per input element (pooling, as ptflops counts it)."""
    return int(np.prod(get_shape(inputs[0]) or [1]))


@dataclass(frozen=True)
class Convention:
    """A counting rule: fvcore's default handles, overridden by ``handles`` (``None`` skips an op)."""

    name: str
    description: str
    handles: dict[str, Handle | None] = field(default_factory=dict)


_ACTIVATIONS = ("relu", "relu_", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "hardswish", "hardswish_",
                "hardsigmoid", "hardsigmoid_", "silu", "silu_", "gelu")
CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "fvcore",
            "fvcore defaults: 1 fused multiply-add = 1 MAC; convolutions, linear layers and matrix products; "
            "BatchNorm 2/element; adaptive average pooling 1/input element; element-wise ops not counted",
        ),
        Convention(
            "mac+",
            "fvcore defaults plus activations (1/output element) and max-pooling (1/input element), the "
            "way ptflops' module backend counts; this is how CNN-MoD's GMAC columns read (notes §2.3)",
            {
                **{f"aten::{op}": _output_elements for op in _ACTIVATIONS},
                "aten::max_pool2d": _input_elements,
            },
        ),
    )
}
DEFAULT_CONVENTION = "fvcore"


@dataclass
class CountResult:
    """MACs and parameters of one model at one input shape (batch 1 unless stated)."""

    macs: int
    params: int
    input_shape: tuple[int, ...]
    by_operator: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    params_by_module: dict[str, int] = field(default_factory=dict)
    convention: str = DEFAULT_CONVENTION

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise UserInputError(f"unknown counting convention {name!r}; choose from {', '.join(CONVENTIONS)}") from None


def count_module(
    model: nn.Module, input_shape: tuple[int, ...], convention: str = DEFAULT_CONVENTION
) -> CountResult:
    """Count MACs (fvcore ``FlopCountAnalysis``) and parameters of ``model`` on a random input."""
    rule = get_convention(convention)
    model = model.eval()
    example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    analysis = FlopCountAnalysis(model, example)
    for op, handle in rule.handles.items():
        analysis.set_op_handle(op, handle)
    # fvcore logs one warning per unsupported op; we report them as data instead.
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    fvcore_logger = logging.getLogger("fvcore")
    previous_level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings from jit.trace of data-dependent code
            total = analysis.total()
            by_operator = dict(analysis.by_operator())
            by_module = dict(analysis.by_module())
            uncounted = dict(analysis.unsupported_ops())
    finally:
        fvcore_logger.setLevel(previous_level)
    params = parameter_count(model)
    return CountResult(
        macs=int(total),
        params=int(params[""]),
        input_shape=tuple(input_shape),
        by_operator={k: int(v) for k, v in by_operator.items()},
        uncounted={k.removeprefix("aten::"): int(v) for k, v in sorted(uncounted.items())},
        by_module={k: int(v) for k, v in by_module.items()},
        params_by_module={k: int(v) for k, v in params.items()},
        convention=rule.name,
    )


def count(
    model: str | nn.Module,
    *,
    resolution: int | None = None,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    convention: str = DEFAULT_CONVENTION,
    **overrides: object,
) -> CountResult:
    """Count a registered model by name (or an ``nn.Module`` with ``input_size``) at ``batch_size``.

    ``resolution`` overrides the registry's default square input size.
    """
    if isinstance(model, str):
        entry = get_entry(model)
        channels, height, width = input_size or entry.input_size
        if resolution is not None:
            height = width = resolution
        module = create_model(model, **overrides)
    else:
        if input_size is None:
            raise ValueError("input_size is required when counting an nn.Module")
        channels, height, width = input_size
        if resolution is not None:
            height = width = resolution
        module = model
    return count_module(module, (batch_size, channels, height, width), convention)


def module_breakdown(result: CountResult, max_depth: int = 2) -> list[tuple[str, int, int]]:
    """(module name, MACs, params) for modules up to ``max_depth`` dots deep, in model order."""
    rows = []
    for name, macs in result.by_module.items():
        if not name or name.count(".") >= max_depth:
            continue
        rows.append((name, macs, result.params_by_module.get(name, 0)))
    return rows
