"""The CUDA runtime; skipped (with the reason) where no GPU is present."""

import pytest
import torch

from convbench.benchmark import benchmark, config_from_mapping

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
FAST = {"warmup": 2, "warmup_time": 0, "runs": 5, "min_time": 0, "trials": 2, "isolate": "session"}


def _measured(row, column):
    """The row's value where the run measured one (a number above 0), else None."""
    value = row.get(column)
    return value if isinstance(value, int | float) and value == value and value > 0 else None


@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_the_model_is_placed_on_the_gpu_and_captured_only_with_graphs(cuda_graphs):
    """Catches a model left on the host (no GPU memory allocated by its setup) and --cuda-graphs recorded in the
    row while no capture ran, or a capture without it: the capture phase is timed only when it runs."""
    config = config_from_mapping({"device": "cuda", "cuda_graphs": cuda_graphs, **FAST})
    rows = benchmark(["resnet18-cifar10", "resnet18-mod-cifar10"], config)
    for row in rows:
        assert _measured(row, "cuda_model_mb"), row["model"]
        assert (_measured(row, "setup_capture_ms") is not None) is cuda_graphs, row["model"]


@needs_cuda
def test_fp16_halves_the_weights_on_the_gpu():
    """Catches --precision fp16 recorded in the row while the weights stay float32 on the GPU: the memory the
    setup allocates (weights, BatchNorm buffers, the input) halves. channels_last takes the same path."""
    allocated = {}
    for precision in ("fp32", "fp16"):
        config = config_from_mapping({"device": "cuda", "precision": precision, "channels_last": True, **FAST})
        (row,) = benchmark(["resnet18-cifar10"], config)
        allocated[precision] = _measured(row, "cuda_model_mb")
    assert allocated["fp32"] and 0.45 < allocated["fp16"] / allocated["fp32"] < 0.55, allocated


def test_cuda_runtime_refuses_an_unknown_precision():  # checked before any GPU is needed
    from convbench.errors import UserInputError

    with pytest.raises(UserInputError, match="--precision int8 is not supported by runtime torch on cuda"):
        config_from_mapping({"device": "cuda", "precision": "int8"})
