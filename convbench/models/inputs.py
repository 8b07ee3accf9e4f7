"""The input batch every model is run on: one seeded draw, shared by counting, export, its parity check and every
runtime, so the same model sees the same data whichever of them runs it.

It is drawn with numpy, which every runtime has, and handed to PyTorch as a tensor over the same memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.models.registry import DEFAULT_SEED

if TYPE_CHECKING:
    import numpy as np
    import torch


def seeded_input(shape: tuple[int, ...], dtype: Any = "float32") -> np.ndarray:
    """The seeded input of ``shape`` in ``dtype`` (any numpy type name or dtype).

    Floats are standard normal (in float32, then cast, so a float16 input holds the float32 input's values);
    integers are uniform over 0..255 clipped to the type (image-like: a uint8 input takes pixel values); bools
    are fair coin flips. Any other type is a one-line user error.
    """
    import numpy as np

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(DEFAULT_SEED)
    if dtype.kind == "f":
        return rng.standard_normal(shape, np.float32).astype(dtype, copy=False)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, 0), min(info.max, 255), size=shape, endpoint=True, dtype=dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise UserInputError(f"cannot feed a {dtype} input; convbench feeds float, integer or bool tensors")


def seeded_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """``seeded_input(shape)`` as a float32 PyTorch tensor on the CPU: the same values the ONNX runtimes get."""
    import torch

    return torch.from_numpy(seeded_input(shape))
