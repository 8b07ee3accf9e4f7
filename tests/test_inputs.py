"""models.inputs: one seeded input batch for counting, export and every runtime."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from convbench.errors import ConvbenchError, UserInputError
from convbench.models.inputs import seeded_input

SHAPE = (2, 3, 8, 8)


class Recorder(nn.Module):
    """Remembers the last input it was called on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen: list[np.ndarray] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().numpy().copy())
        return self.conv(x)


def _resolved(module: nn.Module) -> Any:
    return SimpleNamespace(name="recorder", build=lambda resolution=None: module, stochastic=False)


def test_torch_onnx_runtimes_export_and_counting_see_the_same_values(monkeypatch, tmp_path) -> None:
    """Catches one of them drawing its own input (e.g. torch.randn beside numpy's generator): the torch and
    ONNX runtimes would then time, and the export be checked on, different data."""
    import convbench.export as export
    from convbench.counting.macs import count_module
    from convbench.runtimes.base import RunSettings, SetupPhases
    from convbench.runtimes.onnxruntime import random_feeds
    from convbench.runtimes.torch_cpu import build_module_and_input

    expected = seeded_input(SHAPE)
    _, x = build_module_and_input(_resolved(Recorder()), RunSettings("cpu", 1, SHAPE), SetupPhases())
    np.testing.assert_array_equal(x.numpy(), expected)

    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="input", type="tensor(float)")])
    np.testing.assert_array_equal(random_feeds(session, SHAPE)["input"], expected)

    counted = Recorder()
    count_module(counted, SHAPE)
    np.testing.assert_array_equal(counted.seen[0], expected)

    exported: list[np.ndarray] = []

    def record(module: nn.Module, example: torch.Tensor, *args: object) -> None:
        exported.append(example.numpy().copy())
        raise RuntimeError("recorded")

    monkeypatch.setattr(export, "_export", record)
    with pytest.raises(ConvbenchError, match="recorded"):
        export._export_to_cache(_resolved(Recorder()), SHAPE, "dynamo", 18, tmp_path / "entry")
    np.testing.assert_array_equal(exported[0], expected)


def test_each_element_type_gets_values_it_can_hold() -> None:
    """Catches drawing float16 directly (other values than the float32 feed), integers outside 0..255 or the
    type's range, and an unsupported type passing silently."""
    np.testing.assert_array_equal(seeded_input(SHAPE, "float16"), seeded_input(SHAPE).astype(np.float16))
    pixels = seeded_input((4096,), "uint8")
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    small = seeded_input((4096,), "int8")
    assert small.min() >= 0 and small.max() == 127
    assert seeded_input((4096,), "bool").mean() == pytest.approx(0.5, abs=0.05)
    with pytest.raises(UserInputError, match="cannot feed a complex64 input"):
        seeded_input(SHAPE, "complex64")
