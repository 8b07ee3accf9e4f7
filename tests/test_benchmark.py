"""benchmark() and sweep(): rows, out-of-memory handling, configuration checks."""

import pytest

from convbench.benchmark import BenchmarkConfig, benchmark, is_out_of_memory, sweep
from convbench.errors import UserInputError
from convbench.measure import TimingSettings
from convbench.runtimes.torch_cpu import TorchCPU

FAST = TimingSettings(warmup=0, warmup_time=0, runs=3, min_time=0, block=1)


def test_sweep_gives_one_row_per_model_and_combination():
    samples = []
    config = BenchmarkConfig(runtime="torch", threads=1, timing=FAST)
    rows = sweep(["resnet18-cifar10", "vgg16-bn-cifar10"], config, [1, 2], [None, 48], samples=samples)
    assert [(r["model"], r["batch_size"], r["resolution"]) for r in rows] == [
        ("resnet18-cifar10", 1, 32), ("vgg16-bn-cifar10", 1, 32), ("resnet18-cifar10", 1, 48),
        ("vgg16-bn-cifar10", 1, 48), ("resnet18-cifar10", 2, 32), ("vgg16-bn-cifar10", 2, 32),
        ("resnet18-cifar10", 2, 48), ("vgg16-bn-cifar10", 2, 48),
    ]
    assert len(samples) == 8 and all(len(s["samples_ms"]) >= 3 for s in samples)
    assert all(r["median_low_ms"] <= r["median_ms"] <= r["median_high_ms"] for r in rows)
    assert rows[1]["baseline"] == "resnet18-cifar10" and rows[1]["verdict"] in ("faster", "slower",
                                                                              "no significant difference")


def test_out_of_memory_becomes_a_row_error_and_the_others_still_run(monkeypatch):
    original = TorchCPU.prepare

    def prepare(self, model, options):
        if model == "vgg16-bn-cifar10" and options.batch_size > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, model, options)

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    config = BenchmarkConfig(runtime="torch", threads=1, timing=FAST)
    rows = sweep(["resnet18-cifar10", "vgg16-bn-cifar10"], config, [1, 2], [None])
    errors = [(r["model"], r["batch_size"]) for r in rows if r.get("error")]
    assert errors == [("vgg16-bn-cifar10", 2)]
    assert "out of memory at batch size 2" in rows[3]["error"]
    assert rows[2]["median_ms"] > 0


def test_other_errors_are_not_swallowed(monkeypatch):
    def prepare(self, model, options):
        raise ValueError("a bug")

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    with pytest.raises(ValueError):
        benchmark(["resnet18-cifar10"], BenchmarkConfig(runtime="torch", timing=FAST))


def test_out_of_memory_wordings():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BenchmarkConfig(precision="fp16"), "cuda only"),
        (BenchmarkConfig(cuda_graphs=True), "cuda only"),
        (BenchmarkConfig(tf32=True), "cuda only"),
        (BenchmarkConfig(compile=True), "--runtime torch only"),
        (BenchmarkConfig(channels_last=True, runtime="onnxruntime"), "--runtime torch only"),
        (BenchmarkConfig(precision="int8"), "unknown precision"),
        (BenchmarkConfig(mod_impl="nope"), "unknown MoD implementation"),
    ],
)
def test_impossible_configurations_are_user_errors(config, message):
    with pytest.raises(UserInputError, match=message):
        config.validate()


def test_thread_budget_is_applied_to_torch_and_recorded():
    import torch

    rows = benchmark(["resnet18-cifar10"], BenchmarkConfig(runtime="torch", threads=1, timing=FAST))
    assert torch.get_num_threads() == 1
    assert rows[0]["intra_op_threads"] == 1 and rows[0]["threads"] == 1


def test_a_model_that_cannot_run_at_a_resolution_is_a_clear_error():
    from convbench.errors import ConvbenchError

    with pytest.raises(ConvbenchError, match="vgg16-bn-cifar10 cannot run at batch 1, resolution 16"):
        benchmark(["vgg16-bn-cifar10"], BenchmarkConfig(runtime="torch", resolution=16, timing=FAST))
