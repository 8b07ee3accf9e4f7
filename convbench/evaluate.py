"""Top-1 / top-5 accuracy of a model on an image folder: ``convbench evaluate MODEL --data DIR``.

The folder is a torchvision ``ImageFolder`` tree, ``DIR/<class>/<image>`` (images may sit in subfolders of a
class folder): classes are the class folders in sorted order, so class *i* is the *i*-th folder name, as
``torchvision.datasets.ImageFolder`` numbers them. Hidden folders and files (a leading dot) are ignored, so
``.ipynb_checkpoints`` is never a class. Every class folder must hold at least one image.

Images are prepared the way timm's ``validate.py`` does for ImageNet ("PyTorch Image Models", timm
documentation; ``timm.data.transforms_factory``): the shorter side is resized to ``int(resolution /
crop_pct)`` (``resize`` overrides it), a ``resolution`` × ``resolution`` centre crop is taken, and the
tensor is normalised with ``mean`` / ``std`` (ImageNet's by default). Images are read as RGB, or as
grayscale for a one-channel model.

``limit`` evaluates the first N images of a fixed order that takes the classes in turn (the first image of
every class, then the second of every class, ...; files sorted by path within a class), so a quick
``--limit 500`` sees every class instead of the first few folders.

Classes: a model with K outputs on a folder of M classes needs K == M, or a class map saying which output
each folder class is. With a class map, the prediction is the best of the mapped outputs only, the protocol of
ImageNet-subset benchmarks ("Natural Adversarial Examples", Hendrycks et al. 2021, for ImageNet-A; "The Many
Faces of Robustness", Hendrycks et al. 2021, for ImageNet-R), whose 200 classes are scored on the 200
matching outputs of a 1000-class model. A class map is either

- a JSON object ``{"folder name": output index, ...}`` (names that are not folders are ignored, so one map of
  all 1000 ImageNet classes serves any subset), or
- a text file with one line per folder class: ``folder-name index``, or only ``index``, in which case line
  *i* gives the output of the *i*-th folder in sorted order. Blank lines and ``#`` comments are ignored.

Every folder class must be mapped, each to a different output. Top-5 needs at least five classes; with fewer
it is NaN.

ONNX files run on ONNX Runtime's CPU execution provider with the same preprocessing. A graph whose batch
dimension is fixed is fed batches of exactly that size: the last, partial batch is padded with zeros and the
padding's outputs are dropped, so the evaluated batch size is the graph's, whatever ``batch_size`` says.

A file that cannot be read as an image stops the evaluation with its name; with ``skip_bad_images`` it is
skipped and counted in ``skipped`` (and not in ``images``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convbench.errors import UserInputError
from convbench.progress import Silent

if TYPE_CHECKING:
    import numpy as np

    from convbench.models.spec import ResolvedModel
    from convbench.progress import Progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
# torchvision.datasets.folder.IMG_EXTENSIONS, repeated so that listing a folder needs no torchvision import.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TOP_K = 5
LISTED = 5


@dataclass
class EvalResult:
    """Accuracy of one model on one folder, with the settings that produced it."""

    model: ResolvedModel
    top1: float  # percent of the evaluated images
    top5: float  # percent; NaN with fewer than five classes
    images: int  # images evaluated (skipped ones excluded)
    skipped: int
    classes: int
    data_dir: Path
    resolution: int
    resize: int
    crop_pct: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    batch_size: int
    limit: int | None = None
    class_map: Path | None = None
    runtime: str = "torch"
    seconds: float = 0.0
    skipped_files: list[str] = field(default_factory=list)  # the first few, for the report

    @property
    def weights(self) -> str:
        return self.model.spec.weights or ""

    @property
    def images_per_second(self) -> float:
        return (self.images + self.skipped) / self.seconds if self.seconds > 0 else float("nan")

    def as_row(self) -> dict[str, Any]:
        """One result row: the model's identity columns, the accuracy, and every setting that shaped it."""
        return {
            **self.model.identity(),
            "batch_size": self.batch_size,
            "resolution": self.resolution,
            "device": "cpu",
            "runtime": self.runtime,
            "top1_measured": round(self.top1, 4),
            "top5_measured": round(self.top5, 4) if not math.isnan(self.top5) else float("nan"),
            "top1_source": "measured",
            "eval_images": self.images,
            "eval_skipped": self.skipped,
            "eval_classes": self.classes,
            "eval_data": str(self.data_dir),
            "eval_resize": self.resize,
            "eval_crop_pct": self.crop_pct,
            "eval_mean": ",".join(f"{v:g}" for v in self.mean),
            "eval_std": ",".join(f"{v:g}" for v in self.std),
            "eval_interpolation": self.interpolation,
            "eval_limit": self.limit if self.limit is not None else "",
            "eval_class_map": str(self.class_map) if self.class_map else "",
            "eval_seconds": round(self.seconds, 3),
            "eval_images_per_s": round(self.images_per_second, 2),
        }


# --- The image folder --------------------------------------------------------------------------------------


@dataclass
class ImageFolderIndex:
    """Class names (sorted) and the images of each class (sorted by path)."""

    root: Path
    classes: list[str]
    images: list[list[Path]]

    def ordered(self, limit: int | None = None) -> list[tuple[Path, int]]:
        """(image, class) pairs, the classes taken in turn; the first ``limit`` of them."""
        order: list[tuple[Path, int]] = []
        for rank in range(max(len(files) for files in self.images)):
            for target, files in enumerate(self.images):
                if rank < len(files):
                    order.append((files[rank], target))
                    if limit is not None and len(order) >= limit:
                        return order
        return order


def _visible(name: str) -> bool:
    return not name.startswith(".")


def index_folder(data_dir: Path) -> ImageFolderIndex:
    """The classes and images under ``data_dir``; a one-line error for anything that is not a usable tree."""
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise UserInputError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise UserInputError(f"--data {root} is not a folder; expected {root}/<class>/<image>")
    try:
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and _visible(e.name))
    except OSError as exc:
        raise UserInputError(f"cannot read data folder {root}: {exc.strerror or exc}") from None
    if not classes:
        raise UserInputError(f"data folder {root} has no class folders; expected {root}/<class>/<image>")
    images = [_class_images(root / name) for name in classes]
    if not any(images):
        raise UserInputError(f"data folder {root} has no images ({', '.join(IMG_EXTENSIONS)}) in its class folders")
    if len(classes) < 2:
        raise UserInputError(f"data folder {root} has one class ({classes[0]}); accuracy needs at least two")
    empty = [name for name, files in zip(classes, images, strict=True) if not files]
    if empty:
        raise UserInputError(f"class folders without images in {root}: {_listed(empty)}")
    return ImageFolderIndex(root, classes, images)


def _class_images(folder: Path) -> list[Path]:
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if _visible(d)]
        found += [Path(parent) / f for f in files if _visible(f) and f.lower().endswith(IMG_EXTENSIONS)]
    return sorted(found)


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items[:LISTED]) + (f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else "")


# --- Class maps --------------------------------------------------------------------------------------------


def read_class_map(path: Path, classes: Sequence[str]) -> list[int]:
    """The model output of each folder class, in folder order (see the module docstring for the formats)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"class map {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read class map {path}: {exc}") from None
    by_name = _json_map(text, path) if path.suffix.lower() == ".json" else _text_map(text, path, classes)
    unmapped = [c for c in classes if c not in by_name]
    if unmapped:
        raise UserInputError(f"class map {path.name} does not map the folder classes {_listed(unmapped)}")
    indices = [by_name[c] for c in classes]
    seen: dict[int, str] = {}
    for name, index in zip(classes, indices, strict=True):
        if index < 0:
            raise UserInputError(f"class map {path.name} maps {name} to a negative output {index}")
        if index in seen:
            raise UserInputError(f"class map {path.name} maps both {seen[index]} and {name} to output {index}")
        seen[index] = name
    return indices


def _json_map(text: str, path: Path) -> dict[str, int]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"class map {path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        raise UserInputError(f"class map {path.name} must be a JSON object of folder name -> output index")
    return {str(k): int(v) for k, v in data.items()}


def _text_map(text: str, path: Path, classes: Sequence[str]) -> dict[str, int]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UserInputError(f"class map {path.name} is empty")
    pairs = [line.split() for line in lines]
    try:
        if all(len(p) == 1 for p in pairs):  # bare indices: line i is the i-th folder class
            if len(pairs) != len(classes):
                raise UserInputError(
                    f"class map {path.name} lists {len(pairs)} outputs for {len(classes)} folder classes; "
                    "with bare indices there is one line per folder class, in sorted folder order"
                )
            return {name: int(p[0]) for name, p in zip(classes, pairs, strict=True)}
        if all(len(p) == 2 for p in pairs):
            return {p[0]: int(p[1]) for p in pairs}
    except ValueError:
        pass
    raise UserInputError(f"class map {path.name}: each line must be 'folder-name index' or an index alone")


def output_indices(outputs: int, classes: Sequence[str], class_map: list[int] | None, source: str) -> list[int]:
    """Which model output each folder class is scored on."""
    if class_map is None:
        if outputs != len(classes):
            raise UserInputError(
                f"{source} has {outputs} outputs but the data has {len(classes)} classes; give --class-map "
                "saying which output each folder is (see `convbench evaluate --help`)"
            )
        return list(range(outputs))
    beyond = [i for i in class_map if i >= outputs]
    if beyond:
        raise UserInputError(f"the class map uses output {beyond[0]}, but {source} has {outputs} outputs")
    return class_map


# --- Reading images ----------------------------------------------------------------------------------------


class ImageList:
    """A map-style dataset of (image, class) pairs that reports unreadable images instead of raising
    (an exception in a DataLoader worker would reach the user as a traceback)."""

    def __init__(self, items: list[tuple[Path, int]], transform: Callable[[Any], Any], mode: str) -> None:
        self.items = items
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int, str, str | None]:
        from PIL import Image

        path, target = self.items[index]
        try:
            with path.open("rb") as handle:
                image = Image.open(handle)
                image = image.convert(self.mode)  # convert() reads the whole file: truncation shows here
            return self.transform(image), target, str(path), None
        except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError ...
            text = str(exc).strip()
            return None, target, str(path), text.splitlines()[-1] if text else type(exc).__name__


def collate(items: list[tuple[Any, int, str, str | None]]) -> tuple[Any, Any, list[tuple[str, str]]]:
    """(images, targets, unreadable (path, reason) pairs) of one batch."""
    import torch

    good = [(image, target) for image, target, _, error in items if error is None]
    bad = [(path, error) for _, _, path, error in items if error is not None]
    images = torch.stack([image for image, _ in good]) if good else None
    targets = torch.tensor([target for _, target in good], dtype=torch.long)
    return images, targets, bad


def eval_transform(
    resolution: int, resize: int, mean: Sequence[float], std: Sequence[float], interpolation: str
) -> Callable[[Any], Any]:
    from torchvision import transforms

    mode = transforms.InterpolationMode(interpolation)
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=mode),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            transforms.Normalize(mean=list(mean), std=list(std)),
        ]
    )


# --- Running the model -------------------------------------------------------------------------------------


class _TorchRunner:
    runtime = "torch"
    fixed_batch: int | None = None

    def __init__(self, model: ResolvedModel) -> None:
        self.module = model.build()

    def __call__(self, images: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            output = self.module(images)
        if not isinstance(output, torch.Tensor):
            raise UserInputError(f"the model returned a {type(output).__name__}; evaluate needs a logits tensor")
        return output.float().numpy()


class _OnnxRunner:
    runtime = "onnxruntime"

    def __init__(self, model: ResolvedModel) -> None:
        import numpy as np

        from convbench.runtimes import reference_session

        assert model.onnx_path is not None
        try:
            self.session = reference_session(model.onnx_path)
        except Exception as exc:
            text = str(exc).strip()
            raise UserInputError(
                f"ONNX Runtime cannot load {model.onnx_path}: {text.splitlines()[-1] if text else exc}"
            ) from None
        self.dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16}.get(self.session.input_type)
        if self.dtype is None:
            raise UserInputError(f"{model.onnx_path} takes {self.session.input_type}; evaluate feeds float images")
        shape = self.session.input_shape
        batch = shape[0] if shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, images: Any) -> np.ndarray:
        import numpy as np

        batch = images.numpy().astype(self.dtype)
        count = batch.shape[0]
        if self.fixed_batch is not None and count < self.fixed_batch:
            padding = np.zeros((self.fixed_batch - count, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, padding])
        output = self.session(batch)[0]
        return np.asarray(output, dtype=np.float32)[:count]


def _check_settings(
    batch_size: int,
    workers: int,
    limit: int | None,
    resize: int | None,
    crop_pct: float,
    interpolation: str,
    resolution: int,
) -> None:
    if batch_size < 1:
        raise UserInputError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UserInputError(f"--workers must be 0 or more, got {workers}")
    if limit is not None and limit < 1:
        raise UserInputError(f"--limit must be at least 1, got {limit}")
    if not 0 < crop_pct <= 1:
        raise UserInputError(f"--crop-pct must be in (0, 1], got {crop_pct}")
    if resize is not None and resize < resolution:
        raise UserInputError(f"--resize {resize} is smaller than the {resolution}-pixel crop")
    if interpolation not in INTERPOLATIONS:
        raise UserInputError(f"unknown --interpolation {interpolation!r}; choose from {', '.join(INTERPOLATIONS)}")


def _check_normalisation(mean: Sequence[float], std: Sequence[float], channels: int) -> None:
    if channels not in (1, 3):
        raise UserInputError(f"evaluate reads RGB or grayscale images; the model takes {channels} channels")
    for name, values in (("--mean", mean), ("--std", std)):
        if len(values) != channels:
            raise UserInputError(f"{name} needs {channels} value(s), one per input channel, got {len(values)}")
    if any(v <= 0 for v in std):
        raise UserInputError(f"--std values must be positive, got {','.join(map(str, std))}")


def evaluate(
    model: ResolvedModel,
    data_dir: Path | str,
    *,
    batch_size: int = 64,
    workers: int = 0,
    limit: int | None = None,
    resize: int | None = None,
    crop_pct: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    interpolation: str | None = None,
    class_map: Path | str | None = None,
    skip_bad_images: bool = False,
    progress: Progress | None = None,
    resolution: int | None = None,
) -> EvalResult:
    """Top-1 / top-5 of ``model`` on the ImageFolder tree ``data_dir`` (see the module docstring).

    ``resolution`` overrides the model's input size (the crop); everything is checked before the model is
    built or an image read. ``crop_pct``, ``mean``, ``std`` and ``interpolation`` left at None are the model's
    own (``ResolvedModel.preprocessing``, e.g. a timm model's pretrained config), else ImageNet's defaults.
    """
    import numpy as np
    import torch

    progress = progress or Silent()
    own = model.preprocessing
    crop_pct = crop_pct if crop_pct is not None else float(own.get("crop_pct", DEFAULT_CROP_PCT))
    mean = mean if mean is not None else own.get("mean", IMAGENET_MEAN)
    std = std if std is not None else own.get("std", IMAGENET_STD)
    interpolation = interpolation if interpolation is not None else str(own.get("interpolation", "bilinear"))
    size = model.resolution(resolution)
    channels = model.input_size[0] if model.input_size else 3
    _check_settings(batch_size, workers, limit, resize, crop_pct, interpolation, size)
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    _check_normalisation(mean, std, channels)
    scale = resize if resize is not None else int(size / crop_pct)
    folder = index_folder(Path(data_dir))
    mapping = read_class_map(Path(class_map), folder.classes) if class_map is not None else None
    if model.num_classes is not None:  # fail before building when the registry already says
        output_indices(model.num_classes, folder.classes, mapping, model.name)

    runner: _TorchRunner | _OnnxRunner = _OnnxRunner(model) if model.is_onnx else _TorchRunner(model)
    effective_batch = runner.fixed_batch or batch_size
    items = folder.ordered(limit)
    dataset = ImageList(items, eval_transform(size, scale, mean, std, interpolation), "L" if channels == 1 else "RGB")
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=effective_batch,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
    )
    classes = len(folder.classes)
    k = min(TOP_K, classes)
    indices: np.ndarray | None = None
    correct1 = correct5 = evaluated = 0
    skipped: list[str] = []
    progress.phase(f"evaluating {model.name}", len(items))
    start = time.perf_counter()
    for images, targets, bad in loader:
        if bad and not skip_bad_images:
            path, reason = bad[0]
            raise UserInputError(f"cannot read image {path}: {reason} (--skip-bad-images skips such files)")
        skipped += [path for path, _ in bad]
        if images is not None:
            logits = runner(images)
            if logits.ndim != 2:
                raise UserInputError(
                    f"{model.name} returned shape {tuple(logits.shape)}; evaluate needs (batch, classes) logits"
                )
            if indices is None:
                indices = np.asarray(output_indices(logits.shape[1], folder.classes, mapping, model.name))
            scores = logits[:, indices]  # only the mapped outputs compete (all of them without a class map)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            truth = targets.numpy()[:, None]
            correct1 += int((top[:, 0:1] == truth).sum())
            correct5 += int((top == truth).any(axis=1).sum())
            evaluated += len(truth)
        progress.advance(len(targets) + len(bad))
    seconds = time.perf_counter() - start
    if evaluated == 0:
        raise UserInputError(f"none of the {len(skipped)} images in {folder.root} could be read")
    return EvalResult(
        model=model,
        top1=100.0 * correct1 / evaluated,
        top5=100.0 * correct5 / evaluated if classes >= TOP_K else float("nan"),
        images=evaluated,
        skipped=len(skipped),
        classes=classes,
        data_dir=folder.root.resolve(),
        resolution=size,
        resize=scale,
        crop_pct=crop_pct,
        mean=mean,
        std=std,
        interpolation=interpolation,
        batch_size=effective_batch,
        limit=limit,
        class_map=Path(class_map) if class_map is not None else None,
        runtime=runner.runtime,
        seconds=seconds,
        skipped_files=skipped[:LISTED],
    )
