"""Independent trials: rows, shuffled model order, adaptive stopping, process isolation, raw samples."""

import statistics
from dataclasses import replace

import pytest

import convbench.benchmark as benchmark_module
import convbench.benchmark.stopping as stopping_module
from convbench.benchmark import BenchmarkConfig, benchmark
from convbench.benchmark.trials import ModelTrial
from convbench.timing.measure import TimingSettings
from convbench.timing.stats import hierarchical_speedup

MODELS = ["resnet18-cifar10", "resnet18-mod-cifar10"]
THREE = [*MODELS, "resnet18-cifar100"]
TIMING = TimingSettings(warmup=1, warmup_time=0, runs=3, min_time=0)
CONFIG = BenchmarkConfig(isolate="session", trials=3, threads=1, timing=TIMING)
REAL_RUN_TRIAL = stopping_module.run_trial
# Where run_trial is replaced by a fake, the torch runtime spares the ONNX export nothing would load.
FAKE_CONFIG = replace(CONFIG, runtime="torch")


def _no_peak(patch: pytest.MonkeyPatch) -> None:
    # The machine's GEMM peak is measured again by every run on a busy machine (a disturbed peak is not
    # cached); nothing here is about it. raising=False: a renamed helper only costs time.
    patch.setattr(benchmark_module, "_machine_peak", lambda config, progress: None, raising=False)


@pytest.fixture(autouse=True)
def no_peak(monkeypatch):
    _no_peak(monkeypatch)


@pytest.fixture(scope="module")
def compared():
    samples: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:
        _no_peak(patch)
        rows = benchmark(MODELS, CONFIG, samples=samples)
    return rows, samples


def _ms(samples, model):
    return [s for s in samples if s["model"] == model]


def _fake_trial(orders):
    def fake(models, config, order, progress=None):
        orders.append(list(order))
        return [ModelTrial(samples=[1e-3 * (i + 1)] * 5, first_run=1e-3) for i, _ in enumerate(models)]

    return fake


# Rows --------------------------------------------------------------------------------------------------


def test_rows_carry_the_trials_and_their_runs(compared):
    rows, _ = compared
    assert [r["model"] for r in rows] == MODELS
    for row in rows:
        assert row["trials"] == 3
        assert row["n_runs"] >= 3 * TIMING.runs
        assert row["isolate"] == "session"
        assert row["stopping"] == "3 trials"
        assert row["trial_median_min_ms"] <= row["median_ms"] <= row["trial_median_max_ms"]
        assert row["median_low_ms"] <= row["median_high_ms"]


def test_rows_share_one_unique_run_id_and_record_the_checkout(compared, monkeypatch):
    rows, _ = compared
    assert len({r["run_id"] for r in rows}) == 1 and rows[0]["run_id"]
    monkeypatch.setattr(stopping_module, "run_trial", _fake_trial([]))
    again = benchmark(MODELS, CONFIG)
    assert again[0]["run_id"] != rows[0]["run_id"]
    for row in rows:
        assert isinstance(row["git_commit"], str) and row["git_commit"].strip()
        assert row["git_dirty"] in ("yes", "no", "unknown")


def test_speedups_are_the_pooled_ratio_and_the_per_trial_spread(compared):
    rows, samples = compared
    base, candidate = rows
    assert base["speedup"] == pytest.approx(1.0) and base["verdict"] == "baseline"
    base_trials = [s["samples_ms"] for s in _ms(samples, MODELS[0])]
    cand_trials = [s["samples_ms"] for s in _ms(samples, MODELS[1])]
    per_trial = [statistics.median(b) / statistics.median(c) for b, c in zip(base_trials, cand_trials, strict=True)]
    pooled = statistics.median([x for t in base_trials for x in t]) / statistics.median(
        [x for t in cand_trials for x in t]
    )
    assert candidate["speedup_trial_min"] == pytest.approx(min(per_trial))
    assert candidate["speedup_trial_max"] == pytest.approx(max(per_trial))
    assert candidate["speedup"] == pytest.approx(pooled)
    assert candidate["speedup_trial_min"] <= candidate["speedup_trial_max"]
    assert candidate["speedup_low"] <= candidate["speedup_high"]
    assert candidate["baseline"] == MODELS[0]
    assert candidate["theoretical_speedup"] > 1


def test_the_pooled_ratio_may_lie_outside_the_per_trial_spread():
    """Why the rows do not promise speedup_trial_min <= speedup <= speedup_trial_max: the speed-up is the ratio
    of the pooled medians, and pooling can move a median where no single trial's ratio is."""
    base = [[1.0, 1.0, 100.0], [1.0, 100.0, 100.0]]  # trial medians 1 and 100, pooled median 50.5
    cand = [[1.0, 1.0, 1.0], [1.0, 100.0, 100.0]]  # trial medians 1 and 100, pooled median 1
    s = hierarchical_speedup(base, cand)
    assert (s.trial_low, s.trial_high) == (1.0, 1.0)
    assert s.ratio == pytest.approx(50.5)


def test_samples_hold_one_record_per_model_and_trial(compared):
    rows, samples = compared
    assert len(samples) == len(MODELS) * 3
    by_row = {r["model"]: r for r in rows}
    for model in MODELS:
        records = _ms(samples, model)
        assert [s["trial"] for s in records] == [0, 1, 2]
        for record in records:
            assert record["run_id"] == by_row[model]["run_id"]
            assert record["runtime"] == "onnxruntime" and record["batch_size"] == 1 and record["resolution"] == 32
            assert len(record["samples_ms"]) >= TIMING.runs
        pooled = [x for s in records for x in s["samples_ms"]]
        assert len(pooled) == by_row[model]["n_runs"]
        assert statistics.median(pooled) == pytest.approx(by_row[model]["median_ms"])


def test_rows_record_the_seed_of_the_model_order(compared):
    rows, _ = compared
    assert all(r["seed"] == CONFIG.seed for r in rows)


# Model order -------------------------------------------------------------------------------------------


def _recorded_orders(monkeypatch, config, models):
    orders: list[list[int]] = []

    def recording(models_, config_, order, progress=None):
        orders.append(list(order))
        return REAL_RUN_TRIAL(models_, config_, order, progress)

    monkeypatch.setattr(stopping_module, "run_trial", recording)
    rows = benchmark(models, config)
    return orders, rows


@pytest.mark.slow  # two real runs of three models, one more ONNX export
def test_the_model_order_is_shuffled_between_trials_and_repeats_with_the_seed(monkeypatch):
    config = replace(CONFIG, trials=4, seed=0, timing=replace(TIMING, runs=1, warmup=0))
    orders, rows = _recorded_orders(monkeypatch, config, THREE)
    assert len(orders) == 4
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    assert len({tuple(o) for o in orders}) >= 2
    again, _ = _recorded_orders(monkeypatch, config, THREE)
    assert again == orders
    # Rows stay in the order the models were given, whatever order they ran in.
    assert [r["model"] for r in rows] == THREE


def test_a_different_seed_gives_different_orders(monkeypatch):
    by_seed = {}
    for seed in (0, 1, 2, 0):
        orders: list[list[int]] = []
        monkeypatch.setattr(stopping_module, "run_trial", _fake_trial(orders))
        benchmark(THREE, replace(FAKE_CONFIG, trials=4, seed=seed))
        assert by_seed.setdefault(seed, orders) == orders  # seed 0 twice: the same orders
    assert len({tuple(map(tuple, o)) for o in by_seed.values()}) == 3


def test_results_follow_their_model_whatever_order_they_ran_in(monkeypatch):
    """Each model's samples land in its own row, whatever position it ran at in a trial."""
    latency = {name: (i + 1) * 1e-3 for i, name in enumerate(THREE)}  # 1, 2, 3 ms
    orders = []

    def fake_trial(models, config, order, progress=None):
        orders.append(list(order))
        return [ModelTrial(samples=[latency[m.name]] * 5, first_run=latency[m.name]) for m in models]

    monkeypatch.setattr(stopping_module, "run_trial", fake_trial)
    rows = benchmark(THREE, replace(FAKE_CONFIG, trials=4))
    assert len({tuple(o) for o in orders}) >= 2
    assert [r["median_ms"] for r in rows] == pytest.approx([1.0, 2.0, 3.0])
    assert [r["speedup"] for r in rows] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [r["speedup_trial_min"] for r in rows] == pytest.approx([1.0, 0.5, 1 / 3])


# Adaptive stopping -------------------------------------------------------------------------------------


def test_a_loose_target_stops_at_the_minimum_trials():
    rows = benchmark(MODELS, replace(CONFIG, target_ci=1000.0))
    for row in rows:
        assert row["trials"] == CONFIG.trials
        assert row["stopping"].startswith("target reached")
        assert "1000%" in row["stopping"]


def test_an_unreachable_target_stops_at_max_time():
    rows = benchmark(MODELS, replace(CONFIG, target_ci=1e-6, max_time=0.1))
    for row in rows:
        assert row["trials"] >= CONFIG.trials
        assert "--max-time 0.1" in row["stopping"]
        assert "target reached" not in row["stopping"]


def test_adaptive_trials_are_added_until_the_target_is_met(monkeypatch):
    """With trials whose spread shrinks only as more are added, the loop goes past the minimum."""
    calls = []

    def fake_trial(models, config, order, progress=None):
        calls.append(1)
        wobble = 1.0 + (0.5 if len(calls) % 2 else -0.5) / len(calls)
        return [ModelTrial(samples=[1e-3 * (wobble if i else 1.0)] * 5) for i, _ in enumerate(models)]

    monkeypatch.setattr(stopping_module, "run_trial", fake_trial)
    rows = benchmark(MODELS, replace(FAKE_CONFIG, trials=2, target_ci=5.0, max_time=60))
    assert rows[0]["trials"] > 2 and rows[0]["trials"] == len(calls)
    assert rows[0]["stopping"].startswith("target reached")


# Process isolation -------------------------------------------------------------------------------------


@pytest.mark.slow  # a fresh worker process (PyTorch import) per trial
def test_process_isolation_gives_rows_like_a_session_run(compared):
    session_rows, _ = compared
    samples: list[dict] = []
    rows = benchmark(MODELS, replace(CONFIG, isolate="process", trials=2), samples=samples)
    assert [r["model"] for r in rows] == MODELS
    for row, session in zip(rows, session_rows, strict=True):
        assert set(row) == set(session)
        assert row["isolate"] == "process" and row["trials"] == 2
        assert row["n_runs"] >= 2 * TIMING.runs
        assert row["config_key"] == session["config_key"]
        assert row["median_ms"] > 0
    assert rows[1]["speedup_trial_min"] <= rows[1]["speedup_trial_max"]
    assert len(samples) == len(MODELS) * 2
