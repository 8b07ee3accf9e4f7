"""Model specs: how a user names a model, and what convbench knows about it once resolved.

A spec is the text a user gives wherever a model is accepted (``profile``, ``compare``, ``count``, ``export``,
``evaluate``, run specs), plus keyword arguments for its builder (``--model-arg key=value``) and optional
weights (``--weights FILE``). The text is one of

- a registered name (``resnet75-mod``; plugins register names too),
- ``path/to/file.py:builder`` or ``package.module:builder``: a callable returning an ``nn.Module``,
- ``path/to/model.onnx``: an ONNX file, timed directly by the runtimes that run ONNX,
- ``timm/NAME``: a timm model by name (``convbench.models.timm_models``; timm is an optional extra).

``resolve_model`` turns a spec into a ``ResolvedModel``: the metadata a benchmark needs (input size, family,
what to record), a content digest that keys every cache, and ``build()``. No generic module needs to know
which family a model belongs to: families declare what they need in their registry entry, including builder
arguments they prefer on a runtime and device (``resolve_model(..., runtime=, device=)`` applies them).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.models.registry import (
    DEFAULT_SEED,
    check_arguments,
    get_builder,
    get_entry,
    module_source_digest,
)
from convbench.options import between, option

if TYPE_CHECKING:
    from torch import nn

Arg = tuple[str, Any]


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``0.5`` -> 0.5, ``true`` -> True, ``none`` -> None, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()
    return value if isinstance(value, int | float | str | tuple | list) else text.strip()


def parse_model_args(items: Iterable[str] | None) -> tuple[Arg, ...]:
    """``["impl=gather-concat", "capacity=32"]`` -> ``(("impl", "gather-concat"), ("capacity", 32))``."""
    args: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserInputError(f"--model-arg takes key=value with a Python name as key, got {item!r}")
        args[key] = parse_value(value)
    return tuple(args.items())


@dataclass(frozen=True)
class ModelSpec:
    """A model as the user named it: source text, builder arguments, weights."""

    source: str
    args: tuple[Arg, ...] = ()
    weights: str | None = None
    in_chans: int | None = None  # for models from outside the registry, where the builder accepts it
    num_classes: int | None = None

    @property
    def label(self) -> str:
        """The name a row carries: the source, and the arguments when there are any."""
        if not self.args:
            return self.source
        return f"{self.source}[{','.join(f'{k}={v}' for k, v in self.args)}]"

    @property
    def kind(self) -> str:
        if self.source.lower().endswith(".onnx"):
            return "onnx"
        if ":" in self.source:
            return "file" if self.source.split(":")[0].endswith(".py") else "module"
        if self.source.endswith(".py"):  # a file without its builder: the outside resolver says how to name it
            return "file"
        if self.source.startswith("timm/"):
            return "timm"
        return "registry"


def as_spec(model: str | ModelSpec) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else ModelSpec(model)


@dataclass
class ResolvedModel:
    """What convbench knows about a model before building it, and how to build it."""

    spec: ModelSpec
    kind: str  # registry, file, module, onnx or timm
    family: str
    paper: str
    origin: str  # registry name, file path, module path or ONNX path, and for plugins the distribution
    digest: str  # hash of what defines the graph: sources, file contents
    input_size: tuple[int, int, int] | None
    num_classes: int | None
    builder: Callable[..., Any] | None = field(default=None, repr=False)
    builder_args: dict[str, Any] = field(default_factory=dict)  # the user's (the spec's)
    # The family's defaults for the runtime and device it was resolved for, less any argument the user gave.
    runtime_args: dict[str, Any] = field(default_factory=dict)
    counting_args: dict[str, Any] = field(default_factory=dict)
    recorded_args: dict[str, Any] = field(default_factory=dict)
    paper_convention: str = ""
    stochastic: bool = False
    onnx_path: Path | None = None
    weights_digest: str = ""
    accepts: tuple[str, ...] = ()  # builder keyword arguments (for in_chans / num_classes from options)
    weights_source: str = ""  # trained weights the builder loads itself (timm's cached pretrained weights)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # the model's own evaluation transform settings
    provenance: dict[str, Any] = field(default_factory=dict)  # extra row columns naming the model's origin

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def is_onnx(self) -> bool:
        return self.kind == "onnx"

    def resolution(self, override: int | None = None) -> int:
        if override is not None:
            return override
        if self.input_size is None:
            raise UserInputError(
                f"the input size of {self.name} is not known; give --resolution (and --in-chans if not 3)"
            )
        return self.input_size[-1]

    def input_shape(self, batch_size: int, resolution: int | None = None) -> tuple[int, int, int, int]:
        size = self.resolution(resolution)
        channels = self.input_size[0] if self.input_size else 3
        return (batch_size, channels, size, size)

    @property
    def effective_args(self) -> dict[str, Any]:
        """Builder arguments as the model is built: declared defaults, then the runtime's, then the user's."""
        return {**self.recorded_args, **self.runtime_args, **self.builder_args}

    def build(
        self,
        *,
        calibrate: bool = True,
        counting: bool = False,
        seed: int = DEFAULT_SEED,
        resolution: int | None = None,
    ) -> nn.Module:
        """The module in eval mode, weights from ``seed`` (or the spec's weights file), BatchNorm calibrated
        on random data at ``resolution`` (default: the model's own; statistics gathered on other map sizes do
        not fit) unless ``calibrate`` is False or real weights are loaded; ``counting``: the family's counting
        arguments apply."""
        import torch

        from convbench.models import calibration

        if self.builder is None:
            raise UserInputError(f"{self.name} is an ONNX file; this needs a PyTorch model")
        args = {**self.runtime_args, **self.builder_args, **(self.counting_args if counting else {})}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                module = self.builder(**args)
            except UserInputError:
                raise
            except Exception as exc:
                if self.kind == "registry":
                    raise
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise UserInputError(f"builder of {self.name} raised {type(exc).__name__}: {reason}") from None
            if not isinstance(module, torch.nn.Module):
                raise UserInputError(f"builder of {self.name} returned {type(module).__name__}, not a torch.nn.Module")
            if self.spec.weights:
                from convbench.models.weights import load_weights

                load_weights(module, Path(self.spec.weights))
            elif calibrate and self.input_size is not None and not self.weights_source:
                size = self.input_size if resolution is None else (self.input_size[0], resolution, resolution)
                calibration.calibrate_batchnorm(module, size)
        return module.eval()

    def identity(self) -> dict[str, Any]:
        """Columns that trace a result row back to the model it measured."""
        return {
            "model": self.name,
            "family": self.family,
            "paper": self.paper,
            "model_source": self.kind,
            "model_origin": self.origin,
            "model_digest": self.digest,
            "model_args": json.dumps(self.effective_args, sort_keys=True, default=str) if self.effective_args else "",
            "weights": self.spec.weights or self.weights_source,
            "weights_digest": self.weights_digest,
            "bn_calibrated": not self.has_weights and not self.is_onnx and self.input_size is not None,
            **self.provenance,
        }

    @property
    def has_weights(self) -> bool:
        """Whether trained weights are loaded (``--weights``, or pretrained weights the builder loads)."""
        return bool(self.spec.weights or self.weights_source)


def _registry_model(spec: ModelSpec, runtime: str | None, device: str | None) -> ResolvedModel:
    entry = get_entry(spec.source)
    args = dict(spec.args)
    check_arguments(entry.name, args)
    defaults = entry.defaults_for(runtime, device) if runtime and device else {}
    digest = module_source_digest(entry.module) if entry.source == "convbench" else entry.source
    return ResolvedModel(
        spec=spec,
        kind="registry",
        family=entry.family,
        paper=entry.paper,
        origin=entry.name if entry.source == "convbench" else f"{entry.name} ({entry.source})",
        digest=digest,
        input_size=entry.input_size,
        num_classes=args.get("num_classes", entry.num_classes),
        builder=_LazyBuilder(entry.name),
        builder_args=args,
        runtime_args={k: v for k, v in defaults.items() if k not in args},
        counting_args=dict(entry.counting_args),
        recorded_args=dict(entry.recorded_args),
        paper_convention=entry.paper_convention,
        stochastic=entry.stochastic,
        accepts=entry.parameters,
    )


class _LazyBuilder:
    """Imports the family's module only when the model is built."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, **kwargs: Any) -> Any:
        return get_builder(self.name)(**kwargs)


def resolve_model(
    model: str | ModelSpec,
    *,
    resolution: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    runtime: str | None = None,
    device: str | None = None,
) -> ResolvedModel:
    """What ``model`` is and how to build it; unknown names, files or builders fail here, before any work.

    ``resolution``, ``in_chans`` and ``num_classes`` say what the registry cannot for a model from outside it.
    With ``runtime`` and ``device`` (both), the builder arguments its family declares for that pair apply
    wherever the spec does not give them (``effective_args``, and so the row's ``model_args``, show them).
    Every process that builds the model for that run must resolve it with the same pair.
    """
    spec = as_spec(model)
    if (runtime is None) != (device is None):
        raise ValueError("resolve_model takes runtime and device together")
    if spec.kind == "registry":
        resolved = _registry_model(spec, runtime, device)
    else:
        from convbench.models.sources import resolve_outside

        resolved = resolve_outside(
            spec, resolution=resolution, in_chans=in_chans or spec.in_chans, num_classes=num_classes or spec.num_classes
        )
    if spec.weights:
        if resolved.is_onnx:
            raise UserInputError("--weights applies to PyTorch models; an ONNX file carries its own weights")
        from convbench.models.weights import weights_digest

        resolved.weights_digest = weights_digest(Path(spec.weights))
    return resolved


def _path_text(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class ModelOptions:
    """How the models a command names are built: builder arguments, weights, what an outside model needs."""

    model_arg: tuple[str, ...] = option(
        (),
        "key=value for every model's builder (repeatable), e.g. impl=gather-concat; one model alone: "
        "name[key=value,...]. Recorded in the row.",
        parse=tuple,
        cli_type=list[str],
    )
    weights: str | None = option(
        None,
        "Load this state dict (or checkpoint) into the model(s) instead of seeded random weights.",
        parse=_path_text,
        cli_type=Path,
    )
    in_chans: int | None = option(
        None, "Input channels of a model from outside the registry (default 3).", check=between(1, 4096)
    )
    num_classes: int | None = option(
        None, "Number of classes, for builders from outside the registry.", check=between(1, 1_000_000)
    )
    pretrained: bool = option(
        False,
        "timm/NAME models: load timm's pretrained weights, only from the local cache (nothing is downloaded). "
        "Recorded as the model argument pretrained=True.",
    )

    def specs(self, models: Iterable[str]) -> list[ModelSpec]:
        """One spec per model text; ``name[key=value,...]`` gives that model its own arguments, which win over
        ``--model-arg`` (so variants of one model can be compared in one interleaved run)."""
        shared = dict(parse_model_args(self.model_arg))
        specs = []
        for text in models:
            source, own = split_model_text(text)
            args = tuple({**shared, **dict(own)}.items())
            if self.pretrained:
                # An argument, not a spec field: it reaches trial workers and the row's label like any other.
                if not source.startswith("timm/"):
                    raise UserInputError(f"--pretrained applies to timm/NAME models; {source} is not one")
                args = (*tuple((k, v) for k, v in args if k != "pretrained"), ("pretrained", True))
            specs.append(ModelSpec(source, args, self.weights, self.in_chans, self.num_classes))
        return specs


def split_model_text(text: str) -> tuple[str, tuple[Arg, ...]]:
    """``"resnet75-mod[impl=gather-concat,capacity=32]"`` -> the source and its arguments (the row's label form)."""
    if not text.endswith("]") or "[" not in text:
        return text, ()
    source, _, inner = text[:-1].partition("[")
    return source, parse_model_args([part for part in inner.split(",") if part.strip()])
