"""Loading weights: every accepted layout round-trips exactly; anything that does not fit is one clear line."""

import argparse
from pathlib import Path

import pytest
import torch

from convbench.errors import UserInputError
from convbench.models.spec import ModelSpec, resolve_model
from convbench.models.weights import load_weights, read_state_dict, weights_digest

# The README's example model, narrow: it builds in milliseconds.
MODEL = f"{Path(__file__).parents[1] / 'examples' / 'my_model.py'}:build"
ARGS = (("width", 8), ("num_classes", 10))


def create_model(model=MODEL, seed=0, args=ARGS):
    return resolve_model(ModelSpec(model, args), resolution=32).build(seed=seed)


@pytest.fixture(scope="module")
def trained():
    """A model standing in for a trained one: its weights come from another seed than a fresh build's."""
    model = create_model(seed=123)
    with torch.no_grad():  # running statistics unlike any a fresh model could have
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _same_outputs(a, b):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _layouts(model):
    state = model.state_dict()
    prefixed = {f"module.{k}": v for k, v in state.items()}
    return {
        "plain": state,
        "state_dict+ddp": {"state_dict": prefixed, "epoch": 3, "args": argparse.Namespace(lr=0.1)},
        "model_state_dict": {"model_state_dict": state, "optimizer": {"lr": 0.1}},
        "model+compile": {"model": {f"_orig_mod.{k}": v for k, v in state.items()}},
    }


@pytest.mark.parametrize("layout", ["plain", "state_dict+ddp", "model_state_dict", "model+compile"])
def test_round_trip_gives_identical_outputs(tmp_path, trained, layout):
    path = tmp_path / "weights.pth"
    torch.save(_layouts(trained)[layout], path)
    fresh = create_model(seed=7)
    assert not _same_outputs(fresh, trained)
    load_weights(fresh, path)
    assert _same_outputs(fresh, trained)


def test_resolved_model_builds_with_weights_and_records_them(tmp_path, trained):
    path = tmp_path / "trained.pt"
    torch.save(trained.state_dict(), path)
    resolved = resolve_model(ModelSpec(MODEL, ARGS, weights=str(path)), resolution=32)
    assert resolved.weights_digest == weights_digest(path) and len(resolved.weights_digest) == 16
    identity = resolved.identity()
    assert identity["weights"] == str(path) and identity["bn_calibrated"] is False
    assert _same_outputs(resolved.build(), trained)  # no BatchNorm calibration over the loaded statistics


def test_registered_model_loads_weights(tmp_path):
    trained = resolve_model("resnet18-cifar10").build(seed=5)
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "r18.pth")
    loaded = resolve_model(ModelSpec("resnet18-cifar10", weights=str(tmp_path / "r18.pth"))).build()
    assert _same_outputs(loaded, trained)


def test_safetensors_round_trip(tmp_path, trained):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "weights.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    fresh = create_model(seed=7)
    load_weights(fresh, path)
    assert _same_outputs(fresh, trained)


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path, trained):
    state = dict(trained.state_dict())
    state.pop("stages.0.body.0.weight")
    state["head.extra"] = torch.zeros(3)
    state["head.2.weight"] = torch.zeros(100, 32)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(UserInputError) as info:
        load_weights(create_model(), path)
    message = str(info.value)
    assert "\n" not in message
    assert "1 missing: stages.0.body.0.weight" in message
    assert "1 unexpected: head.extra" in message
    assert "head.2.weight (file 100×32, model 10×32)" in message


def test_many_mismatches_are_summarised(tmp_path):
    torch.save(create_model(args=(("width", 8), ("num_classes", 100))).state_dict(), tmp_path / "w.pth")
    torch.save({f"x{i}": torch.zeros(1) for i in range(9)}, tmp_path / "junk.pth")
    with pytest.raises(UserInputError, match=r"2 with another shape: head\.2\.weight \(file 100×32, model 10×32\)"):
        load_weights(create_model(), tmp_path / "w.pth")
    with pytest.raises(UserInputError, match=r"9 unexpected: x0, x1, x2, x3, \.\.\. \(5 more\)"):
        load_weights(create_model(), tmp_path / "junk.pth")


def test_a_checkpoint_missing_only_batchnorm_counters_loads(tmp_path, trained):
    # Checkpoints from before PyTorch 0.4.1 have no num_batches_tracked; eval mode never reads it.
    state = {k: v for k, v in trained.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    fresh = create_model(seed=7)
    load_weights(fresh, tmp_path / "old.pth")
    assert _same_outputs(fresh, trained)


class Arbitrary:
    pass


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file", r"not a PyTorch checkpoint"),
        ({"epoch": 3, "optimizer": {"lr": 0.1}}, r"holds no state dict.*keys: epoch, optimizer"),
        ([torch.zeros(1)], r"holds a list, not a state dict"),
        (Arbitrary(), r"holds a Python object \(.*Arbitrary\).*state_dict"),
    ],
)
def test_files_that_do_not_load(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(UserInputError, match=message) as info:
        load_weights(create_model(), path)
    assert "\n" not in str(info.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserInputError, match=r"weights file .*absent\.pth does not exist"):
        weights_digest(tmp_path / "absent.pth")
    with pytest.raises(UserInputError, match=r"does not exist"):
        resolve_model(ModelSpec(MODEL, weights=str(tmp_path / "absent.pth")))
    with pytest.raises(UserInputError, match=r"does not exist"):
        read_state_dict(tmp_path / "absent.pth")
