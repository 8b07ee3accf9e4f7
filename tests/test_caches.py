"""Caches that are never stale and never torn: keys follow the code, entries appear whole or not at all, a damaged
entry is rebuilt with a note, and an unwritable cache is one line naming it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import convbench
import convbench.cache as cache_module
import convbench.counting.macs as macs
import convbench.export as export_module
from convbench.errors import UserInputError
from convbench.models.spec import resolve_model

PACKAGE = Path(convbench.__file__).parent
TINY = """
from torch import nn
default_input_size = (3, 16, 16)
def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))
"""


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CONVBENCH_CACHE", str(root))
    return root


@pytest.fixture
def tiny_model(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return f"{path}:build"


# The cache root -----------------------------------------------------------------------------------------


def test_the_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "a"))
    assert cache_module.cache_root() == tmp_path / "a"
    monkeypatch.delenv("CONVBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_module.cache_root() == tmp_path / "xdg" / "convbench"
    assert export_module.cache_dir() == cache_module.cache_root()


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convbench"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


@pytest.mark.parametrize("module", ["export.py", "timing/peak.py", "models/registry.py", "counting/macs.py"])
def test_cache_users_import_no_private_name(module):
    """Fails when a module reaches into another's private helpers (``registry._cache_root`` was one)."""
    assert _private_imports(PACKAGE / module) == []


# Keys follow the code ---------------------------------------------------------------------------------


def test_a_source_digest_changes_with_any_file_it_covers(tmp_path, monkeypatch):
    """Fails if an edit to a counting rule keeps the digest (and with it the cached counts) unchanged."""
    (tmp_path / "counting").mkdir()
    (tmp_path / "counting" / "macs.py").write_text("RULE = 1\n")
    (tmp_path / "export.py").write_text("EXPORT = 1\n")
    monkeypatch.setattr(cache_module, "PACKAGE_ROOT", tmp_path)
    cache_module.source_digest.cache_clear()
    try:
        before = cache_module.source_digest("counting", "export.py")
        assert cache_module.source_digest("export.py", "counting") == before  # order does not matter
        (tmp_path / "counting" / "macs.py").write_text("RULE = 2\n")
        cache_module.source_digest.cache_clear()
        after_counting = cache_module.source_digest("counting", "export.py")
        (tmp_path / "export.py").write_text("EXPORT = 2\n")
        cache_module.source_digest.cache_clear()
        after_export = cache_module.source_digest("counting", "export.py")
    finally:
        cache_module.source_digest.cache_clear()
    assert len({before, after_counting, after_export}) == 3


def test_count_keys_follow_the_counting_code_not_the_version_number(monkeypatch):
    """Fails if the count cache is keyed by ``convbench.__version__`` (unchanged since the first commit) instead
    of the source of the counting code."""
    model = resolve_model("resnet18-cifar10")
    shape = (1, 3, 32, 32)
    base = macs._cache_path(model, shape, "convbench")
    monkeypatch.setattr(convbench, "__version__", "99.0")
    assert macs._cache_path(model, shape, "convbench") == base
    monkeypatch.setattr(macs, "count_code_digest", lambda: "edited-rule")
    assert macs._cache_path(model, shape, "convbench") != base


def test_export_keys_follow_the_export_code(monkeypatch):
    model = resolve_model("resnet18-cifar10")
    seen = []

    def fake_export(resolved, shape, exporter, opset, directory, replace=False):
        seen.append(directory)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(export_module, "_export_to_cache", fake_export)
    monkeypatch.setattr(export_module, "_valid_cached", lambda directory: None)
    for digest in ("code-a", "code-a", "code-b"):
        monkeypatch.setattr(export_module, "export_code_digest", lambda digest=digest: digest)
        with pytest.raises(KeyboardInterrupt):
            export_module.export_onnx(model)
    assert seen[0] == seen[1] != seen[2]


def test_the_real_digests_cover_the_files_they_name():
    cache_module.source_digest.cache_clear()
    assert macs.count_code_digest() == cache_module.source_digest("counting", "export.py")
    assert export_module.export_code_digest() == cache_module.source_digest("export.py")
    assert macs.count_code_digest() != export_module.export_code_digest()


# Export entries: whole or not at all ------------------------------------------------------------------


def _entry(folder: Path, label: str = "mine") -> Path:
    """A complete export entry as ``_export_to_cache`` stages it: a small valid ONNX model and its export.json."""
    folder.mkdir(parents=True)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], label, [x], [y], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), folder / "model.onnx")
    meta = {
        "model": label,
        "input_shape": [1, 4],
        "exporter": "dynamo",
        "opset": 18,
        "max_abs_diff": 0.0,
        "tolerance": 1e-7,
        "export_seconds": 0.1,
        "onnx_bytes": (folder / "model.onnx").stat().st_size,
    }
    (folder / "export.json").write_text(json.dumps(meta))
    return folder


def _result(directory: Path, label: str) -> export_module.ExportResult:
    return export_module.ExportResult(directory / "model.onnx", label, (1, 4), "dynamo", 18, 0.0, 1e-7, 0.1, False)


def test_a_second_export_keeps_the_first_complete_entry_and_discards_its_own(tmp_path):
    """Fails with the old rmtree-then-replace: the loser deleted the winner's entry under its readers (or hit
    ENOTEMPTY). Here a reader holds the winner's model.onnx open: it must stay the same file, whole."""
    directory = tmp_path / "onnx" / "model-key"
    first = export_module._install(_entry(tmp_path / "onnx" / ".export-a", "first"), directory, _result(directory, "a"))
    assert first.model == "a" and not first.cached
    with (directory / "model.onnx").open("rb") as reader:
        inode = os.fstat(reader.fileno()).st_ino
        second = export_module._install(
            _entry(tmp_path / "onnx" / ".export-b", "second"), directory, _result(directory, "b")
        )
        assert (directory / "model.onnx").stat().st_ino == inode  # the reader's file was not replaced
        assert onnx.load_from_string(reader.read()).graph.name == "first"
    assert second.cached and second.model == "first"  # the winner's entry, read back
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir() if not p.name.endswith(".lock")) == ["model-key"]


def test_a_damaged_entry_is_replaced_whole(tmp_path):
    directory = _entry(tmp_path / "onnx" / "model-key", "old")
    (directory / "model.onnx").write_bytes(b"")
    staged = _entry(tmp_path / "onnx" / ".export-n", "new")
    installed = export_module._install(staged, directory, _result(directory, "n"))
    assert installed.model == "n"
    assert onnx.load(str(directory / "model.onnx")).graph.name == "new"
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir() if not p.name.endswith(".lock")) == ["model-key"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:-9]), id="truncated"),
        pytest.param(lambda d: (d / "model.onnx").write_bytes(b"\x00garbage"), id="not-onnx"),
        pytest.param(lambda d: (d / "export.json").write_text('{"model": "x", '), id="broken-json"),
        pytest.param(lambda d: (d / "model.onnx").unlink(), id="missing-model"),
    ],
)
def test_a_damaged_entry_is_detected_with_a_one_line_note(tmp_path, capsys, damage):
    """Fails if a cut or broken entry is served (a truncated protobuf can still parse: the recorded size
    catches it) or is rebuilt silently."""
    directory = _entry(tmp_path / "entry")
    assert export_module._valid_cached(directory) is not None
    damage(directory)
    assert export_module._valid_cached(directory) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(directory) in err[0] and "again" in err[0]


def test_a_missing_entry_is_no_news(tmp_path, capsys):
    assert export_module._valid_cached(tmp_path / "absent") is None
    assert capsys.readouterr().err == ""


def test_an_unwritable_cache_is_one_line_naming_it(tmp_path, monkeypatch, tiny_model):
    """Fails with a traceback (NotADirectoryError from mkdtemp) instead of a line naming the cache."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CONVBENCH_CACHE", str(blocker / "cache"))
    with pytest.raises(UserInputError) as info:
        export_module.export_onnx(tiny_model, exporter="torchscript")
    message = str(info.value)
    assert str(blocker / "cache" / "onnx") in message and "CONVBENCH_CACHE" in message and "\n" not in message


# Count entries ----------------------------------------------------------------------------------------


def test_a_broken_count_entry_is_counted_again_with_a_note(own_cache, tiny_model, capsys):
    first = macs.count(tiny_model)
    assert not first.cached and macs.count(tiny_model).cached
    resolved = resolve_model(tiny_model)
    path = macs._cache_path(resolved, resolved.input_shape(1), first.convention)
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    again = macs.count(tiny_model)
    assert not again.cached and again.macs == first.macs
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    assert macs.count(tiny_model).cached  # rewritten whole
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".count-")]


# Real exports (slow) ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_truncated_export_is_exported_again(own_cache, tiny_model, capsys):
    first = export_module.export_onnx(tiny_model, exporter="torchscript")
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    again = export_module.export_onnx(tiny_model, exporter="torchscript")
    assert not again.cached and again.path == first.path
    onnx.checker.check_model(str(again.path))
    assert "is damaged" in capsys.readouterr().err
    assert export_module.export_onnx(tiny_model, exporter="torchscript").cached


EXPORT_IN_CHILD = """
import sys, time
from pathlib import Path
from convbench.export import export_onnx
print("ready", flush=True)
while not Path(sys.argv[2]).exists():  # both start exporting at once
    time.sleep(0.01)
print(export_onnx(sys.argv[1], exporter="torchscript").path, flush=True)
"""


@pytest.mark.slow
def test_two_processes_exporting_one_model_share_one_whole_entry(own_cache, tiny_model):
    """Fails with the old rmtree + os.replace: the second process hit ENOTEMPTY or removed the first's entry."""
    go = own_cache.parent / "go"
    # Fresh interpreters, not forks: a fork of a process that has run torch can deadlock in its thread pool.
    command = [sys.executable, "-c", EXPORT_IN_CHILD, tiny_model, str(go)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    go.write_text("")
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [c.returncode for c in children] == [0, 0]
    paths = {out.strip() for out in outputs}
    assert len(paths) == 1
    entry = Path(paths.pop()).parent
    onnx.checker.check_model(str(entry / "model.onnx"))
    assert sorted(p.name for p in entry.parent.iterdir() if not p.name.endswith(".lock")) == [entry.name]
