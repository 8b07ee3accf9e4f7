"""``convbench evaluate``: measured top-1 / top-5 of a model (with its weights) on an image folder.

Registered by ``convbench.cli.main`` (``app.command("evaluate")(reports_errors(evaluate_command))``); this module
does not import ``convbench.cli.main``, which imports it. PyTorch and torchvision are imported only once the
command runs, so ``convbench --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from convbench.errors import UserInputError

DEFAULT_OUTPUT = Path("results/evaluate.csv")
RATE_INTERVAL_S = 0.5


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` -> ``(0.485, 0.456, 0.406)``."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserInputError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise UserInputError(f"{option} takes comma-separated numbers, got {text!r}")
    return values


class RateProgress:
    """Passes progress on and adds the images per second to the description while the evaluation runs."""

    def __init__(self, display: Any) -> None:
        self.display = display
        self.description = ""
        self.done = 0
        self.start = 0.0
        self.shown = 0.0

    def phase(self, description: str, total: int | None) -> None:
        self.description, self.done = description, 0
        self.start = self.shown = time.perf_counter()
        self.display.phase(description, total)

    def advance(self, steps: int = 1) -> None:
        self.display.advance(steps)
        self.done += steps
        now = time.perf_counter()
        if now - self.shown >= RATE_INTERVAL_S:
            self.shown = now
            self._describe(f"{self.description} · {self.done / (now - self.start):.0f} images/s")

    def _describe(self, text: str) -> None:
        describe = getattr(self.display, "describe", None)
        if describe is not None:
            describe(text)


def evaluate_command(
    model: Annotated[
        str, typer.Argument(help="Registered name, path/to/file.py:builder, package.module:builder or model.onnx.")
    ],
    data: Annotated[Path, typer.Option("--data", help="ImageFolder tree: DATA/<class>/<image>.")],
    weights: Annotated[
        Path | None, typer.Option("--weights", help="State dict or checkpoint (.pt/.pth, .safetensors).")
    ] = None,
    model_arg: Annotated[
        list[str] | None, typer.Option("--model-arg", help="Builder argument key=value (repeatable).")
    ] = None,
    resolution: Annotated[int | None, typer.Option(help="Square input size, the crop (default: the model's).")] = None,
    in_chans: Annotated[int | None, typer.Option("--in-chans", help="Input channels (1 or 3).")] = None,
    num_classes: Annotated[int | None, typer.Option("--num-classes", help="Classes (builders that take it).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch.")] = 64,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes (0: read images in this process).")] = 0,
    limit: Annotated[int | None, typer.Option(help="Only the first N images, classes taken in turn.")] = None,
    resize: Annotated[
        int | None, typer.Option(help="Shorter side before the crop (default: resolution/crop-pct).")
    ] = None,
    crop_pct: Annotated[
        float | None,
        typer.Option("--crop-pct", help="Centre-crop fraction (timm's crop_pct; default: the model's, else 0.875)."),
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(help="Normalisation mean per channel, comma-separated (default: the model's, else ImageNet's)."),
    ] = None,
    std: Annotated[
        str | None,
        typer.Option(help="Normalisation std per channel, comma-separated (default: the model's, else ImageNet's)."),
    ] = None,
    interpolation: Annotated[
        str | None,
        typer.Option(help="Resize interpolation: bilinear, bicubic, ... (default: the model's, else bilinear)."),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option("--pretrained", help="timm/NAME: timm's pretrained weights, from the local cache only."),
    ] = False,
    class_map: Annotated[
        Path | None,
        typer.Option("--class-map", help="Folder class -> model output: JSON {name: index}, or lines 'name index'."),
    ] = None,
    skip_bad_images: Annotated[
        bool, typer.Option("--skip-bad-images", help="Skip unreadable images (counted) instead of stopping.")
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Result file (CSV or JSON by suffix); the row is appended.")
    ] = DEFAULT_OUTPUT,
    no_save: Annotated[bool, typer.Option("--no-save", help="Print only; write no result file.")] = False,
) -> None:
    """Top-1 and top-5 accuracy on an image folder, with ImageNet-style evaluation transforms (as timm's
    validate.py: resize the shorter side to resolution / crop-pct, centre crop, normalise).

    Classes are the sorted folder names. A model with K outputs on M folder classes needs K == M or a
    --class-map: a JSON object {"folder": output index}, or a text file of 'folder index' lines (or of bare
    indices, one per folder in sorted order); only the mapped outputs then compete (ImageNet-A/R protocol).
    ONNX files run on ONNX Runtime (CPU). The row records the data path, the settings, the model's digest and
    the weights' digest. timm/NAME models take their crop, interpolation and normalisation from timm's
    pretrained config unless given here; --pretrained loads timm's weights where they are already cached.
    """
    from convbench.evaluate import evaluate
    from convbench.models.spec import ModelSpec, parse_model_args, resolve_model
    from convbench.results.console import console, progress_display

    mean_values = parse_floats(mean, "--mean") if mean is not None else None
    std_values = parse_floats(std, "--std") if std is not None else None
    args = parse_model_args(model_arg)
    if pretrained:
        if not model.startswith("timm/"):
            raise UserInputError(f"--pretrained applies to timm/NAME models; {model} is not one")
        args = (*tuple((k, v) for k, v in args if k != "pretrained"), ("pretrained", True))
    spec = ModelSpec(model, args, str(weights) if weights is not None else None)
    resolved = resolve_model(spec, resolution=resolution, in_chans=in_chans, num_classes=num_classes)
    if not no_save:
        from convbench.results.files import check_writable

        check_writable(output)  # before any image is read
    with progress_display() as display:
        result = evaluate(
            resolved,
            data,
            batch_size=batch_size,
            workers=workers,
            limit=limit,
            resize=resize,
            crop_pct=crop_pct,
            mean=mean_values,
            std=std_values,
            interpolation=interpolation,
            class_map=class_map,
            skip_bad_images=skip_bad_images,
            progress=RateProgress(display),
            resolution=resolution,
        )
    console.print(result_table(result))
    if not resolved.has_weights and resolved.kind in ("registry", "timm"):
        # convbench ships no trained weights: a registered (or timm, without --pretrained) model is built from a
        # seed, so its accuracy is chance. (A builder from a file or module may load trained weights itself.)
        console.print("note: no --weights given; the model has random weights, so this accuracy is chance level")
    if result.skipped:
        console.print(f"skipped {result.skipped} unreadable image(s), e.g. {result.skipped_files[0]}")
    if not no_save:
        from convbench.results import files as results

        row = {"run_id": results.new_run_id(), **result.as_row(), **results.environment()}
        if hasattr(results, "SCHEMA_VERSION"):
            row = {"schema_version": results.SCHEMA_VERSION, **row}
        results.write_rows(output, [row])
        console.print(f"appended to {output}")


def result_table(result: Any) -> Any:
    """The evaluation as a rich table."""
    import math

    from rich.table import Table

    table = Table(title=f"{result.model.name} on {result.data_dir}")
    for column in ("top-1 %", "top-5 %", "images", "skipped", "classes", "input", "runtime", "images/s"):
        table.add_column(column, justify="right" if column not in ("input", "runtime") else "left")
    table.add_row(
        f"{result.top1:.2f}",
        "—" if math.isnan(result.top5) else f"{result.top5:.2f}",
        str(result.images),
        str(result.skipped),
        str(result.classes),
        f"{result.resize}→{result.resolution} ({result.interpolation})",
        result.runtime,
        f"{result.images_per_second:.1f}",
    )
    return table
