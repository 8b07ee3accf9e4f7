"""ONNX export with a cache and a parity check against PyTorch.

Models are exported once per (model spec, builder arguments, weights, input shape, exporter, opset, library
versions, model sources, the source of this module) into a user cache directory (``$CONVBENCH_CACHE`` or
``~/.cache/convbench``), never into the repository. Every export is verified: ONNX Runtime and PyTorch run
the same input, and the largest difference must stay within a tolerance relative to the output's own scale;
above it the export fails.

The default exporter is ``torch.onnx.export(..., dynamo=True)``, the exporter PyTorch supports going
forward; it writes weights to a ``.onnx.data`` file, which we fold back into one self-contained ``.onnx``
file (all models here are far below protobuf's 2 GB limit), so a cached or copied model is one file.
Models are exported at the batch size being measured (dynamic convolutions fold the batch into their
groups, so their graphs hold one batch size; one rule for all keeps the cache simple).

Cache entries are folders (``model.onnx`` + ``export.json``) that appear whole or not at all: each export is
built in a private temporary folder and renamed into place. Several processes may export one model into one
cache at once; the first complete entry wins and later ones are discarded, so a reader never loses the file it
loads. An entry found damaged (a truncated ``model.onnx``, unreadable JSON) is exported again, with a note.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from convbench.cache import cache_root, source_digest, writable_directory
from convbench.errors import ConvbenchError, UserInputError
from convbench.models.registry import DEFAULT_SEED
from convbench.models.spec import ModelSpec, ResolvedModel, resolve_model
from convbench.results.files import check_writable, current_umask, locked

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import torch

    from convbench.runtimes.base import RunSettings

Exporter = Literal["dynamo", "torchscript"]
EXPORTERS: tuple[str, ...] = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
# Parity: |onnx - torch| <= RTOL * max|torch| + ATOL_FLOOR. The tolerance scales with the output so that it
# means the same for logits near 1e3 and for MicroNet's near 1e-3; the floor only guards all-zero outputs.
RTOL = 1e-4
ATOL_FLOOR = 1e-7
# ONNX Runtime sums in other orders than PyTorch (blocked layouts, other GEMM kernels): on a model that amplifies
# rounding its float32 error can be a few times PyTorch's own. See ``onnx_max_abs_diff``.
ROUNDING_ALLOWANCE = 4
# Threads of both runtimes during the parity check: one, so that the order of every sum, and so the rounding the
# tolerance is compared with, is the same whatever thread count a benchmark or an earlier test left behind.
PARITY_THREADS = 1


def cache_dir() -> Path:
    """Where exported models and cached counts live: ``$CONVBENCH_CACHE`` or ``~/.cache/convbench``."""
    return cache_root()


@dataclass
class ExportResult:
    """An exported, verified ONNX model."""

    path: Path
    model: str
    input_shape: tuple[int, ...]
    exporter: str
    opset: int
    max_abs_diff: float
    tolerance: float
    export_seconds: float
    cached: bool

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def library_versions(exporter: str | None = None) -> dict[str, str]:
    """Versions of the libraries that shape an exported graph or a count (convbench's own code is keyed by its
    source instead: ``export_code_digest``, ``convbench.counting.macs.count_code_digest``)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["torch", "torchvision", "onnx", "fvcore"] + (["onnxscript"] if exporter == "dynamo" else [])
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = ""
    return found


def export_code_digest() -> str:
    """Hash of the code that writes and verifies an export: this module's source."""
    return source_digest("export.py")


def model_cache_key(model: ResolvedModel, input_shape: tuple[int, ...], **extra: object) -> str:
    """One key for every artefact derived from a model: its sources, arguments, weights and the shape."""
    payload = json.dumps(
        {
            "model": model.spec.source,
            "digest": model.digest,
            "args": model.effective_args,
            "weights": model.weights_digest,
            "shape": list(input_shape),
            "seed": DEFAULT_SEED,
            **extra,
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    import onnx
    import torch

    # Both exporters print progress and warnings of their own; the CLI shows its own progress instead.
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=exporter == "dynamo",
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
        )
    # Fold external weights back into one file, so the model is self-contained.
    proto = onnx.load(str(path), load_external_data=True)
    for extra in path.parent.glob(path.name + "*.data"):
        extra.unlink()
    onnx.save_model(proto, str(path), save_as_external_data=False)


def parity_tolerance(reference_max_abs: float) -> float:
    return RTOL * reference_max_abs + ATOL_FLOOR


RANDOM_OPS = ("RandomNormalLike", "RandomNormal", "RandomUniformLike", "RandomUniform")


def _with_random_inputs(path: Path) -> tuple[bytes, list[str]]:
    """The graph with every random node's output turned into a graph input (in execution order), so a parity
    check can feed both runtimes the same random values."""
    import onnx

    proto = onnx.load(str(path))
    names = []
    for node in [n for n in proto.graph.node if n.op_type in RANDOM_OPS]:
        proto.graph.node.remove(node)
        proto.graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
        names.append(node.output[0])
    return proto.SerializeToString(), names


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run the block with torch's intra-op pool at ``threads``, then restore what the caller had."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def onnx_max_abs_diff(
    path: Path, module: torch.nn.Module, example: torch.Tensor, stochastic: bool = False
) -> tuple[float, float]:
    """Run ``path`` in ONNX Runtime and ``module`` in PyTorch on ``example``; (max |diff|, tolerance).

    The tolerance is relative to the output's scale (``parity_tolerance``). Where that fails, PyTorch's own
    float32 rounding error on this model is measured against the same model in float64 and the tolerance
    grows by ``ROUNDING_ALLOWANCE`` times it: some randomly initialised networks (MobileNetV2 with dynamic
    convolutions) amplify rounding so much that two correct float32 implementations differ by 1e-2. An export
    at most three times as far from the exact result as PyTorch's float32 is then passes (by the triangle
    inequality it is within four times that error of PyTorch's output); a wrong graph, whose error does not
    shrink with the rounding, still fails.

    A ``stochastic`` model (random by design, e.g. random channel selection) is checked value by value too: the
    random values PyTorch draws are recorded and fed to the ONNX graph in place of its random nodes. Where the
    two do not line up (a different number of random draws), only shape and finiteness are checked (NaN).
    """
    import numpy as np
    import torch

    from convbench.runtimes import reference_session

    draws: list[torch.Tensor] = []
    feeds: dict[str, np.ndarray] = {}
    model: str | bytes = str(path)
    randn = torch.randn
    if stochastic:

        def recording_randn(*args: object, **kwargs: object) -> torch.Tensor:
            draws.append(randn(*args, **kwargs))
            return draws[-1]

        torch.randn = recording_randn  # type: ignore[assignment]
    try:
        with torch.inference_mode(), _torch_threads(PARITY_THREADS):
            torch_out = module(example).numpy()
    finally:
        torch.randn = randn  # type: ignore[assignment]
    if stochastic:
        graph, names = _with_random_inputs(path)
        if len(names) == len(draws) and names:
            model, feeds = graph, {n: d.numpy() for n, d in zip(names, draws, strict=True)}
            stochastic = False
    # Both runtimes' sums are split over their threads, so their rounding (and the allowance measured from it)
    # would depend on how many threads earlier code left set; one thread on each side makes the check repeatable.
    (onnx_out,) = reference_session(model, PARITY_THREADS)(example.numpy(), feeds)
    if onnx_out.shape != torch_out.shape:
        raise ConvbenchError(f"ONNX output shape {onnx_out.shape} differs from PyTorch's {torch_out.shape}")
    if not np.isfinite(onnx_out).all():
        raise ConvbenchError("ONNX Runtime produced non-finite outputs")
    if stochastic:
        return float("nan"), float("nan")
    diff = float(np.max(np.abs(onnx_out.astype(np.float64) - torch_out)))
    tolerance = parity_tolerance(float(np.max(np.abs(torch_out))))
    if diff > tolerance and not draws:
        tolerance += ROUNDING_ALLOWANCE * _float32_rounding_error(module, example, torch_out)
    return diff, tolerance


def _float32_rounding_error(module: torch.nn.Module, example: torch.Tensor, out32: np.ndarray) -> float:
    """max |float32 output − float64 output| of ``module``: how much the model itself amplifies rounding."""
    import copy

    import numpy as np
    import torch

    try:
        exact = copy.deepcopy(module).double()
        with torch.inference_mode(), _torch_threads(PARITY_THREADS):
            out64 = exact(example.double()).numpy()
    except (RuntimeError, TypeError):  # a model that cannot run in float64 gets no allowance
        return 0.0
    return float(np.max(np.abs(out64 - out32)))


def _valid_cached(directory: Path, note: bool = True) -> ExportResult | None:
    """The entry in ``directory``, or None where it is missing or damaged (a one-line note says which)."""
    import onnx

    if not directory.is_dir():
        return None
    meta_path = directory / "export.json"
    model_path = directory / "model.onnx"
    try:
        meta = json.loads(meta_path.read_text())
        size = meta.pop("onnx_bytes", None)
        if model_path.stat().st_size != size:  # a protobuf cut at a field boundary can still parse
            raise ValueError(f"model.onnx has {model_path.stat().st_size} bytes, the export wrote {size}")
        onnx.checker.check_model(str(model_path))
        meta["path"] = model_path
        meta["input_shape"] = tuple(meta["input_shape"])
        meta["cached"] = True
        return ExportResult(**meta)
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        onnx.checker.ValidationError,
        onnx.onnx_cpp2py_export.checker.ValidationError,
    ) as exc:
        if note:
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            print(f"note: cached export {directory} is damaged ({reason}); exporting it again", file=sys.stderr)
        return None


def export_onnx(
    model: str | ModelSpec | ResolvedModel,
    *,
    batch_size: int = 1,
    resolution: int | None = None,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    output: Path | None = None,
    use_cache: bool = True,
) -> ExportResult:
    """Export a model to ONNX (cached) and verify it against PyTorch.

    ``model`` is a registered name, a spec or a resolved model (builder arguments and weights come with the
    spec). With ``output`` the verified model is also copied there (atomically).
    """
    if exporter not in EXPORTERS:
        raise UserInputError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    if resolution is not None and resolution < 8:
        raise UserInputError(f"resolution must be at least 8 pixels, got {resolution}")
    resolved = model if isinstance(model, ResolvedModel) else resolve_model(model, resolution=resolution)
    shape = resolved.input_shape(batch_size, resolution)
    if output is not None:
        check_writable(output)
    if resolved.is_onnx:
        raise UserInputError(f"{resolved.name} is already an ONNX file; nothing to export")

    key = model_cache_key(
        resolved,
        shape,
        exporter=exporter,
        opset=opset,
        versions=library_versions(exporter),
        code=export_code_digest(),
    )
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in resolved.spec.source)[-60:]
    directory = cache_dir() / "onnx" / f"{safe}-b{shape[0]}-r{shape[-1]}-{exporter}-{key}"
    result = _valid_cached(directory) if use_cache else None
    if result is None:
        result = _export_to_cache(resolved, shape, exporter, opset, directory, replace=not use_cache)
    if output is not None:
        _atomic_copy(result.path, output)
        result.path = output
    return result


def export_for_runtime(model: ResolvedModel, settings: RunSettings) -> ExportResult:
    """The ONNX file a runtime should load: the verified export, or the user's own ONNX file as given (refused
    in one line where it is fixed to another batch size than the run's)."""
    if model.is_onnx:
        assert model.onnx_path is not None
        from convbench.models.sources import check_onnx_batch

        check_onnx_batch(model.onnx_path, settings.batch_size)
        return ExportResult(
            path=model.onnx_path,
            model=model.name,
            input_shape=settings.input_shape,
            exporter="file",
            opset=_opset_of(model.onnx_path),
            max_abs_diff=float("nan"),
            tolerance=float("nan"),
            export_seconds=0.0,
            cached=True,
        )
    return export_onnx(
        model, batch_size=settings.batch_size, resolution=settings.input_shape[-1], exporter=settings.exporter
    )


def _opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _export_to_cache(
    model: ResolvedModel, shape: tuple[int, ...], exporter: str, opset: int, directory: Path, replace: bool = False
) -> ExportResult:
    from convbench.models.inputs import seeded_tensor

    module = model.build(resolution=shape[-1])
    example = seeded_tensor(shape)
    parent = writable_directory(directory.parent)
    # Built in a private folder beside the entry, so the final rename stays on one filesystem (atomic).
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide a shared cache's entry from others
    try:
        start = time.perf_counter()
        try:
            _export(module, example, staging / "model.onnx", exporter, opset)
        except Exception as exc:  # exporters raise many types; the user needs the one-line reason
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConvbenchError(f"ONNX export of {model.name} with the {exporter} exporter failed: {reason}") from exc
        seconds = time.perf_counter() - start
        diff, tolerance = onnx_max_abs_diff(staging / "model.onnx", module, example, model.stochastic)
        unverifiable = model.stochastic and diff != diff  # random draws that could not be lined up: NaN
        if not unverifiable and not diff <= tolerance:  # also catches NaN
            raise ConvbenchError(
                f"ONNX output of {model.name} differs from PyTorch by {diff:.3g} (tolerance {tolerance:.3g}); "
                "the export is not faithful"
            )
        result = ExportResult(
            path=directory / "model.onnx",
            model=model.name,
            input_shape=shape,
            exporter=exporter,
            opset=opset,
            max_abs_diff=diff,
            tolerance=tolerance,
            export_seconds=seconds,
            cached=False,
        )
        meta = result.to_json()
        for key in ("path", "cached"):
            meta.pop(key)
        meta["onnx_bytes"] = (staging / "model.onnx").stat().st_size
        (staging / "export.json").write_text(json.dumps(meta, indent=2))
        _fsync_tree(staging)
        return _install(staging, directory, result, replace)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    # The files are on disk before the folder gets its public name; a crash never leaves a named half entry.
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _install(staging: Path, directory: Path, result: ExportResult, replace: bool = False) -> ExportResult:
    """Rename ``staging`` to ``directory`` unless another process got there first with a complete entry.

    Installs take turns on a lock beside the entry, so a complete entry is replaced only when asked (``replace``:
    an export made with the cache off): a process that lost the race keeps the winner's entry and discards its
    own. An entry that goes is moved aside (renamed, then removed), never deleted in place, so nobody's open file
    disappears half-read.
    """
    with locked(directory):
        theirs = None if replace else _valid_cached(directory, note=False)
        if theirs is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return theirs
        if directory.exists():
            aside = directory.with_name(f".damaged-{uuid.uuid4().hex[:8]}-{directory.name}")
            os.rename(directory, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(staging, directory)
        except OSError as exc:
            raise ConvbenchError(f"cannot write the export cache entry {directory}: {exc.strerror or exc}") from None
    return result


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
