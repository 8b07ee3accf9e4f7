"""The runtime registry: unknown names, runtimes registered from outside the package, missing extras."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from convbench.errors import UserInputError
from convbench.runtimes import all_runtime_classes, base, discover, runtime_class, runtime_help
from convbench.runtimes.base import PreparedModel, RunSettings, Runtime, register_runtime


class EchoModel(PreparedModel):
    """Runs nothing; every run takes the time it was told."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.phases = base.SetupPhases()

    def timed_run(self) -> float:
        return self.seconds

    def settings(self) -> dict[str, object]:
        return {"echo_seconds": self.seconds}


@pytest.fixture
def echo_runtime() -> Iterator[type[Runtime]]:
    discover()  # the package's own runtimes first, so the test one is added to a complete registry

    @register_runtime
    class EchoRuntime(Runtime):
        name = "test-echo"
        devices = ("cpu",)
        description = "test runtime: returns a fixed time"

        def prepare(self, model: Any, settings: RunSettings, options: Any) -> PreparedModel:
            return EchoModel(0.001 * settings.batch_size)

    discover.cache_clear()  # discover() caches the registry it found; it must see the new runtime
    try:
        yield EchoRuntime
    finally:
        for key in [k for k in base._RUNTIMES if k.name == "test-echo"]:
            del base._RUNTIMES[key]
        base._ORIGINS.pop("test-echo", None)
        discover.cache_clear()


def test_unknown_runtime_is_one_line_listing_the_registered() -> None:
    with pytest.raises(UserInputError) as info:
        runtime_class("tensorrt", "cpu")()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown runtime 'tensorrt'; registered: ")
    for name in ("onnxruntime", "openvino", "torch"):
        assert name in message


def test_registered_runtime_is_found_and_listed(echo_runtime: type[Runtime]) -> None:
    runtime = runtime_class("test-echo", "cpu")()
    assert isinstance(runtime, echo_runtime)
    prepared = runtime.prepare(None, RunSettings(device="cpu", threads=1, input_shape=(4, 3, 8, 8)), None)
    assert prepared.timed_run() == pytest.approx(0.004)
    assert prepared.settings() == {"echo_seconds": 0.004}
    assert "test-echo (cpu)" in runtime_help()


def test_test_runtime_is_gone_afterwards() -> None:
    assert "test-echo" not in runtime_help()
    with pytest.raises(UserInputError, match="unknown runtime 'test-echo'"):
        runtime_class("test-echo", "cpu")()


def test_missing_openvino_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "openvino" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(UserInputError) as info:
        runtime_class("openvino", "cpu")
    assert str(info.value) == (
        "runtime 'openvino' needs openvino, which is not installed; pip install 'convbench[openvino]'"
    )
    assert "openvino (cpu, not installed: pip install 'convbench[openvino]')" in runtime_help()


def test_runtime_option_names_do_not_clash() -> None:
    # Every runtime's options become flags of the same commands: one name must mean one thing everywhere.
    seen: dict[str, tuple[str, Any]] = {}
    for cls in all_runtime_classes():
        if not dataclasses.is_dataclass(cls.options_type):
            continue
        for f in dataclasses.fields(cls.options_type):
            if f.name in seen:
                assert seen[f.name][1] == f.default, f"{f.name}: {seen[f.name][0]} and {cls.name} disagree"
            seen[f.name] = (cls.name, f.default)
