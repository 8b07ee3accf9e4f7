"""benchmark() and sweep(): rows, trials, verdicts, out-of-memory handling, configuration checks."""

import json
import math
import random
from dataclasses import replace

import pytest

from convbench.benchmark import BenchmarkConfig, benchmark, config_from_mapping, sweep
from convbench.errors import ConvbenchError, UserInputError
from convbench.models import get_entry
from convbench.models.spec import ModelSpec
from convbench.runtimes import runtime_class
from convbench.runtimes.base import PreparedModel
from convbench.runtimes.torch_cpu import TorchCPU
from convbench.timing.measure import TimingSettings

FAST = TimingSettings(warmup=1, warmup_time=0, runs=3, min_time=0, block=1)
CONFIG = BenchmarkConfig(runtime="torch", threads=1, isolate="session", trials=2, timing=FAST)


class FixedLatency(PreparedModel):
    """Latencies drawn around a fixed value: a model whose speed is known."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.rng = random.Random(seconds)

    def timed_run(self):
        return self.seconds * (1 + 0.01 * self.rng.random())


def test_sweep_gives_one_row_per_model_and_combination(monkeypatch):
    # Models of known speed (counting stays real): this checks what the sweep prepares, in which order, and what
    # every row and sample record says; test_out_of_memory_... below sweeps with the real runtime.
    prepared = []

    def prepare(self, model, settings, options):
        prepared.append((model.name, settings.input_shape))
        return FixedLatency(0.002 if model.name == "resnet18-cifar10" else 0.001)

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    samples = []
    config = replace(CONFIG, batch_size=(1, 2), resolution=(32, 48))
    rows = sweep(["resnet18-cifar10", "vgg16-bn-cifar10"], config, samples=samples)
    assert [(r["model"], r["batch_size"], r["resolution"]) for r in rows] == [
        ("resnet18-cifar10", 1, 32),
        ("vgg16-bn-cifar10", 1, 32),
        ("resnet18-cifar10", 1, 48),
        ("vgg16-bn-cifar10", 1, 48),
        ("resnet18-cifar10", 2, 32),
        ("vgg16-bn-cifar10", 2, 32),
        ("resnet18-cifar10", 2, 48),
        ("vgg16-bn-cifar10", 2, 48),
    ]
    # Each model prepared afresh in each of the 2 trials, with the combination's input shape.
    assert sorted(prepared) == sorted(
        (m, (b, 3, r, r))
        for b in (1, 2)
        for r in (32, 48)
        for m in ("resnet18-cifar10", "vgg16-bn-cifar10")
        for _ in range(2)
    )
    # One record of raw latencies per model, combination and trial.
    assert len(samples) == 8 * 2 and sorted({s["trial"] for s in samples}) == [0, 1]
    assert all(len(s["samples_ms"]) >= 3 for s in samples)
    assert all(r["trials"] == 2 and r["n_runs"] >= 2 * 3 for r in rows)
    assert all(r["median_low_ms"] <= r["median_ms"] <= r["median_high_ms"] for r in rows)
    assert len({r["run_id"] for r in rows}) == 4  # one run per combination, each with its own id
    # MACs counted at each combination's resolution (batch 1)
    assert rows[2]["gmacs"] == pytest.approx(rows[0]["gmacs"] * 48**2 / 32**2, rel=0.02)
    assert rows[4]["gmacs"] == rows[0]["gmacs"]
    for r in rows[1::2]:
        assert r["baseline"] == "resnet18-cifar10" and r["verdict"] == "faster" and r["significant"]
        assert r["speedup_low"] <= r["speedup"] <= r["speedup_high"]
        assert r["speedup"] == pytest.approx(2.0, rel=0.02)
    assert all(r["verdict"] == "baseline" and r["speedup"] == pytest.approx(1.0) for r in rows[0::2])


@pytest.mark.parametrize(("candidate_s", "verdict"), [(0.001, "faster"), (0.004, "slower"), (0.002, None)])
def test_verdict_follows_known_latencies(monkeypatch, candidate_s, verdict):
    latency = {"resnet18-cifar10": 0.002, "vgg16-bn-cifar10": candidate_s}

    def prepare(self, model, settings, options):
        return FixedLatency(latency[model.name])

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    config = replace(CONFIG, trials=3, timing=TimingSettings(warmup=0, warmup_time=0, runs=20, min_time=0))
    base, cand = benchmark(["resnet18-cifar10", "vgg16-bn-cifar10"], config)
    assert cand["speedup"] == pytest.approx(0.002 / candidate_s, rel=0.02)
    if verdict is None:  # the same latency: no difference may be claimed
        assert cand["speedup_low"] <= 1 <= cand["speedup_high"]
        assert cand["verdict"] == "no significant difference" and not cand["significant"]
    else:
        assert cand["verdict"] == verdict and cand["significant"]
    assert base["verdict"] == "baseline"


def test_out_of_memory_becomes_a_row_error_and_the_others_still_run(monkeypatch):
    original = TorchCPU.prepare

    def prepare(self, model, settings, options):
        if model.name == "vgg16-bn-cifar10" and settings.batch_size > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, model, settings, options)

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    rows = sweep(["resnet18-cifar10", "vgg16-bn-cifar10"], replace(CONFIG, batch_size=(1, 2)))
    errors = [(r["model"], r["batch_size"]) for r in rows if r.get("error")]
    assert errors == [("vgg16-bn-cifar10", 2)]
    assert "out of memory at batch size 2" in rows[3]["error"]
    assert "median_ms" not in rows[3] and "speedup" not in rows[3]
    assert rows[2]["median_ms"] > 0 and rows[1]["median_ms"] > 0


def test_other_errors_are_not_swallowed(monkeypatch):
    def prepare(self, model, settings, options):
        raise ValueError("a bug")

    monkeypatch.setattr(TorchCPU, "prepare", prepare)
    with pytest.raises(ValueError, match="a bug"):
        benchmark(["resnet18-cifar10"], CONFIG)


def test_out_of_memory_wordings():
    """Fails when a runtime's out-of-memory wording is not recognised (that row would then abort the run)."""
    is_out_of_memory = runtime_class("onnxruntime", "cpu")().is_out_of_memory
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"precision": "fp16"}, "--precision fp16 is not supported by runtime onnxruntime on cpu"),
        (
            {"cuda_graphs": True},
            "--cuda-graphs is not an option of runtime onnxruntime on cpu; it applies to torch on cuda",
        ),
        ({"tf32": True}, "--tf32 is not an option of runtime onnxruntime on cpu"),
        ({"cuda_graphs": True, "runtime": "torch"}, "--cuda-graphs is not an option of runtime torch on cpu"),
        ({"compile": True}, "--compile is not an option of runtime onnxruntime on cpu"),
        ({"channels_last": True, "runtime": "onnxruntime"}, "--channels-last is not an option of runtime onnxruntime"),
        ({"precision": "int8"}, "--precision int8 is not supported"),
        ({"batch_size": "1,,2"}, "--batch-size takes whole numbers separated by commas, got '1,,2' (an empty item)"),
        ({"threads": 2000}, "--threads must be between 1 and 1024, got 2000"),
        ({"isolate": "thread"}, "--isolate must be one of process, session"),
        ({"trials": 0}, "--trials must be between 1 and 1000"),
        ({"target_ci": 0}, "--target-ci must be more than 0"),
        ({"mod_impl": "nope"}, "unknown option 'mod_impl'"),  # builder arguments go through --model-arg now
    ],
)
def test_impossible_configurations_are_user_errors(values, message):
    with pytest.raises(UserInputError) as info:
        config_from_mapping(values)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_runtime_options_are_passed_and_keyed():
    config = config_from_mapping({"runtime": "torch", "compile": True, "batch_size": "1,8", "resolution": "160,224"})
    assert config.batch_size == (1, 8) and config.resolution == (160, 224)
    assert config.runtime_args == (("compile", True),) and config.runtime_options().compile
    keys = [p.settings_key for p in config.plans()]
    assert len(keys) == 4 and len(set(keys)) == 4  # each (batch, resolution) point is its own measurement
    assert all("compile=True" in k for k in keys)
    # Timing and trial counts do not change what a measurement is; the options that shape it do.
    same = replace(config, trials=9, timing=TimingSettings(runs=99))
    assert [p.settings_key for p in same.plans()] == keys
    assert replace(config, batch_size=(2,), resolution=(160,)).plan().settings_key not in keys
    assert all(p.backend.options.compile for p in config.plans())  # the typed options, parsed once
    assert config_from_mapping(config.to_mapping()) == config


def test_thread_budget_is_applied_to_torch_and_recorded():
    import torch

    rows = benchmark(["resnet18-cifar10"], CONFIG)
    assert torch.get_num_threads() == 1
    assert rows[0]["intra_op_threads"] == 1 and rows[0]["threads"] == 1


def test_rows_record_the_model_its_arguments_and_the_run():
    rows = benchmark([ModelSpec("resnet18-mod-cifar10", (("impl", "gather-concat"),))], CONFIG)
    (row,) = rows
    assert row["model"] == "resnet18-mod-cifar10[impl=gather-concat]"
    assert row["model_args"] == '{"impl": "gather-concat"}'
    assert (row["model_source"], row["model_origin"], row["family"]) == ("registry", "resnet18-mod-cifar10", "mod")
    assert row["trials"] == 2 and row["stopping"] == "2 trials" and row["isolate"] == "session"
    assert row["config_key"] == CONFIG.plan().settings_key
    assert row["achieved_gmacs_per_s"] > 0 and not math.isnan(row["peak_mb"])
    other = benchmark(["resnet18-mod-cifar10"], CONFIG)[0]
    # The family's default implementation for this runtime and device is built and recorded, and every run has
    # its own id.
    default = get_entry("resnet18-mod-cifar10").defaults_for("torch", "cpu")["impl"]
    assert other["model_args"] == json.dumps({"impl": default})
    assert other["run_id"] != row["run_id"]


def test_an_unknown_builder_argument_value_is_a_user_error():
    with pytest.raises(UserInputError, match="unknown MoD implementation 'nope'"):
        benchmark([ModelSpec("resnet18-mod-cifar10", (("impl", "nope"),))], CONFIG)
    with pytest.raises(UserInputError, match="takes no argument 'impl'"):
        benchmark([ModelSpec("resnet18-cifar10", (("impl", "gather-concat"),))], CONFIG)


def test_a_model_that_cannot_run_at_a_resolution_is_a_clear_error():
    with pytest.raises(ConvbenchError, match="vgg16-bn-cifar10 cannot run at batch 1, resolution 16"):
        benchmark(["vgg16-bn-cifar10"], replace(CONFIG, resolution=(16,)))


@pytest.mark.slow
def test_trials_in_fresh_worker_processes():
    # The default isolation: each trial in a fresh `python -m convbench.benchmark.worker` process.
    samples = []
    config = replace(CONFIG, isolate="process")
    rows = benchmark(["resnet18-cifar10", "vgg16-bn-cifar10"], config, samples=samples)
    assert [r["trials"] for r in rows] == [2, 2] and all(r["isolate"] == "process" for r in rows)
    assert sorted((s["model"], s["trial"]) for s in samples) == [
        ("resnet18-cifar10", 0),
        ("resnet18-cifar10", 1),
        ("vgg16-bn-cifar10", 0),
        ("vgg16-bn-cifar10", 1),
    ]
    assert rows[1]["speedup_low"] <= rows[1]["speedup"] <= rows[1]["speedup_high"]
    assert rows[0]["intra_op_threads"] == 1
