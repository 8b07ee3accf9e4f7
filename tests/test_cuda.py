"""The CUDA runtime; skipped (with the reason) where no GPU is present."""

import pytest
import torch

from convbench.benchmark import BenchmarkConfig, benchmark
from convbench.measure import TimingSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
FAST = TimingSettings(warmup=2, warmup_time=0, runs=5, min_time=0)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_runtime_times_with_events(cuda_graphs):
    config = BenchmarkConfig(device="cuda", cuda_graphs=cuda_graphs, timing=FAST)
    rows = benchmark(["resnet18-cifar10", "resnet18-mod-cifar10"], config)
    assert rows[0]["runtime"] == "torch" and rows[0]["gpu"]
    assert rows[1]["cuda_graphs"] == cuda_graphs and rows[1]["tf32"] is False
    assert all(r["median_ms"] > 0 for r in rows)


def test_cuda_options_fp16_channels_last():
    config = BenchmarkConfig(device="cuda", precision="fp16", channels_last=True, timing=FAST)
    rows = benchmark(["resnet18-cifar10"], config)
    assert rows[0]["precision"] == "fp16" and rows[0]["channels_last"] is True
