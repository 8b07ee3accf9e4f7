"""What must stay fast or cached: no PyTorch import for list/--help/cached counts, and caches keyed right."""

import dataclasses
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convbench
import convbench.export as export_module
import convbench.models.registry as registry
from convbench.cache import cache_root
from convbench.models.spec import ModelSpec, resolve_model

PACKAGE = Path(convbench.__file__).parent
SHAPE = (1, 3, 32, 32)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter with this session's CONVBENCH_CACHE; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Called(Exception):
    pass


def _raise(*args, **kwargs):
    raise _Called


# No PyTorch where none is needed -----------------------------------------------------------------------


LIST_AND_HELP = """
import sys
from convbench.cli.main import app
app(["list"], standalone_mode=False)
for args in (["--help"], ["profile", "--help"], ["compare", "--help"]):
    try:
        app(args, standalone_mode=False)
    except SystemExit:
        pass
print("TORCH-LOADED", "torch" in sys.modules)
"""


def test_list_and_help_do_not_import_torch():
    run_python("from convbench.cli.main import app\napp(['list'], standalone_mode=False)")  # the index exists now
    out = run_python(LIST_AND_HELP)
    assert "resnet18-cifar10" in out  # list did print the models
    assert "--batch-size" in out  # and the help its options
    assert out.strip().splitlines()[-1] == "TORCH-LOADED False"


COUNT_RESNET50 = """
import sys
from convbench.counting.macs import count
result = count("resnet50")
print("RESULT", result.cached, "torch" in sys.modules, result.macs, result.params)
"""


@pytest.mark.slow  # counts ResNet50 in a fresh interpreter
def test_a_second_count_comes_from_the_cache_without_torch():
    first = run_python(COUNT_RESNET50).strip().splitlines()[-1].split()
    second = run_python(COUNT_RESNET50).strip().splitlines()[-1].split()
    assert second[1:3] == ["True", "False"]  # cached, and torch never imported
    assert second[3:] == first[3:]  # the same MACs and parameters
    assert int(second[3]) > 4e9


# Counting does not calibrate, building does ------------------------------------------------------------


def _patch_calibration(monkeypatch, replacement) -> None:
    """Replace calibrate_batchnorm where it is defined and where it is imported by name."""
    patched = 0
    for name in ("convbench.models.calibration", "convbench.models.registry"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "calibrate_batchnorm"):
            monkeypatch.setattr(module, "calibrate_batchnorm", replacement)
            patched += 1
    assert patched


def test_counting_never_calibrates_batchnorm(monkeypatch):
    from convbench.counting.macs import count

    _patch_calibration(monkeypatch, _raise)
    result = count(ModelSpec("resnet18-cifar10"), use_cache=False)
    assert result.macs > 0 and not result.cached
    with pytest.raises(_Called):  # the patch is live: building does reach it
        resolve_model("resnet18-cifar10").build()


def test_building_calibrates_batchnorm(monkeypatch):
    calls = []
    _patch_calibration(monkeypatch, lambda module, size: calls.append(size))
    model = resolve_model("resnet18-cifar10")
    model.build()
    assert calls == [model.input_size]
    model.build(calibrate=False)
    model.build(counting=True, calibrate=False)
    assert len(calls) == 1


# Cache keys --------------------------------------------------------------------------------------------


def _fake_version(monkeypatch, package: str, value: str) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: value if name == package else real(name))


def _export_directory(model) -> Path:
    """The cache folder ``export_onnx`` would use for ``model`` (nothing is exported)."""
    seen = []

    def fake_export(resolved, shape, exporter, opset, directory, replace=False):
        seen.append(directory)
        raise _Called

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "_valid_cached", lambda directory: None)
        patch.setattr(export_module, "_export_to_cache", fake_export)
        with pytest.raises(_Called):
            export_module.export_onnx(model, batch_size=1)
    return seen[0]


def test_export_cache_key_follows_the_model_sources():
    model = resolve_model("resnet18-cifar10")
    edited = dataclasses.replace(model, digest="edited-sources")
    versions = export_module.library_versions("dynamo")
    assert export_module.model_cache_key(model, SHAPE, versions=versions) != export_module.model_cache_key(
        edited, SHAPE, versions=versions
    )
    assert _export_directory(model) != _export_directory(edited)


def test_export_cache_key_follows_the_torchvision_version(monkeypatch):
    model = resolve_model("resnet18-cifar10")
    before_versions = export_module.library_versions("dynamo")
    before = _export_directory(model)
    assert _export_directory(model) == before  # the same inputs, the same folder
    _fake_version(monkeypatch, "torchvision", "0.0.1-test")
    after_versions = export_module.library_versions("dynamo")
    assert after_versions["torchvision"] == "0.0.1-test" != before_versions["torchvision"]
    assert export_module.model_cache_key(model, SHAPE, versions=before_versions) != export_module.model_cache_key(
        model, SHAPE, versions=after_versions
    )
    assert _export_directory(model) != before


def test_count_cache_key_follows_sources_and_versions(monkeypatch):
    from convbench.counting.macs import _cache_path

    model = resolve_model("resnet18-cifar10")
    base = _cache_path(model, SHAPE, "convbench")
    assert _cache_path(dataclasses.replace(model, digest="edited-sources"), SHAPE, "convbench") != base
    assert _cache_path(model, SHAPE, "fvcore") != base
    _fake_version(monkeypatch, "torchvision", "0.0.1-test")
    assert _cache_path(model, SHAPE, "convbench") != base


def test_the_cache_key_is_stable_for_the_same_inputs():
    first = resolve_model("resnet18-cifar10")
    second = resolve_model("resnet18-cifar10")
    versions = export_module.library_versions("dynamo")
    assert export_module.model_cache_key(first, SHAPE, versions=versions) == export_module.model_cache_key(
        second, SHAPE, versions=versions
    )


# The registry index ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_index():
    registry.model_index.cache_clear()
    yield
    registry.model_index.cache_clear()


def _index_files() -> set[Path]:
    return set((cache_root() / "index").glob("models-*.json"))


def test_the_index_is_read_from_its_file_without_importing_the_families(monkeypatch, fresh_index):
    registry.model_index()  # written if it was not there
    registry.model_index.cache_clear()
    monkeypatch.setattr(registry, "_load_everything", _raise)
    assert "resnet18-cifar10" in registry.model_index()


def test_the_index_is_rebuilt_when_a_model_source_changes(monkeypatch, fresh_index):
    registry.model_index()
    before = _index_files()
    loads = []
    real_load = registry._load_everything
    monkeypatch.setattr(registry, "models_source_digest", lambda: "edited-" + os.urandom(4).hex())
    monkeypatch.setattr(registry, "_load_everything", lambda: (loads.append(1), real_load())[1])
    registry.model_index.cache_clear()
    index = registry.model_index()
    assert loads == [1]  # the families were imported again, not the old file read
    new = _index_files() - before
    assert len(new) == 1
    assert "resnet18-cifar10" in index and "resnet18-cifar10" in new.pop().read_text()


# Generic modules know no model family ------------------------------------------------------------------


GENERIC_MODULES = sorted(
    str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "models"
)


@pytest.mark.parametrize("module", GENERIC_MODULES)
def test_generic_modules_know_no_model_family(module):
    """Fails when family code (MoD's implementations, its counting variant) leaks into a generic module."""
    source = (PACKAGE / module).read_text()
    for text in ("models.mod", "mod_impl", '"mod"', "DEFAULT_MOD_IMPL", "COUNTING_IMPL"):
        assert text not in source, f"convbench/{module} mentions {text}"


RUNTIME_LIBRARIES = re.compile(
    r"^\s*(import|from) (onnxruntime|openvino)\b|torch\.cuda|convbench\.runtimes\.(?!base\b)\w+ import", re.M
)


@pytest.mark.parametrize("module", [m for m in GENERIC_MODULES if not m.startswith("runtimes/")])
def test_runtime_libraries_stay_in_their_runtime(module):
    """Fails when a module outside runtimes/ imports a runtime library or a runtime's own module directly."""
    found = RUNTIME_LIBRARIES.search((PACKAGE / module).read_text())
    assert found is None, f"convbench/{module}: {found.group(0).strip() if found else ''}"
