"""timm models by name (convbench.models.timm_models): resolution, counting, listing, offline pretrained weights.

Every model here has random weights; pretrained weights are a random state dict written into a throw-away
Hugging Face hub cache, so nothing is downloaded.
"""

import sys

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from convbench.cli.main import app
from convbench.counting.macs import count
from convbench.errors import UserInputError
from convbench.evaluate import evaluate
from convbench.models.spec import ModelOptions, ModelSpec, resolve_model
from convbench.models.timm_models import cached_weights

timm = pytest.importorskip("timm")
runner = CliRunner()
SMALL = "timm/mobilenetv3_small_050"


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Hugging Face hub and torch hub caches with nothing in them (the user's own are never looked at)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield tmp_path / "hf"
    torch.hub.set_dir(old)


def _put_in_hf_cache(cache, repo_id: str, state: dict) -> None:
    from safetensors.torch import save_file

    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def test_timm_resnet50_has_the_registry_resnet50s_parameters_and_macs():
    """Fails if timm/NAME is built at another input size or with other arguments than timm's defaults."""
    ours, theirs = count(resolve_model("resnet50")), count(resolve_model("timm/resnet50"))
    assert theirs.params == ours.params
    assert theirs.macs == ours.macs


def test_input_size_interpolation_and_full_name_come_from_the_pretrained_config():
    """Fails if the size, interpolation or tag is a convbench default instead of the model's own config."""
    cfg = timm.models.get_pretrained_cfg("efficientnet_b3")
    assert cfg.input_size[-1] != 224  # so a 224 default would be caught
    model = resolve_model("timm/efficientnet_b3")
    assert model.input_size == tuple(cfg.input_size)
    assert model.preprocessing["interpolation"] == cfg.interpolation
    assert model.preprocessing["crop_pct"] == cfg.crop_pct
    row = model.identity()
    assert row["timm_version"] == timm.__version__
    assert row["timm_name"] == f"efficientnet_b3.{cfg.tag}"  # the untagged name resolves to its default tag
    assert row["model_source"] == "timm"


def test_a_tagged_name_and_a_resolution_override():
    """Fails if the tag is dropped from the recorded name or --resolution does not reach the input size."""
    model = resolve_model("timm/resnet18.a1_in1k", resolution=160)
    assert model.identity()["timm_name"] == "resnet18.a1_in1k"
    assert model.input_shape(2) == (2, 3, 160, 160)


def test_the_model_builds_with_random_seeded_weights():
    """Fails if two builds differ (weights not from convbench's seed) or the output size is not the config's."""
    model = resolve_model(SMALL)
    first, second = model.build(calibrate=False), model.build(calibrate=False)
    x = torch.randn(1, *model.input_size)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
    assert first(x).shape == (1, 1000)


def test_unknown_names_get_the_nearest_ones():
    """Fails if a typo or a wrong tag gives a traceback or no suggestion."""
    line = one_line_error(runner.invoke(app, ["count", "timm/resnet5O"]))
    assert "timm/resnet50" in line
    line = one_line_error(runner.invoke(app, ["count", "timm/resnet50.no_such_tag"]))
    assert "timm/resnet50.a1_in1k" in line or "timm/resnet50." in line


def test_without_timm_one_line_says_how_to_install_it(monkeypatch):
    """Fails if a missing timm surfaces as an ImportError traceback."""
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UserInputError, match=r"pip install 'convbench\[timm\]'"):
        resolve_model("timm/resnet18")
    line = one_line_error(runner.invoke(app, ["list", "timm/resnet*"]))
    assert "pip install" in line


def test_list_shows_timm_names_and_only_them():
    """Fails if list builds or filters registry models for a timm/ pattern, or forgets the prefix."""
    result = runner.invoke(app, ["list", "timm/resnet1*"])
    assert result.exit_code == 0, result.output
    names = result.output.split()
    assert "timm/resnet18" in names and "timm/resnet101" in names
    assert all(n.startswith("timm/resnet1") for n in names)
    tags = runner.invoke(app, ["list", "timm/resnet18.*"]).output.split()
    assert "timm/resnet18.a1_in1k" in tags
    one_line_error(runner.invoke(app, ["list", "timm/no_such_model*"]))


def test_plain_list_does_not_import_timm():
    """Fails if `convbench list` (no timm/ pattern) pays timm's import."""
    import subprocess

    code = (
        "import sys; from typer.testing import CliRunner; from convbench.cli.main import app; "
        "r = CliRunner().invoke(app, ['list', 'resnet50']); assert r.exit_code == 0, r.output; "
        "assert 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pretrained_without_cached_weights_is_one_line(empty_caches):
    """Fails if --pretrained tries a download or gives a traceback when the weights are not cached."""
    line = one_line_error(runner.invoke(app, ["count", "timm/resnet18", "--pretrained"]))
    assert "not available offline" in line


def test_pretrained_applies_to_timm_models_only():
    """Fails if --pretrained is silently ignored for a registered model (whose accuracy would be chance)."""
    with pytest.raises(UserInputError, match="timm/NAME"):
        ModelOptions(pretrained=True).specs(["resnet18-cifar10"])
    (spec,) = ModelOptions(pretrained=True).specs(["timm/resnet18"])
    assert dict(spec.args)["pretrained"] is True


def test_cached_pretrained_weights_are_loaded_and_not_recalibrated(empty_caches):
    """Fails if the cached file is not what is loaded, or BatchNorm calibration overwrites its statistics."""
    cfg = timm.models.get_pretrained_cfg("resnet18").to_dict()
    reference = timm.create_model("resnet18")
    with torch.no_grad():
        reference.bn1.running_mean.uniform_(5, 6)  # no calibration on random data gives this
    _put_in_hf_cache(empty_caches, cfg["hf_hub_id"], reference.state_dict())
    assert cached_weights(cfg) is not None

    model = resolve_model(ModelSpec("timm/resnet18", (("pretrained", True),)))
    built = model.build()
    assert torch.equal(built.bn1.running_mean, reference.bn1.running_mean)
    assert torch.equal(built.conv1.weight, reference.conv1.weight)
    row = model.identity()
    assert row["weights_digest"] and row["bn_calibrated"] is False and "model.safetensors" in row["weights"]
    # counting builds the graph only
    assert count(model).params == count(resolve_model("timm/resnet18")).params


def test_evaluate_uses_the_models_own_preprocessing(tmp_path):
    """Fails if a timm model is evaluated with convbench's defaults instead of its config's crop and interpolation."""
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 40), colour).save(tmp_path / name / "0.png")
    model = resolve_model(SMALL, num_classes=2, resolution=32)
    result = evaluate(model, tmp_path, batch_size=2)
    cfg = timm.models.get_pretrained_cfg("mobilenetv3_small_050")
    assert result.interpolation == cfg.interpolation
    assert result.crop_pct == cfg.crop_pct
    assert result.as_row()["timm_name"].startswith("mobilenetv3_small_050")
    overridden = evaluate(model, tmp_path, batch_size=2, interpolation="nearest", crop_pct=1.0)
    assert overridden.interpolation == "nearest" and overridden.crop_pct == 1.0
