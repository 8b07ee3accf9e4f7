"""A family's builder arguments per runtime and device (``register_model(default_args=...)``).

CNN-MoD declares the implementation measured fastest on each runtime; ``resolve_model(..., runtime=, device=)``
applies it unless the user names one, the build uses it, and the row's identity records it.
"""

import dataclasses
import json

import pytest

from convbench.export import model_cache_key
from convbench.models import register_model
from convbench.models.mod import DEFAULT_MOD_IMPL, MOD_IMPLS, MOD_RUNTIME_IMPLS, MoDBlock
from convbench.models.registry import _entry_from_json, get_entry, model_index
from convbench.models.spec import ModelSpec, resolve_model

SMALL_MOD = "resnet18-mod-cifar10"
SHAPE = (1, 3, 32, 32)


def _impls(module) -> set[str]:
    return {m.impl for m in module.modules() if isinstance(m, MoDBlock)}


def test_every_declared_default_is_an_implementation():
    """Fails on a misspelt implementation name, which would only surface when that runtime builds the model."""
    assert set(MOD_RUNTIME_IMPLS.values()) <= set(MOD_IMPLS)
    assert MOD_RUNTIME_IMPLS[("torch", "cuda")] == "inplace"


@pytest.mark.parametrize(("runtime", "device"), list(MOD_RUNTIME_IMPLS))
def test_the_runtime_default_is_applied_built_and_recorded(runtime, device):
    """Fails if the default for one runtime leaks to another, is not built, or the row does not say which ran."""
    impl = MOD_RUNTIME_IMPLS[(runtime, device)]
    model = resolve_model(SMALL_MOD, runtime=runtime, device=device)
    assert model.runtime_args == {"impl": impl}
    assert model.effective_args["impl"] == impl
    assert _impls(model.build(calibrate=False)) == {impl}
    identity = model.identity()
    assert json.loads(identity["model_args"]) == {"impl": impl}
    assert identity["model"] == SMALL_MOD  # the label is what the user named; the arguments say what ran


def test_without_a_runtime_the_builder_default_applies():
    model = resolve_model(SMALL_MOD)
    assert model.runtime_args == {}
    assert _impls(model.build(calibrate=False)) == {DEFAULT_MOD_IMPL}


def test_the_users_argument_wins_over_the_runtime_default():
    spec = ModelSpec(SMALL_MOD, (("impl", "index-pad"),))
    model = resolve_model(spec, runtime="torch", device="cuda")
    assert model.runtime_args == {}
    assert model.effective_args["impl"] == "index-pad"
    assert _impls(model.build(calibrate=False)) == {"index-pad"}
    assert json.loads(model.identity()["model_args"]) == {"impl": "index-pad"}


def test_counting_still_uses_the_familys_counting_formulation():
    """The runtime's implementation must not leak into MAC counting, which counts the paper's formulation."""
    model = resolve_model(SMALL_MOD, runtime="torch", device="cuda")
    assert _impls(model.build(calibrate=False, counting=True)) == {"gather-concat"}


def test_each_runtime_default_gets_its_own_cache_key():
    """Fails if an export or count cached for one runtime's implementation were reused for another's."""
    keys = {
        where: model_cache_key(resolve_model(SMALL_MOD, runtime=where[0], device=where[1]), SHAPE)
        for where in MOD_RUNTIME_IMPLS
    }
    assert len(set(keys.values())) == len(set(MOD_RUNTIME_IMPLS.values()))
    named = resolve_model(ModelSpec(SMALL_MOD, (("impl", "inplace"),)))
    assert model_cache_key(named, SHAPE) == keys[("torch", "cuda")]


def test_a_runtime_without_defaults_and_a_family_without_them_change_nothing():
    assert resolve_model(SMALL_MOD, runtime="tensorrt", device="cuda").runtime_args == {}
    plain = resolve_model("resnet18-cifar10", runtime="torch", device="cuda")
    assert plain.runtime_args == {} and plain.identity()["model_args"] == ""


def test_runtime_and_device_go_together():
    with pytest.raises(ValueError, match="together"):
        resolve_model(SMALL_MOD, runtime="torch")


def test_the_defaults_survive_the_index_file():
    """The registry answers from a JSON index; fails if ``default_args`` were lost or mangled on the way."""
    entry = model_index()[SMALL_MOD]
    assert entry.defaults_for("torch", "cuda") == {"impl": "inplace"}
    again = _entry_from_json(json.loads(json.dumps(dataclasses.asdict(entry))))
    assert again == entry
    assert get_entry(SMALL_MOD).defaults_for("openvino", "cpu") == {"impl": MOD_RUNTIME_IMPLS[("openvino", "cpu")]}


def test_a_default_for_an_argument_the_builder_lacks_is_refused_at_registration():
    def builder(width: int = 1) -> None:
        return None

    with pytest.raises(ValueError, match="takes no 'impl'"):
        register_model(
            "not-registered-x", family="resnet", paper="torchvision", default_args={("torch", "cpu"): {"impl": "a"}}
        )(builder)
    assert "not-registered-x" not in model_index()
