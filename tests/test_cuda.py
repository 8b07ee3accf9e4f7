"""The CUDA runtime; skipped (with the reason) where no GPU is present."""

import pytest
import torch

from convbench.benchmark import benchmark, config_from_mapping

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
FAST = {"warmup": 2, "warmup_time": 0, "runs": 5, "min_time": 0, "trials": 2, "isolate": "session"}


@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_runtime_times_with_events(cuda_graphs):
    config = config_from_mapping({"device": "cuda", "cuda_graphs": cuda_graphs, **FAST})
    assert config.runtime_name == "torch"
    rows = benchmark(["resnet18-cifar10", "resnet18-mod-cifar10"], config)
    assert rows[0]["runtime"] == "torch" and rows[0]["gpu"]
    assert rows[1]["cuda_graphs"] is cuda_graphs and rows[1]["tf32"] is False
    assert rows[1]["cuda_graph_capture"] == ("manual" if cuda_graphs else "")
    assert all(r["median_ms"] > 0 and r["trials"] == 2 for r in rows)
    assert rows[1]["speedup_low"] <= rows[1]["speedup"] <= rows[1]["speedup_high"]


@needs_cuda
def test_cuda_options_fp16_channels_last():
    config = config_from_mapping({"device": "cuda", "precision": "fp16", "channels_last": True, **FAST})
    rows = benchmark(["resnet18-cifar10"], config)
    assert rows[0]["precision"] == "fp16" and rows[0]["weights_dtype"] == "float16"
    assert rows[0]["channels_last"] is True


def test_cuda_runtime_refuses_an_unknown_precision():  # checked before any GPU is needed
    from convbench.errors import UserInputError

    with pytest.raises(UserInputError, match="--precision int8 is not supported by runtime torch on cuda"):
        config_from_mapping({"device": "cuda", "precision": "int8"})
