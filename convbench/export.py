"""ONNX export with a cache and a parity check against PyTorch.

Models are exported once per (model, overrides, input shape, exporter, opset, library versions) into a user
cache directory (``$CONVBENCH_CACHE`` or ``~/.cache/convbench``), never into the repository. Every export
is verified: ONNX Runtime and PyTorch run the same input and the largest absolute difference is recorded;
above the tolerance the export fails with a clear message.

The default exporter is ``torch.onnx.export(..., dynamo=True)``, the exporter PyTorch supports going
forward; it writes weights to a ``.onnx.data`` file, which we fold back into one self-contained ``.onnx``
file (all models here are far below protobuf's 2 GB limit), so a cached or copied model is one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch

import convbench
from convbench.errors import ConvbenchError, UserInputError
from convbench.models.registry import DEFAULT_SEED, create_model, get_entry
from convbench.results import check_writable, current_umask

Exporter = Literal["dynamo", "torchscript"]
EXPORTERS: tuple[str, ...] = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
# Parity: |onnx - torch| <= ATOL + RTOL * max|torch|. Random-weight networks have outputs of very different
# scales, so the tolerance is relative to the output's magnitude.
ATOL = 1e-4
RTOL = 1e-4


def cache_dir() -> Path:
    """Where exported models live: ``$CONVBENCH_CACHE`` or ``~/.cache/convbench``."""
    if os.environ.get("CONVBENCH_CACHE"):
        return Path(os.environ["CONVBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convbench"


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


def _source_digest(model: str) -> str:
    """Hash of the model's family module and of the registry (which initialises the weights), so editing
    either invalidates cached exports."""
    modules = [sys.modules[get_entry(model).builder.__module__], sys.modules[create_model.__module__]]
    return hashlib.sha256("".join(inspect.getsource(m) for m in modules).encode()).hexdigest()[:12]


def _cache_key(model: str, input_shape: tuple[int, ...], exporter: str, opset: int, overrides: dict) -> str:
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "convbench": convbench.__version__,
                "source": _source_digest(model)}
    if exporter == "dynamo":
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    payload = json.dumps(
        {"model": model, "shape": input_shape, "exporter": exporter, "opset": opset, "seed": DEFAULT_SEED,
         "overrides": {k: repr(v) for k, v in sorted(overrides.items())}, "versions": versions},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    # Both exporters print progress and warnings of their own; the CLI shows its own progress instead.
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=opset,
                              input_names=["input"], output_names=["logits"], verbose=False)
        else:
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"])
    # Fold external weights back into one file, so the model is self-contained.
    proto = onnx.load(str(path), load_external_data=True)
    for extra in path.parent.glob(path.name + "*.data"):
        extra.unlink()
    onnx.save_model(proto, str(path), save_as_external_data=False)


def onnx_max_abs_diff(
    path: Path, module: torch.nn.Module, example: torch.Tensor, stochastic: bool = False
) -> tuple[float, float]:
    """Run ``path`` in ONNX Runtime and ``module`` in PyTorch on ``example``; (max |diff|, tolerance).

    For a ``stochastic`` model only shape and finiteness can be checked; the difference is NaN.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with torch.inference_mode():
        torch_out = module(example).numpy()
    if onnx_out.shape != torch_out.shape:
        raise ConvbenchError(f"ONNX output shape {onnx_out.shape} differs from PyTorch's {torch_out.shape}")
    if not np.isfinite(onnx_out).all():
        raise ConvbenchError("ONNX Runtime produced non-finite outputs")
    if stochastic:
        return float("nan"), float("nan")
    diff = float(np.max(np.abs(onnx_out.astype(np.float64) - torch_out)))
    tolerance = ATOL + RTOL * float(np.max(np.abs(torch_out)))
    return diff, tolerance


def _valid_cached(directory: Path) -> ExportResult | None:
    meta_path = directory / "export.json"
    model_path = directory / "model.onnx"
    try:
        meta = json.loads(meta_path.read_text())
        onnx.checker.check_model(str(model_path))
    except (OSError, ValueError, onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError):
        return None  # missing or corrupted: export again
    meta["path"] = model_path
    meta["input_shape"] = tuple(meta["input_shape"])
    meta["cached"] = True
    return ExportResult(**meta)


def export_onnx(
    model: str,
    *,
    batch_size: int = 1,
    resolution: int | None = None,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    output: Path | None = None,
    use_cache: bool = True,
    **overrides: object,
) -> ExportResult:
    """Export a registered model to ONNX (cached) and verify it against PyTorch.

    With ``output`` the verified model is also copied there (atomically).
    """
    if exporter not in EXPORTERS:
        raise UserInputError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    entry = get_entry(model)
    channels, height, width = entry.input_size
    if resolution is not None:
        if resolution < 8:
            raise UserInputError(f"resolution must be at least 8 pixels, got {resolution}")
        height = width = resolution
    shape = (batch_size, channels, height, width)
    if output is not None:
        check_writable(output)

    key = _cache_key(model, shape, exporter, opset, overrides)
    directory = cache_dir() / "onnx" / f"{model}-b{batch_size}-r{height}-{exporter}-{key}"
    result = _valid_cached(directory) if use_cache else None
    if result is None:
        result = _export_to_cache(model, shape, exporter, opset, directory, overrides)
    if output is not None:
        _atomic_copy(result.path, output)
        result.path = output
    return result


def _export_to_cache(
    model: str, shape: tuple[int, ...], exporter: str, opset: int, directory: Path, overrides: dict
) -> ExportResult:
    module = create_model(model, **overrides)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(DEFAULT_SEED))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=directory.parent))
    try:
        start = time.perf_counter()
        try:
            _export(module, example, staging / "model.onnx", exporter, opset)
        except Exception as exc:  # exporters raise many types; the user needs the one-line reason
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConvbenchError(f"ONNX export of {model} with the {exporter} exporter failed: {reason}") from exc
        seconds = time.perf_counter() - start
        entry = get_entry(model)
        diff, tolerance = onnx_max_abs_diff(staging / "model.onnx", module, example, entry.stochastic)
        if not entry.stochastic and not diff <= tolerance:  # also catches NaN
            raise ConvbenchError(
                f"ONNX output of {model} differs from PyTorch by {diff:.3g} (tolerance {tolerance:.3g}); "
                "the export is not faithful"
            )
        result = ExportResult(
            path=directory / "model.onnx", model=model, input_shape=shape, exporter=exporter, opset=opset,
            max_abs_diff=diff, tolerance=tolerance, export_seconds=seconds, cached=False,
        )
        meta = result.to_json()
        for key in ("path", "cached"):
            meta.pop(key)
        (staging / "export.json").write_text(json.dumps(meta, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
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
