"""Options are declared once (``convbench.options``) and every command, run spec and key is derived from them."""

from dataclasses import replace

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import convbench.benchmark as benchmark_module
from convbench.benchmark import BenchmarkConfig, config_from_mapping, runtime_option_classes
from convbench.cli.main import app
from convbench.errors import UserInputError
from convbench.options import int_list, option_fields
from convbench.timing.measure import TimingSettings

runner = CliRunner()
BENCHMARK_COMMANDS = ("profile", "compare", "reproduce")


def _config_option_names() -> list[str]:
    """Every option a BenchmarkConfig is built from: its own, its timing group's and the runtimes'."""
    names = [path[-1] for path, _ in option_fields(BenchmarkConfig)]
    for cls in runtime_option_classes():
        names += [path[-1] for path, _ in option_fields(cls) if path[-1] not in names]
    return names


def _params(command: str) -> dict:
    return {p.name: p for p in get_command(app).commands[command].params}


def _describe(param) -> tuple:
    return (
        tuple(param.opts),
        tuple(param.secondary_opts),
        param.help,
        param.default,
        repr(param.type_descriptor.annotation),
        param.is_flag,
        param.multiple,
    )


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# Declared once, shared by every command ------------------------------------------------------------------


def test_benchmark_commands_expose_every_config_option():
    names = _config_option_names()
    assert {
        "threads",
        "batch_size",
        "trials",
        "target_ci",
        "runs",
        "min_time",
        "ort_optimization",
        "cuda_graphs",
    } <= set(names)
    for command in BENCHMARK_COMMANDS:
        missing = [n for n in names if n not in _params(command)]
        assert not missing, f"{command} lacks {missing}"


def test_profile_compare_and_reproduce_declare_each_option_identically():
    params = {command: _params(command) for command in BENCHMARK_COMMANDS}
    for name in _config_option_names():
        described = {command: _describe(params[command][name]) for command in BENCHMARK_COMMANDS}
        assert len(set(described.values())) == 1, f"{name} differs between commands: {described}"


def test_flags_come_from_the_field_declaration():
    params = _params("profile")
    assert set(params["batch_size"].opts) == {"--batch-size", "-b"}
    assert params["target_ci"].opts == ["--target-ci"]
    assert params["warmup_time"].opts == ["--warmup-time"]
    assert "--no-ort-spinning" in params["ort_spinning"].secondary_opts
    # The declared help reaches the command line, with the declared default.
    assert "Intra-op threads" in params["threads"].help
    assert f"[default: {BenchmarkConfig().trials}]" in params["trials"].help


def test_count_and_export_take_the_same_flags_as_profile_for_the_fields_they_use():
    profile = _params("profile")
    for command, names in (
        ("count", ("resolution", "convention")),
        ("export", ("batch_size", "resolution", "exporter")),
    ):
        own = _params(command)
        for name in names:
            assert _describe(own[name]) == _describe(profile[name]), (command, name)
        assert "trials" not in own and "threads" not in own


# Checks and parsing ------------------------------------------------------------------------------------


def test_threads_out_of_range_names_both_bounds():
    with pytest.raises(UserInputError, match="must be between 1 and 1024") as info:
        config_from_mapping({"threads": 2000})
    assert "--threads" in str(info.value) and "at least 1" not in str(info.value)
    line = _one_line_error(
        _invoke("profile", "resnet18-cifar10", "--threads", "2000", "--no-save"),
        "--threads",
        "must be between 1 and 1024",
        "2000",
    )
    assert "at least 1" not in line


@pytest.mark.parametrize("text", ["1,,2", "1,", ",1", "", "1;2", "1.5", "x"])
def test_int_list_refuses_malformed_lists(text):
    with pytest.raises(ValueError, match="whole numbers"):
        int_list(text)


def test_int_list_parses_and_drops_duplicates():
    assert int_list("1,8,32") == (1, 8, 32)
    assert int_list(" 1 , 8,8 ") == (1, 8)
    assert int_list(4) == (4,)
    assert int_list([8, 1, 8]) == (8, 1)


def test_batch_size_with_an_empty_item_is_refused_everywhere():
    with pytest.raises(UserInputError, match="--batch-size"):
        config_from_mapping({"batch_size": "1,,2"})
    _one_line_error(_invoke("profile", "resnet18-cifar10", "--batch-size", "1,,2", "--no-save"), "--batch-size", "1,,2")


@pytest.mark.parametrize(
    ("values", "flag", "fragment"),
    [
        ({"trials": 0}, "--trials", "between 1 and"),
        ({"target_ci": 0}, "--target-ci", "more than 0"),
        ({"target_ci": -1}, "--target-ci", "more than 0"),
        ({"max_time": 0}, "--max-time", "more than 0"),
        ({"seed": -1}, "--seed", "at least 0"),
        ({"isolate": "thread"}, "--isolate", "process"),
        ({"runs": 0}, "--runs", "at least 1"),
        ({"batch_size": "0"}, "--batch-size", "between 1"),
        ({"ort_optimization": "max"}, "--ort-optimization", "all"),
    ],
)
def test_invalid_values_are_refused_naming_the_flag(values, flag, fragment):
    with pytest.raises(UserInputError) as info:
        config_from_mapping(values)
    message = str(info.value)
    assert message.startswith(flag) and fragment in message and "\n" not in message


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["--trials", "0"], "--trials"), (["--target-ci", "0"], "--target-ci"), (["--target-ci", "-1"], "--target-ci")],
)
def test_invalid_trial_settings_are_refused_on_the_command_line(args, flag):
    _one_line_error(_invoke("compare", "resnet18-cifar10", "resnet18-mod-cifar10", *args, "--no-save"), flag)


def test_config_from_mapping_names_an_unknown_key():
    with pytest.raises(UserInputError, match="'warmups'") as info:
        config_from_mapping({"threads": 1, "warmups": 3}, where="spec.toml, job 2")
    assert str(info.value).startswith("spec.toml, job 2: ")


def test_runtime_option_for_another_runtime_names_the_runtime_and_the_option():
    with pytest.raises(UserInputError) as info:
        config_from_mapping({"runtime": "onnxruntime", "device": "cpu", "cuda_graphs": True})
    message = str(info.value)
    assert "--cuda-graphs" in message and "onnxruntime" in message and "cpu" in message
    _one_line_error(
        _invoke("profile", "resnet18-cifar10", "--cuda-graphs", "--no-save"), "--cuda-graphs", "onnxruntime"
    )


def test_runtime_option_of_the_selected_runtime_is_accepted_and_kept():
    config = config_from_mapping({"runtime": "onnxruntime", "ort_optimization": "basic", "ort_spinning": False})
    assert dict(config.runtime_args) == {"ort_optimization": "basic", "ort_spinning": False}
    options = config.runtime_options()
    assert options.ort_optimization == "basic" and options.ort_spinning is False


def test_unsupported_precision_names_the_runtime():
    with pytest.raises(UserInputError) as info:
        config_from_mapping({"precision": "fp16", "runtime": "onnxruntime", "device": "cpu"})
    message = str(info.value)
    assert "fp16" in message and "onnxruntime" in message and "fp32" in message
    _one_line_error(_invoke("profile", "resnet18-cifar10", "--precision", "fp16", "--no-save"), "fp16", "onnxruntime")


def test_to_mapping_round_trips_through_config_from_mapping():
    config = config_from_mapping(
        {
            "threads": 2,
            "batch_size": "1,8",
            "trials": 3,
            "runs": 7,
            "isolate": "session",
            "ort_optimization": "extended",
            "seed": 5,
        }
    )
    assert config_from_mapping(config.to_mapping()) == config


# The settings key --------------------------------------------------------------------------------------


BASE = {"runtime": "onnxruntime", "threads": 2}


@pytest.mark.parametrize(
    "change",
    [
        {"ort_optimization": "basic"},
        {"ort_spinning": False},
        {"ort_spin_stop": False},
        {"ort_parallel": True},
        {"threads": 1},
        {"batch_size": "8"},
        {"resolution": "160"},
        {"exporter": "torchscript"},
        {"convention": "fvcore"},
        {"runtime": "torch"},
    ],
)
def test_settings_key_changes_with_what_decides_a_measurement(change):
    base = config_from_mapping(BASE)
    changed = config_from_mapping({**BASE, **change})
    assert changed.plan().settings_key != base.plan().settings_key


@pytest.mark.parametrize(
    "change",
    [
        {"runs": 99},
        {"trials": 2},
        {"warmup": 0},
        {"warmup_time": 0},
        {"min_time": 0},
        {"block": 2},
        {"isolate": "session"},
        {"seed": 3},
        {"target_ci": 2.0},
        {"max_time": 10},
    ],
)
def test_settings_key_ignores_timing_and_trial_counts(change):
    assert config_from_mapping({**BASE, **change}).plan().settings_key == config_from_mapping(BASE).plan().settings_key


def test_settings_key_names_the_runtime_options_in_effect():
    key = config_from_mapping({**BASE, "ort_optimization": "basic"}).plan().settings_key
    assert "ort_optimization=basic" in key and "runtime=onnxruntime" in key and "threads=2" in key
    # The default runtime and the available cores are resolved, so an implicit and an explicit choice agree.
    implicit = config_from_mapping({"threads": BenchmarkConfig().plan().backend.threads})
    assert implicit.plan().settings_key == config_from_mapping({"runtime": "onnxruntime"}).plan().settings_key


def test_settings_key_is_derived_from_the_declarations():
    """A field declared in_key=False never reaches the key, whatever value it holds."""
    config = config_from_mapping(BASE)
    wild = replace(config, trials=999, seed=123456, timing=TimingSettings(runs=4242, warmup=77))
    key = wild.plan().settings_key
    assert key == config.plan().settings_key
    assert "4242" not in key and "123456" not in key


# Validation of configurations built in Python -----------------------------------------------------------


class _Reached(Exception):
    pass


@pytest.mark.parametrize(
    "config",
    [
        BenchmarkConfig(trials=0),
        BenchmarkConfig(threads=2000),
        BenchmarkConfig(isolate="bogus"),
        BenchmarkConfig(target_ci=-1.0),
    ],
)
def test_benchmark_refuses_an_invalid_config_built_in_python(monkeypatch, config):
    def reached(*args, **kwargs):
        raise _Reached

    monkeypatch.setattr(benchmark_module, "count", reached)
    with pytest.raises(UserInputError):
        benchmark_module.benchmark(["resnet18-cifar10"], config)
