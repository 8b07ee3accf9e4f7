"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``.

A builder is a plain function returning an ``nn.Module``; the decorator records what a benchmark needs to
know about the model without building it (family, paper, default input size, number of classes, and what
the family declares for the generic layers: the builder arguments to count with, the ones to record in every
row, the counting convention of its paper).

Answering without building anything: listing or looking up models must not import PyTorch (about 2 s).
The registry's metadata is therefore kept in an index file in the cache directory, keyed by a hash of the
model sources and of the installed plugins, and rebuilt (by importing every family) only when one of those
changed. Plugins register models from other packages through the entry point group ``convbench.models``.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.cache import cache_root
from convbench.errors import UserInputError
from convbench.models.calibration import calibrate_batchnorm
from convbench.papers import PAPERS

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[..., "nn.Module"]

DEFAULT_SEED = 0
PLUGIN_GROUP = "convbench.models"
INDEX_VERSION = 2


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model without building it."""

    name: str
    family: str
    paper: str
    module: str  # the module whose import registers the builder
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    description: str = ""
    # Builder arguments used when counting MACs (e.g. a formulation that counts the paper's way).
    counting_args: dict[str, Any] = field(default_factory=dict)
    # Builder defaults that change the graph and so are recorded in every row (e.g. an implementation switch).
    recorded_args: dict[str, Any] = field(default_factory=dict)
    # Builder arguments the family prefers on one runtime and device (e.g. the implementation measured fastest
    # there), keyed "runtime/device" (see ``runtime_key``); applied unless the user gives the argument.
    default_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The counting convention of the family's paper (``--convention paper``); empty: convbench's default.
    paper_convention: str = ""
    # Models whose output is random by design (the MoD random-selection control) cannot be checked for
    # ONNX parity value by value; only shape and finiteness are checked.
    stochastic: bool = False
    parameters: tuple[str, ...] = ()  # the builder's keyword arguments
    source: str = "convbench"  # "convbench", or "plugin <distribution> <version>"

    @property
    def resolution(self) -> int:
        return self.input_size[-1]

    def defaults_for(self, runtime: str, device: str) -> dict[str, Any]:
        """The builder arguments the family declares for ``runtime`` on ``device`` (empty if none)."""
        return dict(self.default_args.get(runtime_key(runtime, device), {}))

    @property
    def citation(self) -> str:
        paper = PAPERS.get(self.paper)
        return paper.citation if paper else self.paper


def runtime_key(runtime: str, device: str) -> str:
    """``("torch", "cuda")`` -> ``"torch/cuda"``: how ``ModelEntry.default_args`` is keyed (JSON has no tuples)."""
    return f"{runtime}/{device}"


_REGISTRY: dict[str, ModelEntry] = {}
_BUILDERS: dict[str, Builder] = {}
_LOADING_PLUGIN: list[str] = []  # the plugin being loaded, so its models say where they come from


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    num_classes: int = 1000,
    description: str = "",
    counting_args: dict[str, Any] | None = None,
    recorded_args: dict[str, Any] | None = None,
    default_args: dict[tuple[str, str], dict[str, Any]] | None = None,
    paper_convention: str = "",
    stochastic: bool = False,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name`` (lowercase, hyphenated).

    ``default_args`` maps ``(runtime, device)`` to builder arguments used there unless the user gives them, e.g.
    ``{("torch", "cuda"): {"impl": "fast-on-gpu"}}``; every argument must be one the builder takes.
    """
    if name != name.lower() or " " in name or "_" in name:
        raise ValueError(f"model names are lowercase with hyphens: {name!r}")
    source = _LOADING_PLUGIN[-1] if _LOADING_PLUGIN else "convbench"
    if source == "convbench" and paper not in PAPERS:
        raise ValueError(f"unknown paper key {paper!r} for {name!r}; known: {sorted(PAPERS)}")

    def decorator(builder: Builder) -> Builder:
        import inspect

        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        params = tuple(
            p.name
            for p in inspect.signature(builder).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        defaults: dict[str, dict[str, Any]] = {}
        for where, args in (default_args or {}).items():
            runtime, device = where
            unknown = sorted(set(args) - set(params))
            if unknown:
                raise ValueError(f"default_args of {name!r} for {where}: the builder takes no {unknown[0]!r}")
            defaults[runtime_key(runtime, device)] = dict(args)
        _REGISTRY[name] = ModelEntry(
            name=name,
            family=family,
            paper=paper,
            module=builder.__module__,
            input_size=tuple(input_size),
            num_classes=num_classes,
            description=description or (builder.__doc__ or "").strip().splitlines()[0],
            counting_args=dict(counting_args or {}),
            recorded_args=dict(recorded_args or {}),
            default_args=defaults,
            paper_convention=paper_convention,
            stochastic=stochastic,
            parameters=params,
            source=source,
        )
        _BUILDERS[name] = builder
        return builder

    return decorator


def _plugins() -> list[Any]:
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name)


def _plugin_source(entry: Any) -> str:
    dist = getattr(entry, "dist", None)
    return f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {entry.value}"


def _load_everything() -> None:
    import convbench.models.families  # noqa: F401  (registration side effects)

    _load_plugins()


def _load_plugins() -> None:
    """Import every plugin of the ``convbench.models`` entry point group once, each tagged with its source."""
    for entry in _plugins():
        if any(e.module.startswith(entry.value.split(":")[0]) for e in _REGISTRY.values()):
            continue
        _LOADING_PLUGIN.append(_plugin_source(entry))
        try:
            entry.load()
        except Exception as exc:  # a broken plugin must not break convbench: say which and why
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserInputError(f"model plugin {entry.name!r} ({entry.value}) failed to load: {reason}") from None
        finally:
            _LOADING_PLUGIN.pop()


def models_source_digest() -> str:
    """Hash of every model source file of the package: an edit to any of them changes it."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


_NOT_MODEL_CODE = {f"convbench.models.{m}" for m in ("families", "registry", "spec", "sources")}


@functools.cache
def module_source_digest(module: str) -> str:
    """Hash of ``module``'s source and of every convbench module it imports, directly or not.

    Found by reading the import statements (``ast``), not by importing, so it costs milliseconds. An edit to a
    family's file, to a module it builds on (``resnet.py`` under the MoD models, ``dynamic_conv.py`` under
    KernelWarehouse's layers in ``layers.py``) or to the BatchNorm calibration changes the digest, and with it
    every cache key derived from it; edits to unrelated families, or to the registry's bookkeeping, do not.
    """
    import ast

    package_root = Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    pending = [module, "convbench.models.calibration"]
    while pending:
        name = pending.pop()
        # Only model code shapes a graph. The registry, specs and outside-model loaders only record and look up
        # (the seed is part of every cache key on its own), and families.py imports every family.
        if name in seen or not name.startswith("convbench.models.") or name in _NOT_MODEL_CODE:
            continue
        path = package_root.parent / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = package_root.parent / name.replace(".", "/") / "__init__.py"
        if not path.is_file():  # an attribute (``from x import name``), not a module
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.ImportFrom) and node.module:
                pending.append(node.module)
                pending += [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                pending += [alias.name for alias in node.names]
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode())
        digest.update(seen[name].read_bytes())
    return digest.hexdigest()[:16]


def _index_key() -> str:
    plugins = [f"{e.name}={e.value}={_plugin_source(e)}" for e in _plugins()]
    payload = json.dumps({"v": INDEX_VERSION, "src": models_source_digest(), "plugins": plugins})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _entry_from_json(data: dict[str, Any]) -> ModelEntry:
    data = {**data, "input_size": tuple(data["input_size"]), "parameters": tuple(data["parameters"])}
    return ModelEntry(**data)


@functools.cache
def model_index() -> dict[str, ModelEntry]:
    """Every registered model's metadata, from the index file when it is current (no PyTorch import)."""
    path = cache_root() / "index" / f"models-{_index_key()}.json"
    try:
        return {d["name"]: _entry_from_json(d) for d in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    _load_everything()
    index = dict(_REGISTRY)
    try:  # a read-only cache only costs speed
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump([asdict(e) for e in index.values()], handle)
        os.replace(tmp, path)
    except OSError:
        pass
    return index


def _natural_key(name: str) -> list[object]:
    # resnet18 < resnet50 < resnet101, as people read model names.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell-style wildcard (``resnet*-mod``)."""
    names = sorted(model_index(), key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern.lower())]
    return names


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``, or a UserInputError that suggests the closest names."""
    index = model_index()
    try:
        return index[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(index), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; run `convbench list` to see them"
        raise UserInputError(f"unknown model {name!r}{hint}") from None


def get_builder(name: str) -> Builder:
    """The builder of ``name``, importing only the module that registers it."""
    entry = get_entry(name)
    if name not in _BUILDERS:
        if entry.source == "convbench":
            importlib.import_module(entry.module)
        else:  # through the entry point, so its models are registered as the plugin's
            _load_plugins()
    if name not in _BUILDERS:
        raise UserInputError(
            f"model {name!r} is in the index but no longer registered by {entry.module}; was its plugin uninstalled?"
        )
    return _BUILDERS[name]


def check_arguments(name: str, arguments: dict[str, Any]) -> None:
    """Refuse builder arguments the model does not take, before anything is built."""
    entry = get_entry(name)
    unknown = [k for k in arguments if k not in entry.parameters]
    if unknown:
        takes = ", ".join(entry.parameters) or "none"
        raise UserInputError(f"model {name!r} takes no argument {unknown[0]!r}; it takes: {takes}")


def create_model(name: str, *, seed: int = DEFAULT_SEED, calibrate: bool = True, **overrides: Any) -> nn.Module:
    """Build ``name`` in eval mode with weights drawn from a fixed seed (no pretrained weights exist here).

    ``overrides`` go to the builder (for example ``num_classes=10`` or a family-specific switch). With
    ``calibrate`` the BatchNorm statistics are set from random data (see ``calibrate_batchnorm``).
    """
    import torch

    entry = get_entry(name)
    check_arguments(name, overrides)
    builder = get_builder(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(**overrides)
        if calibrate:
            calibrate_batchnorm(model, entry.input_size)
    return model.eval()
