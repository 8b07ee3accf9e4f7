"""peak: the best fp32 GEMM rate of a runtime on this machine, cached, and a model's fraction of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from convbench.errors import UserInputError
from convbench.timing.peak import efficiency, measure_peak

SIZE = 256  # ~17 MMACs: milliseconds per GEMM, enough to test the mechanics, not to measure a real peak


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GEMM this small is timed in ~10 ms, one or two /proc/stat ticks: the other-process share of such a
    window is a quantisation artefact (one tick is a whole core), so whether the peak is "disturbed" is set here."""
    monkeypatch.setattr("convbench.timing.noise.OTHER_CORES_LIMIT", float("inf"))


def test_onnxruntime_peak_is_measured_then_cached(private_cache: Path, quiet_machine: None) -> None:
    first = measure_peak("onnxruntime", 1, size=SIZE, repeats=3)
    assert first.gmacs_per_s > 0 and not first.cached
    assert first.seconds <= first.median_seconds
    assert first.gmacs_per_s == pytest.approx(SIZE**3 / first.seconds / 1e9)
    assert list((private_cache / "peak").glob("*.json"))
    second = measure_peak("onnxruntime", 1, size=SIZE, repeats=3)
    assert second.cached and second.gmacs_per_s == first.gmacs_per_s
    again = measure_peak("onnxruntime", 1, size=SIZE, repeats=3, force=True)
    assert not again.cached


def test_a_disturbed_peak_is_used_but_not_cached(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peak measured while other processes ran would understate the machine for every later row."""
    monkeypatch.setattr("convbench.timing.noise.OTHER_CORES_LIMIT", -1.0)  # every window counts as disturbed
    first = measure_peak("onnxruntime", 1, size=SIZE, repeats=2)
    assert first.gmacs_per_s > 0
    assert not list((private_cache / "peak").glob("*.json"))
    assert not measure_peak("onnxruntime", 1, size=SIZE, repeats=2).cached


def test_cache_is_per_thread_count() -> None:
    measure_peak("onnxruntime", 1, size=SIZE, repeats=1)
    assert not measure_peak("onnxruntime", 2, size=SIZE, repeats=1).cached


def test_efficiency_of_the_gemm_itself_is_at_most_one() -> None:
    peak = measure_peak("onnxruntime", 1, size=SIZE, repeats=5)
    # The same GEMM timed at its median: as fast as the best run at most, so at most the whole peak.
    result = efficiency(SIZE**3 / 1e9, peak.median_seconds * 1e3, 1, peak)
    assert 0 < result["peak_fraction"] <= 1
    assert result["achieved_gmacs_per_s"] == pytest.approx(result["peak_fraction"] * peak.gmacs_per_s)
    batched = efficiency(SIZE**3 / 1e9 / 4, peak.median_seconds * 1e3, 4, peak)  # per-image GMACs times batch
    assert batched["peak_fraction"] == pytest.approx(result["peak_fraction"])
    missing = efficiency(1.0, float("nan"), 1, peak)
    assert missing["peak_fraction"] != missing["peak_fraction"]  # NaN, not an exception


def test_torch_peak_leaves_the_thread_count_as_it_found_it() -> None:
    """Catches the torch GEMM's set_num_threads leaking into everything timed after the peak in the same
    process (restore() not undoing it): later torch rows would run on the peak's thread count."""
    import torch

    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2  # a count the GEMM has to change
    peak = measure_peak("torch", threads, size=SIZE, repeats=2)
    assert peak.runtime == "torch" and peak.threads == threads
    assert torch.get_num_threads() == before


@pytest.mark.openvino
def test_openvino_peak_compiles_with_the_threads_and_precision_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the OpenVINO GEMM compiled without its thread count (a one-thread peak measured on every core)
    or without an explicit precision (the CPU plugin's default is bf16 on AMX CPUs: a bf16 rate labelled fp32)."""
    import openvino as ov

    configs = []

    class RecordingCore(ov.Core):
        def compile_model(self, model, device, config):  # type: ignore[no-untyped-def]
            configs.append((device, dict(config)))
            return super().compile_model(model, device, config)

    monkeypatch.setattr(ov, "Core", RecordingCore)
    peak = measure_peak("openvino", 1, size=SIZE, repeats=2)
    assert peak.precision == "fp32" and not peak.cached
    ((device, config),) = configs
    assert device == "CPU" and config["INFERENCE_NUM_THREADS"] == 1 and config["INFERENCE_PRECISION_HINT"] == "f32"


def test_cuda_without_a_gpu_is_a_user_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    with pytest.raises(UserInputError, match="CUDA is not available"):
        measure_peak("torch", 1, device="cuda", size=SIZE)


def test_bad_input_is_refused_before_measuring() -> None:
    with pytest.raises(UserInputError, match="unknown runtime 'tensorflow'; registered: "):
        measure_peak("tensorflow", 1, size=SIZE)
    with pytest.raises(UserInputError, match="does not run on 'cuda'"):
        measure_peak("onnxruntime", 1, device="cuda", size=SIZE)
    with pytest.raises(UserInputError, match="--threads must be at least 1"):
        measure_peak("onnxruntime", 0, size=SIZE)
    with pytest.raises(UserInputError, match="--size must be between"):
        measure_peak("onnxruntime", 1, size=8)
