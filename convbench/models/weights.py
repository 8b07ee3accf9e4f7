"""Loading trained weights into a built model (``--weights FILE``), strictly and safely.

Accepted files: a plain state dict (``torch.save(model.state_dict(), path)``); a training checkpoint that
holds one under ``state_dict``, ``model_state_dict`` or ``model`` (the layouts of timm's and torchvision's
reference training scripts and of the PyTorch tutorial "Saving and Loading Models"); and ``.safetensors``
files when the ``safetensors`` package is installed. ``module.`` prefixes written by ``DataParallel`` /
``DistributedDataParallel`` and ``_orig_mod.`` prefixes written by ``torch.compile`` are removed.

Files are read with ``torch.load(..., weights_only=True)``: unpickling runs no code from the file (PyTorch
documentation, "torch.load" and "Serialization semantics"), so a downloaded checkpoint cannot execute
anything. Loading is strict: a key the model lacks, a key the file lacks or a shape that differs is an error
that lists them, never a partly loaded model that would report the accuracy of random weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")
LISTED_KEYS = 4
# BatchNorm's update counter: absent from checkpoints saved before PyTorch 0.4.1 and unused in eval mode.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def weights_digest(path: Path) -> str:
    """sha256 of the weights file (first 16 hex digits); it keys every cached export of the weights."""
    from convbench.models.sources import file_digest

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"weights file {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        return file_digest(path)
    except OSError as exc:
        raise UserInputError(f"cannot read weights file {path}: {exc.strerror or exc}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip() if text else type(exc).__name__


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (see the module docstring for the layouts), prefixes removed."""
    path = Path(path).expanduser()
    weights_digest(path)  # the same one-line errors for a missing or unreadable file
    if path.suffix.lower() == ".safetensors":
        loaded: Any = _read_safetensors(path)
    else:
        loaded = _read_torch(path)
    state = _find_state_dict(loaded, path)
    return _strip_prefixes(state)


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UserInputError(f"reading {path.name} needs the safetensors package (pip install safetensors)") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError for a damaged header
        raise UserInputError(f"{path} is not a readable safetensors file: {_one_line(exc)}") from None


def _read_torch(path: Path) -> Any:
    import argparse

    import torch

    try:
        # Training scripts (timm's train.py, torchvision's references) store their argparse.Namespace next to
        # the weights; it only holds attributes, so it is allowed without trusting the file.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if refused:
            raise UserInputError(
                f"{path} holds a Python object ({refused.group(1)}) that loading without trusting the file "
                "refuses; save only the weights: torch.save(model.state_dict(), path)"
            ) from None
        raise UserInputError(f"{path} is not a PyTorch checkpoint or state dict: {_one_line(exc)}") from None


def _is_tensor_dict(value: Any) -> bool:
    import torch

    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _find_state_dict(loaded: Any, path: Path) -> dict[str, Any]:
    if _is_tensor_dict(loaded):
        return dict(loaded)
    if isinstance(loaded, Mapping):
        for key in CHECKPOINT_KEYS:
            if _is_tensor_dict(loaded.get(key)):
                return dict(loaded[key])
        keys = ", ".join(map(str, list(loaded)[:8])) or "none"
        raise UserInputError(
            f"{path} holds no state dict: expected tensors by name, or one under "
            f"{' / '.join(CHECKPOINT_KEYS)}; its keys: {keys}"
        )
    raise UserInputError(f"{path} holds a {type(loaded).__name__}, not a state dict")


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    changed = True
    while changed:  # DataParallel inside torch.compile (or the reverse) stacks prefixes
        changed = False
        for prefix in PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f", ... ({len(keys) - LISTED_KEYS} more)" if len(keys) > LISTED_KEYS else "")


def _shape(t: Any) -> str:
    return "×".join(map(str, t.shape)) or "scalar"


def check_fit(module: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    """A UserInputError listing what does not fit, in one line; nothing when everything does."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {_shape(state[k])}, model {_shape(expected[k])})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_listed(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} with another shape: {_listed(mismatched)}")
    if problems:
        raise UserInputError(
            f"weights in {Path(path).name} do not fit {type(module).__name__} "
            f"({len(expected)} tensors in the model, {len(state)} in the file): {'; '.join(problems)}"
        )


def load_weights(module: nn.Module, path: Path) -> nn.Module:
    """Load the weights in ``path`` into ``module`` strictly; returns the module."""
    path = Path(path)
    state = read_state_dict(path)
    check_fit(module, state, path)
    expected = module.state_dict()
    # The counters check_fit lets pass keep the model's own value.
    state = {**{k: v for k, v in expected.items() if k not in state}, **state}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied; check_fit caught keys and shapes
        raise UserInputError(f"weights in {path.name} do not load: {_one_line(exc)}") from None
    return module
