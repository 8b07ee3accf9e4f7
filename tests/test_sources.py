"""Models from outside the registry: builder files, modules, entry-point plugins, and their bad inputs."""

import hashlib
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from convbench.errors import UserInputError
from convbench.models import create_model, get_entry, list_models, registry
from convbench.models.spec import ModelSpec, resolve_model

EXAMPLES = Path(__file__).parents[1] / "examples"

BUILDERS = '''
import torch
from torch import nn

default_input_size = (3, 48, 48)


def build(num_classes=1000, in_chans=3, width=4):
    return nn.Sequential(nn.Conv2d(in_chans, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))


def fixed(width=4):
    """Takes neither in_chans nor num_classes: they must not be passed."""
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))


def anything(**kwargs):
    anything.seen = kwargs
    return nn.Linear(2, 2)


def broken(width=4):
    raise ValueError("width must be even\\nsecond line")


def not_a_module():
    return [1, 2]


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))

not_callable = 3
'''


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(BUILDERS)
    return path


def test_file_builder_gets_accepted_arguments_only(model_file):
    resolved = resolve_model(ModelSpec(f"{model_file}:build", (("width", 6),)), in_chans=1, num_classes=7)
    assert resolved.kind == "file" and resolved.family == "custom" and resolved.paper == ""
    assert resolved.builder_args == {"width": 6, "in_chans": 1, "num_classes": 7}
    assert resolved.input_size == (1, 48, 48)  # default_input_size, with the channels asked for
    assert resolved.num_classes == 7
    assert resolved.digest == hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    assert resolved.origin == f"{model_file.resolve()}:build"
    model = resolved.build()
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)

    fixed = resolve_model(f"{model_file}:fixed", in_chans=1, num_classes=7, resolution=20)
    assert fixed.builder_args == {}  # the builder takes neither
    assert fixed.input_size == (1, 20, 20)
    assert fixed.build()(torch.randn(1, 1, 20, 20)).shape == (1, 2)

    anything = resolve_model(f"{model_file}:anything", num_classes=5)
    anything.build()
    assert anything.builder.seen == {"num_classes": 5}  # **kwargs takes them


def test_a_class_is_a_builder_and_resolution_overrides(model_file):
    resolved = resolve_model(f"{model_file}:Net", resolution=16)
    assert resolved.input_size == (3, 16, 16) and resolved.num_classes == 10  # the signature's default
    assert resolved.build()(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_input_size_unknown_asks_for_resolution(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("from torch import nn\ndef build():\n    return nn.Conv2d(3, 4, 3)\n")
    resolved = resolve_model(f"{path}:build")
    assert resolved.input_size is None
    with pytest.raises(UserInputError, match=r"--resolution"):
        resolved.input_shape(1)
    assert resolve_model(f"{path}:build", resolution=32).input_shape(2) == (2, 3, 32, 32)


def test_timm_style_default_cfg_gives_the_input_size(tmp_path):
    path = tmp_path / "timmish.py"
    path.write_text(
        "from torch import nn\ndef build():\n    return nn.Conv2d(3, 4, 3)\n"
        "build.default_cfg = {'input_size': (3, 160, 160)}\n"
    )
    assert resolve_model(f"{path}:build").input_size == (3, 160, 160)


def test_edited_file_is_imported_again(tmp_path):
    path = tmp_path / "grow.py"
    path.write_text("from torch import nn\ndef build():\n    return nn.Linear(2, 3)\n")
    first = resolve_model(f"{path}:build", resolution=8)
    assert resolve_model(f"{path}:build", resolution=8).builder is first.builder  # same content, same module
    path.write_text("from torch import nn\ndef build():\n    return nn.Linear(2, 5)\n")
    second = resolve_model(f"{path}:build", resolution=8)
    assert second.digest != first.digest
    assert second.build().out_features == 5


def test_module_builder_and_its_digest(tmp_path, monkeypatch):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(BUILDERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    resolved = resolve_model("mynets.small:build", num_classes=3)
    assert resolved.kind == "module" and resolved.origin == "mynets.small:build"
    assert resolved.digest == hashlib.sha256((package / "small.py").read_bytes()).hexdigest()[:16]
    assert resolved.build()(torch.randn(1, 3, 48, 48)).shape == (1, 3)
    for name in ("mynets.small", "mynets"):
        monkeypatch.delitem(sys.modules, name)


def test_example_model_file():
    resolved = resolve_model(f"{EXAMPLES / 'my_model.py'}:build", num_classes=10)
    assert resolved.input_size == (3, 224, 224)
    assert resolved.build()(torch.randn(1, 3, 64, 64)).shape == (1, 10)


# --- Bad inputs ---------------------------------------------------------------------------------------------


def _one_line_error(spec, match, **options):
    with pytest.raises(UserInputError, match=match) as info:
        resolve_model(spec, **options).build()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    _one_line_error(f"{tmp_path / 'absent.py'}:build", r"model file .*absent\.py does not exist")


def test_file_that_does_not_import(tmp_path):
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def build(:\n    pass\n")
    _one_line_error(f"{syntax}:build", r"syntax\.py failed to import: SyntaxError")
    missing = tmp_path / "needs.py"
    missing.write_text("import not_installed_anywhere\n")
    _one_line_error(f"{missing}:build", r"failed to import: ModuleNotFoundError: No module named 'not_installed")
    exits = tmp_path / "script.py"
    exits.write_text("raise SystemExit(2)\n")
    _one_line_error(f"{exits}:build", r"failed to import: SystemExit")


def test_module_that_does_not_import(tmp_path, monkeypatch):
    _one_line_error("no_such_package_xyz.models:build", r"module no_such_package_xyz\.models does not import")
    (tmp_path / "raising_mod.py").write_text("raise RuntimeError('first\\nthe last line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _one_line_error("raising_mod:build", r"module raising_mod does not import: RuntimeError")
    assert message.endswith("the last line")


def test_no_such_builder_lists_what_the_file_defines(model_file):
    message = _one_line_error(f"{model_file}:bulid", r"no builder 'bulid' in .*nets\.py; it defines:")
    for name in ("build", "fixed", "Net"):
        assert name in message
    assert "nn" not in message.split("defines:")[1].split(", ")  # imported names are not the file's
    _one_line_error(f"{model_file}:not_callable", r"'not_callable' .* is a int, not a callable builder")


def test_builder_that_raises_or_returns_no_module(model_file):
    _one_line_error(f"{model_file}:broken", r"builder of .*broken raised ValueError: second line", resolution=8)
    _one_line_error(f"{model_file}:not_a_module", r"returned list, not a torch\.nn\.Module", resolution=8)


def test_unknown_builder_argument(model_file):
    spec = ModelSpec(f"{model_file}:build", (("depth", 3),))
    _one_line_error(spec, r"takes no argument 'depth'; it takes: num_classes")


def test_bad_default_input_size(tmp_path):
    path = tmp_path / "badsize.py"
    path.write_text("from torch import nn\ndefault_input_size = (224, 224)\ndef build():\n    return nn.Linear(1, 1)\n")
    _one_line_error(f"{path}:build", r"default_input_size .* must be \(channels, height, width\)")


def test_spec_without_builder_name(tmp_path):
    (tmp_path / "m.py").write_text("")
    _one_line_error(f"{tmp_path / 'm.py'}:", r"name the builder as path/to/file\.py:builder")


# --- Entry-point plugins ------------------------------------------------------------------------------------

PLUGIN_DIST = "convbench-example-plugin"
PLUGIN_MODULE = "convbench_example_plugin"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The example plugin as pip would install it: the package and a dist-info with its entry point."""
    site = tmp_path / "site"
    shutil.copytree(EXAMPLES / "plugin" / PLUGIN_MODULE, site / PLUGIN_MODULE)
    dist_info = site / "convbench_example_plugin-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN_DIST}\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
        [convbench.models]
        myplugin = {PLUGIN_MODULE}.models
        """)
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    registry.model_index.cache_clear()
    yield
    # Leave the registry as the other tests expect it: without the plugin and its models.
    for name in [n for n, e in registry._REGISTRY.items() if e.module.startswith(PLUGIN_MODULE)]:
        registry._REGISTRY.pop(name)
        registry._BUILDERS.pop(name, None)
    for name in [m for m in sys.modules if m.startswith(PLUGIN_MODULE)]:
        del sys.modules[name]
    registry.model_index.cache_clear()


def test_entry_point_plugin_is_listed_and_builds(installed_plugin):
    assert "tiny-convnet" in list_models()
    entry = get_entry("tiny-convnet")
    assert entry.source == f"plugin {PLUGIN_DIST} 0.1.0"
    assert (entry.family, entry.paper, entry.input_size, entry.num_classes) == ("example", "example", (3, 32, 32), 10)
    resolved = resolve_model("tiny-convnet")
    assert resolved.origin == f"tiny-convnet (plugin {PLUGIN_DIST} 0.1.0)"
    assert resolved.build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert create_model("tiny-convnet", num_classes=4)(torch.randn(1, 3, 32, 32)).shape == (1, 4)


def test_plugin_models_come_from_the_index_file_without_importing_the_plugin(installed_plugin):
    list_models()  # writes the index
    registry.model_index.cache_clear()
    for name in [n for n, e in registry._REGISTRY.items() if e.module.startswith(PLUGIN_MODULE)]:
        registry._REGISTRY.pop(name)
        registry._BUILDERS.pop(name, None)
    for name in [m for m in sys.modules if m.startswith(PLUGIN_MODULE)]:
        del sys.modules[name]
    assert get_entry("tiny-convnet").source == f"plugin {PLUGIN_DIST} 0.1.0"
    assert PLUGIN_MODULE + ".models" not in sys.modules
    assert create_model("tiny-convnet")(torch.randn(1, 3, 32, 32)).shape == (1, 10)  # imported when built
