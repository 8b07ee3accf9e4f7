"""Models from outside the registry: a builder in a Python file or module, or an ONNX file.

``path/to/file.py:builder`` imports the file (its folder first on ``sys.path`` while it runs, so it can import
its neighbours) and ``package.module:builder`` imports the module; ``builder`` is any callable returning an
``nn.Module`` (a function or a class; ``Outer.attr`` reaches inside a module attribute). The builder is
called with the ``--model-arg`` values, and with ``in_chans`` / ``num_classes`` only where its signature takes
them (by name, or through ``**kwargs``); a builder that does not take them still gets them used for the
input size, so a fixed single-channel model can say ``--in-chans 1``.

The input size comes from, in this order: ``--resolution`` (with ``--in-chans``); the builder's or else its
module's ``default_input_size`` attribute, ``(channels, height, width)``; the ``input_size`` of a
``default_cfg`` or ``pretrained_cfg`` dict on the builder or module (timm's convention, "PyTorch Image
Models", timm documentation). Without any of these it stays unknown and every command that needs it asks for
``--resolution``.

``model.onnx`` is read with ``onnx.load``: the input size is the first input's, when its channel and spatial
dimensions are fixed (a symbolic batch dimension takes ``--batch-size``); otherwise ``--resolution`` says it.

Every cache is keyed by the digest of what defines the graph: the file's bytes, or the module's source file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from convbench.errors import UserInputError
from convbench.models.spec import ModelSpec, ResolvedModel

# One module object per file content: resolving the same file twice (compare, run specs) must give the same
# builder, and a file edited between two resolutions must be imported again.
_FILE_MODULES: dict[tuple[str, str], ModuleType] = {}
LISTED_CALLABLES = 8


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits, as every convbench digest)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1]}" if text else type(exc).__name__


def resolve_outside(
    spec: ModelSpec, *, resolution: int | None = None, in_chans: int | None = None, num_classes: int | None = None
) -> ResolvedModel:
    """A ``ResolvedModel`` for a file, module or ONNX spec; any problem is one UserInputError line."""
    if resolution is not None and resolution < 1:
        raise UserInputError(f"--resolution must be a positive number of pixels, got {resolution}")
    if in_chans is not None and in_chans < 1:
        raise UserInputError(f"--in-chans must be at least 1, got {in_chans}")
    if spec.kind == "onnx":
        return _onnx_model(spec, resolution=resolution, in_chans=in_chans, num_classes=num_classes)
    if spec.kind == "timm":
        from convbench.models.timm_models import resolve_timm

        return resolve_timm(spec, resolution=resolution, in_chans=in_chans, num_classes=num_classes)
    location, sep, attribute = spec.source.rpartition(":")
    if not sep or not location or not attribute:
        raise UserInputError(
            f"name the builder as path/to/file.py:builder or package.module:builder, got {spec.source!r}"
        )
    if spec.kind == "file":
        path = Path(location).expanduser()
        digest = _check_file(path)
        module = _import_file(path.resolve(), digest)
        origin = f"{path.resolve()}:{attribute}"
        where = str(path)
    else:
        module, digest = _import_module(location)
        origin = spec.source
        where = f"module {location}"
    builder = _find_builder(module, attribute, where)
    return _builder_model(
        spec,
        builder,
        module,
        origin=origin,
        digest=digest,
        resolution=resolution,
        in_chans=in_chans,
        num_classes=num_classes,
    )


# --- Python files and modules ------------------------------------------------------------------------------


def _check_file(path: Path) -> str:
    if not path.exists():
        raise UserInputError(f"model file {path} does not exist")
    if not path.is_file():
        raise UserInputError(f"model file {path} is not a file")
    try:
        return file_digest(path)
    except OSError as exc:
        raise UserInputError(f"cannot read model file {path}: {exc.strerror or exc}") from None


def _import_file(path: Path, digest: str) -> ModuleType:
    key = (str(path), digest)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    # A unique name per file and content: two files called model.py never replace each other in sys.modules.
    name = f"convbench_user_{path.stem if path.stem.isidentifier() else 'model'}_{digest[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserInputError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running, as the import system does: dataclasses and pickling look the module up.
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, UserInputError):
            raise
        raise UserInputError(f"{path} failed to import: {_last_line(exc)}") from None
    finally:
        try:
            sys.path.remove(str(path.parent))
        except ValueError:
            pass
    _FILE_MODULES[key] = module
    return module


def _import_module(name: str) -> tuple[ModuleType, str]:
    if not all(part.isidentifier() for part in name.split(".")):
        raise UserInputError(f"{name!r} is not a Python module path (package.module:builder)")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:  # a parent package that is missing or fails to import
        raise UserInputError(f"module {name} does not import: {_last_line(exc)}") from None
    except Exception as exc:
        raise UserInputError(f"module {name} does not import: {_last_line(exc)}") from None
    if found is None:
        raise UserInputError(f"no module named {name!r} (is it installed, or on PYTHONPATH?)")
    digest = ""
    if found.origin and Path(found.origin).is_file():
        digest = file_digest(Path(found.origin))
    try:
        module = importlib.import_module(name)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(f"module {name} does not import: {_last_line(exc)}") from None
    return module, digest


def _own_callables(module: ModuleType) -> list[str]:
    """Callables defined in the module itself (not the ones it imported), builders first."""
    names = [
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
    ]
    return sorted(names, key=lambda n: (inspect.isclass(getattr(module, n)), n))


def _find_builder(module: ModuleType, attribute: str, where: str) -> Callable[..., Any]:
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found = _own_callables(module)
            listed = ", ".join(found[:LISTED_CALLABLES]) + (", ..." if len(found) > LISTED_CALLABLES else "")
            has = f"; it defines: {listed}" if found else "; it defines no functions or classes"
            raise UserInputError(f"no builder {attribute!r} in {where}{has}")
        target = getattr(target, part)
    if not callable(target):
        raise UserInputError(f"{attribute!r} in {where} is a {type(target).__name__}, not a callable builder")
    return target


def _parameters(builder: Callable[..., Any]) -> tuple[tuple[str, ...], bool, dict[str, Any]]:
    """(keyword names, takes **kwargs, defaults) of the builder; a signature Python cannot read takes all."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return (), True, {}
    names = tuple(p.name for p in signature.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    defaults = {p.name: p.default for p in signature.parameters.values() if p.default is not inspect.Parameter.empty}
    return names, var_keyword, defaults


def _declared_input_size(builder: Callable[..., Any], module: ModuleType, where: str) -> tuple[int, ...] | None:
    for owner in (builder, module):
        value = getattr(owner, "default_input_size", None)
        if value is None:
            for cfg_name in ("default_cfg", "pretrained_cfg"):
                cfg = getattr(owner, cfg_name, None)
                if isinstance(cfg, dict) and cfg.get("input_size") is not None:
                    value = cfg["input_size"]
                    break
        if value is None:
            continue
        try:
            size = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 3 or min(size) < 1:
            raise UserInputError(f"default_input_size of {where} must be (channels, height, width), got {value!r}")
        return size
    return None


def _builder_model(
    spec: ModelSpec,
    builder: Callable[..., Any],
    module: ModuleType,
    *,
    origin: str,
    digest: str,
    resolution: int | None,
    in_chans: int | None,
    num_classes: int | None,
) -> ResolvedModel:
    names, var_keyword, defaults = _parameters(builder)
    args = dict(spec.args)
    unknown = [k for k in args if k not in names] if not var_keyword else []
    if unknown:
        takes = ", ".join(names) or "none"
        raise UserInputError(f"builder {spec.source} takes no argument {unknown[0]!r}; it takes: {takes}")

    def accepted(name: str) -> bool:
        return var_keyword or name in names

    if in_chans is not None and accepted("in_chans"):
        args["in_chans"] = in_chans
    if num_classes is not None and accepted("num_classes"):
        args["num_classes"] = num_classes

    declared = _declared_input_size(builder, module, spec.source)
    default_chans = defaults.get("in_chans")
    channels = in_chans or args.get("in_chans") or (declared[0] if declared else None)
    if channels is None:
        channels = default_chans if isinstance(default_chans, int) and default_chans > 0 else 3
    input_size: tuple[int, int, int] | None = None
    if resolution is not None:
        input_size = (int(channels), resolution, resolution)
    elif declared is not None:
        input_size = (int(channels), declared[1], declared[2])
    classes = args.get("num_classes", defaults.get("num_classes"))
    return ResolvedModel(
        spec=spec,
        kind=spec.kind,
        family="custom",
        paper="",
        origin=origin,
        digest=digest,
        input_size=input_size,
        num_classes=classes if isinstance(classes, int) else None,
        builder=builder,
        builder_args=args,
        accepts=names,
    )


# --- ONNX files --------------------------------------------------------------------------------------------


def _onnx_model(
    spec: ModelSpec, *, resolution: int | None, in_chans: int | None, num_classes: int | None
) -> ResolvedModel:
    from convbench.counting.onnx_graph import graph_input_shape, load_onnx

    if spec.args:
        raise UserInputError(f"--model-arg applies to builders; the ONNX file {spec.source} takes no arguments")
    path = Path(spec.source).expanduser()
    model = load_onnx(path, with_weights=False)  # the graph is enough here; runtimes read the weights
    shape = graph_input_shape(model)
    if shape and len(shape) != 4:
        raise UserInputError(f"{path} takes a {len(shape)}-d input; convbench benchmarks image models (N×C×H×W)")
    channels, height, width = shape[1:] if shape else (None, None, None)
    if in_chans is not None and channels is not None and in_chans != channels:
        raise UserInputError(f"{path} takes {channels} input channels, not --in-chans {in_chans}")
    if resolution is not None:
        if (height is not None and height != resolution) or (width is not None and width != resolution):
            raise UserInputError(
                f"{path} has a fixed input size {height}×{width}; --resolution {resolution} "
                "cannot change it (export the model again at that size)"
            )
        input_size: tuple[int, int, int] | None = (channels or in_chans or 3, resolution, resolution)
    elif height is not None and width is not None:
        input_size = (channels or in_chans or 3, height, width)
    else:
        raise UserInputError(f"{path} has no fixed input shape; give --resolution (and --in-chans if not 3)")
    classes = onnx_output_classes(model)
    if num_classes is not None and classes is not None and num_classes != classes:
        raise UserInputError(f"{path} has {classes} outputs, not --num-classes {num_classes}")
    return ResolvedModel(
        spec=spec,
        kind="onnx",
        family="onnx",
        paper="",
        origin=str(path.resolve()),
        digest=file_digest(path),
        input_size=input_size,
        num_classes=classes or num_classes,
        onnx_path=path,
    )


def onnx_output_classes(model: Any) -> int | None:
    """The class count of a (batch, classes) first output, when fixed."""
    outputs = model.graph.output
    if not outputs or not outputs[0].type.tensor_type.HasField("shape"):
        return None
    dims = outputs[0].type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
        return int(dims[1].dim_value)
    return None


def onnx_fixed_batch(path: Path) -> int | None:
    """The batch size an ONNX file is fixed to, or None where the batch dimension is symbolic."""
    from convbench.counting.onnx_graph import graph_input_shape, load_onnx

    shape = graph_input_shape(load_onnx(path, with_weights=False))
    return shape[0] if shape else None


def check_onnx_batch(path: Path, batch_size: int) -> None:
    """Refuse to run an ONNX file fixed to one batch size at another, in one line naming the file's batch.

    Refused rather than run at the file's own batch: the row would then carry a batch size that was not asked
    for, and a comparison with models run at the asked batch would compare unlike workloads.
    """
    fixed = onnx_fixed_batch(path)
    if fixed is not None and fixed != batch_size:
        raise UserInputError(
            f"{path} is fixed to batch size {fixed}; it cannot run at --batch-size {batch_size} "
            f"(use --batch-size {fixed}, or export the model with a dynamic batch dimension)"
        )


def onnx_input_dtype(path: Path) -> Any:
    """The numpy element type of an ONNX file's first input (float16, uint8, ...), so runtimes feed what the
    graph takes; a one-line UserInputError for a type with no numpy equivalent (strings, bfloat16)."""
    import numpy as np
    import onnx

    from convbench.counting.onnx_graph import graph_inputs, load_onnx

    elem_type = graph_inputs(load_onnx(path, with_weights=False))[0].type.tensor_type.elem_type
    name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else "?"
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "fiub":
        raise UserInputError(f"{path} takes {name.lower()} input; convbench feeds float, integer or bool tensors")
    return dtype
