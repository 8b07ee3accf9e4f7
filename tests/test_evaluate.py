"""Accuracy on generated image folders whose correct top-1 / top-5 are known by construction."""

import json
import math
import warnings

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from convbench.cli.evaluate import evaluate_command, parse_floats
from convbench.errors import UserInputError
from convbench.evaluate import evaluate, index_folder
from convbench.models.spec import ModelSpec, resolve_model
from convbench.results.files import read_rows

# Classes are the sorted folder names: blue (0), green (1), red (2). The model scores each class by the mean
# of one colour channel, so a solid image is predicted as its dominant channel; the "green" folder holds
# cyan images, whose blue channel normalises higher than green ((1 - 0.406) / 0.225 > (1 - 0.456) / 0.224):
# they are all predicted blue, and the exact top-1 is 2/3.
COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 255), "red": (255, 0, 0)}
PER_CLASS = 2

MODELS = '''
import torch
from torch import nn

default_input_size = (3, 32, 32)


class MeanColour(nn.Module):
    """Output ``positions[c]`` is the mean of colour c (blue, green, red); every other output is ``others``."""

    def __init__(self, num_classes=3, positions=(0, 1, 2), others=0.0):
        super().__init__()
        self.num_classes, self.others = num_classes, others
        self.direct = num_classes == 3 and tuple(positions) == (0, 1, 2)
        self.register_buffer("positions", torch.tensor(positions))

    def forward(self, x):
        means = x.mean(dim=(2, 3))[:, [2, 1, 0]]
        if self.direct:
            return means
        out = torch.full((x.shape[0], self.num_classes), self.others)
        return out.index_copy(1, self.positions, means)


def colour(num_classes=3, positions=(0, 1, 2), others=0.0):
    return MeanColour(num_classes, positions, others)


def ranked(num_classes=6):
    """The same scores for every image, highest for class 0: top-1 is class 0, top-5 classes 0-4."""
    return Ranked(num_classes)


class Ranked(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.register_buffer("scores", torch.arange(num_classes, 0, -1).float())

    def forward(self, x):
        return self.scores.expand(x.shape[0], -1) + 0 * x.mean()
'''


def _write_images(root, colours, per_class=PER_CLASS, size=(40, 36)):
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, rgb).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def colours(tmp_path):
    return _write_images(tmp_path / "colours", COLOURS)


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "colour_models.py"
    path.write_text(MODELS)
    return path


def _model(models, builder="colour", args=(), **options):
    return resolve_model(ModelSpec(f"{models}:{builder}", tuple(args)), **options)


class Recorder:
    def __init__(self):
        self.phases, self.steps = [], 0

    def phase(self, description, total):
        self.phases.append((description, total))

    def advance(self, steps=1):
        self.steps += steps


def test_exact_top1_by_construction(colours, models):
    progress = Recorder()
    result = evaluate(_model(models), colours, batch_size=4, progress=progress)
    assert result.top1 == pytest.approx(100 * 2 / 3)
    assert math.isnan(result.top5)  # three classes: no top-5
    assert (result.images, result.skipped, result.classes) == (6, 0, 3)
    assert (result.resolution, result.resize, result.crop_pct) == (32, 36, 0.875)  # int(32 / 0.875)
    assert progress.phases[0][1] == 6 and progress.steps == 6
    row = result.as_row()
    assert row["top1_measured"] == pytest.approx(66.6667) and row["top1_source"] == "measured"
    assert (row["eval_images"], row["eval_skipped"], row["eval_data"]) == (6, 0, str(colours))
    assert row["model_source"] == "file" and row["model_digest"] == result.model.digest
    assert row["eval_mean"] == "0.485,0.456,0.406" and row["eval_interpolation"] == "bilinear"


def test_top5_and_limit_take_classes_in_turn(tmp_path, models):
    six = {f"c{i}": (40 * i, 0, 0) for i in range(6)}
    data = _write_images(tmp_path / "six", six)
    ranked = _model(models, "ranked")
    full = evaluate(ranked, data)
    assert (full.top1, full.top5, full.images) == (pytest.approx(100 / 6), pytest.approx(500 / 6), 12)
    # The first six images of the class-interleaved order are one per class; the first six in folder order
    # would be three classes' (top-1 2/6).
    limited = evaluate(ranked, data, limit=6)
    assert (limited.top1, limited.top5, limited.images, limited.limit) == (
        pytest.approx(100 / 6),
        pytest.approx(500 / 6),
        6,
        6,
    )
    order = index_folder(data).ordered(6)
    assert [target for _, target in order] == [0, 1, 2, 3, 4, 5]


def test_model_with_other_class_count_needs_a_class_map(colours, models):
    ten = _model(models, args=[("positions", (7, 3, 5)), ("others", 100.0)], num_classes=10)
    with pytest.raises(UserInputError, match=r"10 outputs but the data has 3 classes; give --class-map"):
        evaluate(ten, colours)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("map.json", json.dumps({"red": 5, "green": 3, "blue": 7, "not-a-folder": 1})),
        ("map.txt", "# folder output\nblue 7\ngreen 3\nred 5\n"),
        ("bare.txt", "7\n3\n5\n"),  # one line per folder in sorted order: blue, green, red
    ],
)
def test_class_map_restricts_predictions_to_mapped_outputs(tmp_path, colours, models, name, content):
    # Every unmapped output scores 100: without the restriction nothing would be predicted right.
    ten = _model(models, args=[("positions", (7, 3, 5)), ("others", 100.0)], num_classes=10)
    path = tmp_path / name
    path.write_text(content)
    result = evaluate(ten, colours, class_map=path)
    assert result.top1 == pytest.approx(100 * 2 / 3)
    assert result.as_row()["eval_class_map"] == str(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.json", '{"blue": 7, "green": 3}', r"does not map the folder classes red"),
        ("m.json", '{"blue": 7, "green": 7, "red": 1}', r"maps both blue and green to output 7"),
        ("m.json", '{"blue": 7, "green": 3, "red": 10}', r"uses output 10, but .* has 10 outputs"),
        ("m.json", '["blue"]', r"JSON object"),
        ("m.txt", "7\n3\n", r"lists 2 outputs for 3 folder classes"),
        ("m.txt", "blue seven\n", r"'folder-name index'"),
    ],
)
def test_bad_class_maps(tmp_path, colours, models, name, content, message):
    ten = _model(models, args=[("positions", (7, 3, 5))], num_classes=10)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        evaluate(ten, colours, class_map=path)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_fails_with_its_name_or_is_skipped(colours, models, workers):
    (colours / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing after the signature")
    with pytest.raises(UserInputError, match=r"cannot read image .*red/broken\.png") as info:
        evaluate(_model(models), colours, workers=workers)
    assert "\n" not in str(info.value)
    result = evaluate(_model(models), colours, skip_bad_images=True, workers=workers)
    assert (result.images, result.skipped) == (6, 1)
    assert result.top1 == pytest.approx(100 * 2 / 3)
    assert result.skipped_files == [str(colours / "red" / "broken.png")]
    assert result.as_row()["eval_skipped"] == 1


def test_truncated_image_is_caught(colours, models):
    image = colours / "blue" / "0.png"
    image.write_bytes(image.read_bytes()[:60])
    with pytest.raises(UserInputError, match=r"blue/0\.png"):
        evaluate(_model(models), colours)


def test_bad_data_folders(tmp_path, models):
    model = _model(models)
    with pytest.raises(UserInputError, match=r"does not exist"):
        evaluate(model, tmp_path / "absent")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"is not a folder"):
        evaluate(model, tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"has no class folders"):
        evaluate(model, tmp_path / "empty")
    for name in ("a", "b", ".hidden"):
        (tmp_path / "noimages" / name).mkdir(parents=True)
        (tmp_path / "noimages" / name / "notes.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"has no images"):
        evaluate(model, tmp_path / "noimages")
    single = _write_images(tmp_path / "single", {"red": (255, 0, 0)})
    with pytest.raises(UserInputError, match=r"one class \(red\); accuracy needs at least two"):
        evaluate(model, single)
    holes = _write_images(tmp_path / "holes", {"blue": (0, 0, 255), "red": (255, 0, 0)})
    (holes / "green").mkdir()
    with pytest.raises(UserInputError, match=r"class folders without images .*: green"):
        evaluate(model, holes)


def test_hidden_folders_are_not_classes(colours, models):
    _write_images(colours / ".ipynb_checkpoints", {"x": (1, 2, 3)})  # a hidden folder inside the root
    assert index_folder(colours).classes == ["blue", "green", "red"]
    assert evaluate(_model(models), colours).classes == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop_pct": 1.5}, r"--crop-pct"),
        ({"interpolation": "smooth"}, r"unknown --interpolation 'smooth'"),
        ({"mean": (0.5, 0.5)}, r"--mean needs 3 value"),
        ({"std": (0.2, 0.0, 0.2)}, r"--std values must be positive"),
        ({"resize": 16}, r"--resize 16 is smaller than the 32-pixel crop"),
        ({"batch_size": 0}, r"--batch-size"),
        ({"limit": 0}, r"--limit"),
    ],
)
def test_bad_settings(colours, models, options, message):
    with pytest.raises(UserInputError, match=message):
        evaluate(_model(models), colours, **options)


def test_model_without_input_size_asks_for_resolution(tmp_path, colours):
    path = tmp_path / "nosize.py"
    path.write_text(
        "from torch import nn\ndef build():\n    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
    )
    with pytest.raises(UserInputError, match=r"--resolution"):
        evaluate(resolve_model(f"{path}:build"), colours)
    result = evaluate(resolve_model(f"{path}:build"), colours, resolution=24)
    assert result.resolution == 24 and result.images == 6


def test_onnx_model_with_fixed_batch_pads_the_last_batch(tmp_path, colours, models):
    module = _model(models).build()
    path = tmp_path / "colour.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.randn(4, 3, 32, 32),),
            str(path),
            dynamo=True,
            opset_version=18,
            external_data=False,
            verbose=False,
        )
    resolved = resolve_model(str(path))
    result = evaluate(resolved, colours, batch_size=64)  # 6 images in batches of the graph's 4
    assert result.runtime == "onnxruntime" and result.batch_size == 4
    assert result.top1 == pytest.approx(100 * 2 / 3) and result.images == 6


def test_cli_writes_the_row(tmp_path, colours, models):
    app = typer.Typer()
    app.command()(evaluate_command)
    output = tmp_path / "out" / "evaluate.csv"
    args = [f"{models}:colour", "--data", str(colours), "-b", "4", "-o", str(output)]
    for _ in range(2):  # rows are appended
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "66.67" in result.output
    rows = read_rows(output)
    assert len(rows) == 2
    assert rows[0]["top1_measured"] == pytest.approx(66.6667)
    assert rows[0]["eval_images"] == 6 and rows[0]["top1_source"] == "measured"
    assert rows[0]["run_id"] != rows[1]["run_id"]


def test_cli_rejects_bad_numbers():
    assert parse_floats("0.5, 0.25,1", "--mean") == (0.5, 0.25, 1.0)
    with pytest.raises(UserInputError, match=r"--std takes comma-separated numbers"):
        parse_floats("0.2;0.3", "--std")
