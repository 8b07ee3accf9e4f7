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


SAME = {"batch_size": 1, "precision": "fp32", "macs_convention": "mac+"}


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
                **SAME,
            },
            {
                "table": "mod-imagenet",
                "method": "ResNet86-MoD",
                "model": "resnet86-mod",
                "speedup": float("nan"),
                **SAME,
            },
        ],
        schema=False,
    )
    lines = [
        {"table": "mod-imagenet", "method": "ResNet75-MoD", "speedup": 1.1, **SAME},
        {"table": "mod-imagenet", "method": "ResNet86-MoD", "speedup": 1.0, **SAME},
        {"table": "mod-resnets", "method": "ResNet75-MoD", "speedup": 0.9, **SAME},
    ]
    join_gpu_speedups(lines, gpu_file)
    assert (lines[0]["speedup_gpu"], lines[0]["speedup_gpu_low"], lines[0]["speedup_gpu_high"]) == (1.3, 1.2, 1.4)
    assert lines[0]["speedup"] == 1.1  # the CPU figure is untouched
    assert "speedup_gpu" not in lines[1]  # no measured GPU speed-up for that row
    assert "speedup_gpu" not in lines[2]  # another table's row of the same name
    join_gpu_speedups(lines, Path(tmp_path / "absent.csv"))  # no GPU file: nothing happens


def _gpu_file(tmp_path, **settings):
    gpu_file = tmp_path / "t-cuda-torch.csv"
    row = {"table": "t", "method": "M", "model": "m", "speedup": 1.5, "speedup_low": 1.4, "speedup_high": 1.6}
    write_rows(gpu_file, [{**row, **SAME, **settings}], schema=False)
    return gpu_file


@pytest.mark.parametrize(
    ("gpu", "fragment"),
    [
        ({"batch_size": 64}, "batch 64 on the GPU vs 1 here"),
        ({"precision": "amp-fp16"}, "precision amp-fp16 on the GPU vs fp32 here"),
        ({"macs_convention": "fvcore"}, "convention fvcore on the GPU vs mac+ here"),
        ({"batch_size": 64, "precision": "amp-fp16"}, "batch 64 on the GPU vs 1 here, precision amp-fp16"),
        ({"precision": None}, "precision unknown on the GPU vs fp32 here"),
    ],
)
def test_a_gpu_speedup_measured_otherwise_is_not_joined_and_the_table_says_why(tmp_path, gpu, fragment):
    """Fails when a batch-64 amp speed-up appears beside batch-1 fp32 CPU lines without a word (the old join
    matched table and method only)."""
    from convbench.papers.joins import join_gpu_speedups

    lines = [{"table": "t", "method": "M", "speedup": 1.1, **SAME}]
    notes = join_gpu_speedups(lines, _gpu_file(tmp_path, **gpu))
    assert "speedup_gpu" not in lines[0]
    assert fragment in lines[0]["gpu_note"]
    assert len(notes) == 1 and fragment in notes[0] and "M" in notes[0] and "\n" not in notes[0]


def test_a_gpu_speedup_measured_alike_is_joined_without_a_note(tmp_path):
    """Fails if settings read back from CSV (batch 1.0, a float) are taken as differing from the CPU line's 1."""
    from convbench.papers.joins import join_gpu_speedups

    lines = [{"table": "t", "method": "M", "speedup": 1.1, **SAME, "batch_size": 1.0}]
    assert join_gpu_speedups(lines, _gpu_file(tmp_path)) == []
    assert (lines[0]["speedup_gpu"], lines[0]["speedup_gpu_low"], lines[0]["speedup_gpu_high"]) == (1.5, 1.4, 1.6)
    assert "gpu_note" not in lines[0]
    assert join_gpu_speedups(lines, tmp_path / "absent.csv") == []


def test_the_reproduce_table_prints_why_a_gpu_speedup_is_missing():
    """Fails if the note stays in the CSV only: the table a person reads must say what differs."""
    from convbench.papers.tables import load_table
    from convbench.results.tables import reproduce_view

    table = load_table("mod-imagenet")
    method = table.rows[0].method
    note = "GPU speed-up in x.csv not shown: batch 64 on the GPU vs 1 here"
    lines = [{"table": table.key, "method": method, "model": table.rows[0].model, "gpu_note": note, **SAME}]
    view = reproduce_view(table, lines)
    assert any(note in text.plain and method in text.plain for text in view.footnotes)
