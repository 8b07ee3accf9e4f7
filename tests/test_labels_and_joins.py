"""Model texts with their own arguments, measured top-1 over published, GPU speed-ups beside CPU lines."""

from pathlib import Path

import pytest

from convbench.errors import UserInputError
from convbench.models.spec import ModelOptions, ModelSpec, split_model_text
from convbench.papers.accuracy import measured_top1, top1_for
from convbench.papers.reproduce import join_gpu_speedups
from convbench.results.files import write_rows


def test_a_model_text_carries_its_own_arguments_over_the_shared_ones():
    shared, own = ModelOptions(model_arg=("capacity=32", "impl=index-pad")).specs(
        ["resnet75-mod", "resnet75-mod[impl=gather-concat,order=channel]"]
    )
    assert shared == ModelSpec("resnet75-mod", (("capacity", 32), ("impl", "index-pad")))
    assert dict(own.args) == {"capacity": 32, "impl": "gather-concat", "order": "channel"}
    assert own.label == "resnet75-mod[capacity=32,impl=gather-concat,order=channel]"
    # The label a row carries reads back as the same model and arguments.
    assert split_model_text(own.label) == ("resnet75-mod", own.args)


def test_plain_texts_and_files_are_left_alone():
    assert split_model_text("examples/my_model.py:build") == ("examples/my_model.py:build", ())
    with pytest.raises(UserInputError, match="key=value"):
        split_model_text("resnet50[oops]")


def test_measured_top1_wins_over_the_published_one(tmp_path):
    evaluated = tmp_path / "evaluate.csv"
    write_rows(evaluated, [{"model": "resnet50", "top1_measured": 12.5}, {"model": "resnet50", "top1_measured": 13.0}])
    found = top1_for(["resnet50", "resnet75-mod"], measured_files=[evaluated])
    assert (found["resnet50"].top1, found["resnet50"].source) == (13.0, "measured")  # the latest row
    assert found["resnet75-mod"].source == "published" and found["resnet75-mod"].top1 == pytest.approx(76.27)
    assert measured_top1([tmp_path / "missing.csv"]) == {}


def test_gpu_speedups_are_joined_beside_the_cpu_lines_by_table_row(tmp_path):
    gpu_file = tmp_path / "mod-imagenet-cuda-torch.csv"
    write_rows(
        gpu_file,
        [
            {
                "table": "mod-imagenet",
                "method": "ResNet75-MoD",
                "model": "resnet75-mod",
                "speedup": 1.3,
                "speedup_low": 1.2,
                "speedup_high": 1.4,
            },
            {"table": "mod-imagenet", "method": "ResNet86-MoD", "model": "resnet86-mod", "speedup": float("nan")},
        ],
        schema=False,
    )
    lines = [
        {"table": "mod-imagenet", "method": "ResNet75-MoD", "speedup": 1.1},
        {"table": "mod-imagenet", "method": "ResNet86-MoD", "speedup": 1.0},
        {"table": "mod-resnets", "method": "ResNet75-MoD", "speedup": 0.9},
    ]
    join_gpu_speedups(lines, gpu_file)
    assert (lines[0]["speedup_gpu"], lines[0]["speedup_gpu_low"], lines[0]["speedup_gpu_high"]) == (1.3, 1.2, 1.4)
    assert lines[0]["speedup"] == 1.1  # the CPU figure is untouched
    assert "speedup_gpu" not in lines[1]  # no measured GPU speed-up for that row
    assert "speedup_gpu" not in lines[2]  # another table's row of the same name
    join_gpu_speedups(lines, Path(tmp_path / "absent.csv"))  # no GPU file: nothing happens
