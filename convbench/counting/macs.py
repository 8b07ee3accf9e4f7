"""MACs and parameters with fvcore, with the counting convention stated and nothing swallowed.

One fused multiply-add counts as one MAC. Counts are taken at batch size 1 on the seeded input of the model's
input size (``convbench.models.inputs``), in eval mode, by tracing the model with fvcore (an operator-level
counter, so functional convolutions and matrix products inside custom layers are seen; module-hook counters
such as thop, torchinfo and ptflops' default backend miss the batch-folded convolutions and kernel assembly of
dynamic convolutions, which is why their numbers for KernelWarehouse, ODConv or DY-Conv disagree by up to 17×).

Conventions (``--convention``):

- ``convbench`` (default): fvcore's handles (convolutions, matrix products and linear layers; BatchNorm
  2 per element; adaptive average pooling 1 per input element) plus one MAC per element of an element-wise
  product or division and one per input element of a mean. This is one rule for all dynamic convolutions:
  KernelWarehouse's kernel assembly and ODConv's / DY-Conv's kernel aggregation are matrix products, and
  the attention that scales features or kernels is element-wise products, so all three are counted alike.
  Additions, activations, max, top-k and gathers are free. For static CNNs this equals fvcore's figure.
- ``fvcore``: fvcore's defaults only (what timm and most papers citing fvcore report).
- ``mac+``: ``convbench`` plus activations (1 per output element) and max-pooling (1 per input element),
  the way ptflops' module backend counts; CNN-MoD's GMAC columns read this way (CNN Mixture-of-Depths,
  ACCV 2024, Tables 1 and 7: its figures for the plain ResNets match this rule).
- ``micronet``: MicroNet's MAdds: convolutions, linear layers and element-wise products (Dynamic
  Shift-Max's mixing: 4 per output element with J = K = 2); no BatchNorm, no pooling.
- ``paper``: the convention of the paper a model's family comes from (declared by the family at
  registration, ``ModelEntry.paper_convention``; convbench's default where the paper does not state one).

Every result also carries ``conv_macs`` (the convolutions alone, as they cost once their kernels exist)
and the operators that were not counted (``uncounted``: operator -> number of calls).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.counting.result import CountResult
from convbench.errors import UserInputError
from convbench.models.spec import ModelSpec, ResolvedModel, resolve_model

if TYPE_CHECKING:
    from torch import nn

Handle = Callable[[list[Any], list[Any]], Any]


def _elements(value: Any) -> int:
    from fvcore.nn.jit_handles import get_shape

    size = 1
    for dim in get_shape(value) or [1]:
        size *= int(dim)
    return size


def _output_elements(inputs: list[Any], outputs: list[Any]) -> int:
    """One operation per output element (activations)."""
    return _elements(outputs[0])


def _input_elements(inputs: list[Any], outputs: list[Any]) -> int:
    """One operation per input element (pooling, as ptflops counts it)."""
    return _elements(inputs[0])


def _free(inputs: list[Any], outputs: list[Any]) -> int:
    """Counted as zero by the convention (fvcore's ``None`` would still leave its own default handle)."""
    return 0


@dataclass(frozen=True)
class Convention:
    """A counting rule: fvcore's default handles, overridden by ``handles``."""

    name: str
    description: str
    handles: dict[str, Handle] = field(default_factory=dict)


_ACTIVATIONS = (
    "relu",
    "relu_",
    "hardtanh",
    "hardtanh_",
    "sigmoid",
    "sigmoid_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "silu",
    "silu_",
    "gelu",
)
_PRODUCTS: dict[str, Handle] = {
    "aten::mul": _output_elements,
    "aten::mul_": _output_elements,
    "aten::div": _output_elements,
    "aten::div_": _output_elements,
    "aten::mean": _input_elements,
}
CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "convbench",
            "1 MAC = 1 multiply-add: convolutions, matrix products, linear layers; element-wise products and "
            "divisions 1/element; means 1/input element; BatchNorm 2/element (fvcore); additions, "
            "activations, max, top-k and gathers free",
            _PRODUCTS,
        ),
        Convention(
            "fvcore",
            "fvcore defaults: 1 MAC = 1 multiply-add for convolutions, linear layers and matrix products; "
            "BatchNorm 2/element; adaptive average pooling 1/input element; element-wise ops not counted",
        ),
        Convention(
            "mac+",
            "convbench's rule plus activations (1/output element) and max-pooling (1/input element), as "
            "ptflops' module backend counts; CNN-MoD's GMAC columns read this way",
            {
                **_PRODUCTS,
                **{f"aten::{op}": _output_elements for op in _ACTIVATIONS},
                "aten::max_pool2d": _input_elements,
            },
        ),
        Convention(
            "micronet",
            "MicroNet's MAdds: convolutions, linear layers and element-wise products (Dynamic Shift-Max); "
            "no BatchNorm, no pooling",
            {**_PRODUCTS, "aten::mean": _free, "aten::batch_norm": _free, "aten::adaptive_avg_pool2d": _free},
        ),
    )
}
DEFAULT_CONVENTION = "convbench"


def get_convention(name: str, paper_convention: str = "") -> Convention:
    """The convention ``name``; ``paper`` resolves to the model's declared ``paper_convention``."""
    if name == "paper":
        name = paper_convention or DEFAULT_CONVENTION
    try:
        return CONVENTIONS[name]
    except KeyError:
        known = ", ".join([*CONVENTIONS, "paper"])
        raise UserInputError(f"unknown counting convention {name!r}; choose from {known}") from None


def count_module(
    model: nn.Module, input_shape: tuple[int, ...], convention: str = DEFAULT_CONVENTION, paper_convention: str = ""
) -> CountResult:
    """Count MACs (fvcore ``FlopCountAnalysis``) and parameters of ``model`` on the seeded input."""
    from convbench.models.inputs import seeded_tensor

    # fvcore imports torch.jit.script, which newer torch marks deprecated; the warning says nothing to users.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis, parameter_count

    rule = get_convention(convention, paper_convention)
    model = model.eval()
    example = seeded_tensor(input_shape)
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
    model: str | ModelSpec | ResolvedModel | nn.Module,
    *,
    resolution: int | None = None,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    convention: str = DEFAULT_CONVENTION,
    use_cache: bool = True,
) -> CountResult:
    """Count a model (registered name, spec, resolved model, or an ``nn.Module`` with ``input_size``).

    ``resolution`` overrides the default square input size. Counts of named models are cached beside the
    ONNX exports, keyed the same way (sources, arguments, shape) plus the convention, fvcore's version and the
    source of the counting code (``count_code_digest``); a damaged entry is counted again, with a note.
    A model given as an ONNX file is counted from its graph (``convbench.counting.onnx_graph``).
    """
    if not isinstance(model, str | ModelSpec | ResolvedModel):
        if input_size is None:
            raise ValueError("input_size is required when counting an nn.Module")
        channels, height, width = input_size
        if resolution is not None:
            height = width = resolution
        return count_module(model, (batch_size, channels, height, width), convention)
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, resolution=resolution)
    rule = get_convention(convention, resolved.paper_convention)
    shape = resolved.input_shape(batch_size, resolution)
    if input_size is not None:
        shape = (batch_size, *input_size)
    path = _cache_path(resolved, shape, rule.name)
    if use_cache:
        cached = _read_cached(path)
        if cached is not None:
            return cached
    if resolved.is_onnx:
        result = _count_onnx(resolved, shape, rule.name)
    else:
        if set(resolved.builder_args) & set(resolved.counting_args):
            # The family counts in its own formulation whatever the user asked for; the user's value must
            # still be one the builder accepts, so build it once as given.
            resolved.build(calibrate=False)
        module = resolved.build(calibrate=False, counting=True)  # values do not change counts
        result = count_module(module, shape, convention, resolved.paper_convention)
    _write_cached(path, result)
    return result


def _count_onnx(model: ResolvedModel, shape: tuple[int, ...], convention: str) -> CountResult:
    from convbench.counting.onnx_graph import count_onnx
    from convbench.models.sources import onnx_fixed_batch

    assert model.onnx_path is not None
    fixed = onnx_fixed_batch(model.onnx_path)
    # A graph fixed to batch B can only be counted at B; at the asked batch b its counts are b/B of that (every
    # counted operator of a CNN works on each image alone), which the convention says.
    counted_at = fixed if fixed is not None else shape[0]
    counted = count_onnx(model.onnx_path, (counted_at, *shape[1:]))
    scale = shape[0] / counted_at
    at_batch = f", counted at the file's batch {fixed} and scaled to {shape[0]}" if counted_at != shape[0] else ""
    return replace(
        counted,
        macs=round(counted.macs * scale),
        input_shape=tuple(shape),
        by_operator={k: round(v * scale) for k, v in counted.by_operator.items()},
        convention=f"onnx graph ({convention} not applicable{at_batch})",
    )


def count_code_digest() -> str:
    """Hash of the code a count comes from: the counting package and ``export.py`` (which makes the cache key)."""
    from convbench.cache import source_digest

    return source_digest("counting", "export.py")


def _cache_path(model: ResolvedModel, shape: tuple[int, ...], convention: str) -> Path:
    from convbench.export import cache_dir, library_versions, model_cache_key

    key = model_cache_key(
        model,
        shape,
        convention=convention,
        counting=model.counting_args,
        versions=library_versions(),
        code=count_code_digest(),
    )
    return cache_dir() / "counts" / f"{key}.json"


def _read_cached(path: Path) -> CountResult | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        print(f"note: cannot read cached count {path} ({exc.strerror}); counting again", file=sys.stderr)
        return None
    try:
        data = json.loads(text)
        data["input_shape"] = tuple(data["input_shape"])
        return CountResult(**{**data, "cached": True})
    except (ValueError, TypeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        print(f"note: cached count {path} is damaged ({reason}); counting again", file=sys.stderr)
        return None


def _write_cached(path: Path, result: CountResult) -> None:
    tmp = None
    try:  # a cache that cannot be written only costs time
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".count-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({k: v for k, v in asdict(result).items() if k != "cached"}, handle)
        os.replace(tmp, path)  # whole or not at all: readers never see half a count
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def module_breakdown(result: CountResult, max_depth: int = 2) -> list[tuple[str, int, int]]:
    """(module name, MACs, params) for modules up to ``max_depth`` dots deep, in model order."""
    rows = []
    for name, macs in result.by_module.items():
        if not name or name.count(".") >= max_depth:
            continue
        rows.append((name, macs, result.params_by_module.get(name, 0)))
    return rows
