import pytest
import torch

from convbench.errors import UserInputError
from convbench.models import create_model, get_entry, list_models, register_model
from convbench.papers import PAPERS

FOUNDATION_MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenetv2",
    "resnet18-mod",
    "resnet26-mod",
    "resnet34-mod",
    "resnet42-mod",
    "resnet50-mod",
    "resnet75-mod",
    "resnet86-mod",
    "resnet101-mod",
    "resnet152-mod",
    "resnet50-mod-rand",
    "resnet50-mod-lk",
    "resnet75-mod-lk",
    "resnet86-mod-lk",
    "mobilenetv2-mod",
    "mobilenetv2-mod-l",
    "resnet18-cifar10",
    "resnet34-cifar100",
    "resnet50-mod-cifar10",
    "vgg16-bn-cifar10",
    "vgg19-bn-cifar100",
    "vgg16-bn-mod-cifar10",
    "vgg19-bn-mod-cifar100",
]


@pytest.mark.parametrize("name", FOUNDATION_MODELS)
def test_foundation_models_are_registered(name):
    entry = get_entry(name)
    assert entry.paper in PAPERS
    assert entry.family
    assert entry.description


def test_every_entry_is_consistent():
    for name in list_models():
        entry = get_entry(name)
        assert name == name.lower() and "_" not in name and " " not in name
        assert entry.paper in PAPERS, name
        assert len(entry.input_size) == 3 and entry.num_classes > 0, name
        if "cifar" in name:
            assert entry.input_size == (3, 32, 32), name


def test_list_models_pattern_and_natural_order():
    names = list_models("resnet*-mod")
    assert "resnet75-mod" in names and "resnet75-mod-lk" not in names
    assert names.index("resnet18-mod") < names.index("resnet101-mod")


def test_unknown_model_suggests_closest():
    with pytest.raises(UserInputError, match="did you mean resnet75-mod") as info:
        get_entry("resnet75-mdo")
    assert info.value.exit_code == 2


def test_create_model_is_seeded_and_in_eval_mode():
    a = create_model("resnet18-mod-cifar10")
    b = create_model("resnet18-mod-cifar10")
    c = create_model("resnet18-mod-cifar10", seed=1)
    assert not a.training
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)


def test_overrides_reach_the_builder():
    model = create_model("resnet18-cifar10", num_classes=7)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_register_model_rejects_bad_names_and_papers():
    with pytest.raises(ValueError):
        register_model("Bad_Name", family="x", paper="cnn-mod")
    with pytest.raises(ValueError):
        register_model("good-name", family="x", paper="no-such-paper")


def test_batchnorm_statistics_are_calibrated_on_random_data():
    calibrated = create_model("resnet50-mod-cifar10")
    raw = create_model("resnet50-mod-cifar10", calibrate=False)
    bn, raw_bn = calibrated.layer3[0].bn2, raw.layer3[0].bn2
    assert torch.equal(raw_bn.running_var, torch.ones_like(raw_bn.running_var))
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert bn.momentum == raw_bn.momentum  # restored after the calibration pass
    with torch.inference_mode():
        out = calibrated(torch.randn(2, 3, 32, 32))
    # activations keep a trained network's scale instead of growing with depth
    assert 1e-3 < out.abs().max().item() < 1e3


def test_a_spec_resolves_without_building_and_records_its_arguments():
    from convbench.models.spec import ModelSpec, resolve_model

    resolved = resolve_model(ModelSpec("resnet18-mod-cifar10", (("impl", "gather-concat"),)))
    assert resolved.name == "resnet18-mod-cifar10[impl=gather-concat]"
    assert resolved.input_shape(2, 48) == (2, 3, 48, 48) and resolved.input_shape(1) == (1, 3, 32, 32)
    identity = resolved.identity()
    assert (identity["family"], identity["paper"], identity["model_source"]) == ("mod", "cnn-mod", "registry")
    assert identity["model_args"] == '{"impl": "gather-concat"}'
    # the family's declared default is recorded too when the user gives no argument
    assert resolve_model("resnet18-mod-cifar10").identity()["model_args"] == '{"impl": "index-embed"}'
    assert resolve_model("resnet18-cifar10").identity()["model_args"] == ""
    model = resolved.build(calibrate=False)
    assert {m.impl for m in model.modules() if hasattr(m, "impl")} == {"gather-concat"}


def test_builder_arguments_are_checked_before_building():
    from convbench.models.spec import ModelSpec, parse_model_args, resolve_model

    assert parse_model_args(["impl=gather-concat", "capacity=32", "flag=true"]) == (
        ("impl", "gather-concat"),
        ("capacity", 32),
        ("flag", True),
    )
    with pytest.raises(UserInputError, match="--model-arg takes key=value"):
        parse_model_args(["impl"])
    with pytest.raises(
        UserInputError, match="model 'resnet18-cifar10' takes no argument 'impl'; it takes: num_classes"
    ):
        resolve_model(ModelSpec("resnet18-cifar10", (("impl", "gather-concat"),)))
    with pytest.raises(UserInputError, match="unknown model 'resnet18-cifar1'; did you mean resnet18-cifar10"):
        resolve_model("resnet18-cifar1")
