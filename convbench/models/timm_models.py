"""timm models by name: ``timm/NAME`` wherever a model is accepted.

``NAME`` is a timm architecture (``timm/efficientnet_b0``) or an architecture with a pretrained tag
(``timm/resnet50.a1_in1k``), as ``timm.create_model`` takes it ("PyTorch Image Models", timm documentation,
"Models" and "Model Summaries"). timm is an optional extra (``pip install 'convbench[timm]'``); it is imported
only when a ``timm/`` name is resolved or listed.

What the model's pretrained config (``timm.models.get_pretrained_cfg``) says is used as the model's own
settings: the input size (the benchmark's default resolution) and the evaluation preprocessing
(interpolation, crop fraction, mean, std), which ``convbench evaluate`` applies unless told otherwise. Every
row records the timm version and the full name, tag included (an untagged name resolves to its default tag).

Weights are random (drawn from convbench's seed, then BatchNorm calibrated, as for registered models) unless
``pretrained=True`` (``--pretrained``). Pretrained weights are used only where they are already in the local
cache, the Hugging Face hub cache or the torch hub cache, and are loaded from that file through timm's own
loader (so the model's checkpoint filter applies); nothing is ever downloaded. Without a cached file the
resolution fails with one line, before any work.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from convbench.errors import UserInputError
from convbench.models.spec import ModelSpec, ResolvedModel

PREFIX = "timm/"
INSTALL_HINT = "timm models need the timm package: pip install 'convbench[timm]' (or pip install timm)"
NEAREST = 5
#: file names timm's Hugging Face loader tries, in its order (timm.models._hub.load_state_dict_from_hf).
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_timm_name(source: str) -> bool:
    """Whether ``source`` names a timm model (``timm/NAME``)."""
    return source.startswith(PREFIX)


def import_timm() -> ModuleType:
    """The timm package, or a one-line error saying how to install it."""
    try:
        import timm
    except ImportError:
        raise UserInputError(INSTALL_HINT) from None
    return timm


def list_timm(pattern: str) -> list[str]:
    """``timm/NAME`` for every timm model matching the shell-style ``pattern`` (``timm/resnet*``).

    A pattern with a ``.`` matches pretrained tags (``timm/resnet50.*``); otherwise architectures.
    """
    timm = import_timm()
    inner = pattern[len(PREFIX) :] if is_timm_name(pattern) else pattern
    inner = inner or "*"
    names = timm.list_models(inner, pretrained="." in inner)
    return [PREFIX + n for n in names]


def _nearest(timm: ModuleType, name: str) -> str:
    arch = name.split(".")[0]
    if timm.is_model(arch):  # the architecture exists; the tag does not
        tags = list(timm.models.get_arch_pretrained_cfgs(arch))
        close = difflib.get_close_matches(name, tags, n=NEAREST, cutoff=0.0)
        return f"no pretrained tag {name!r} in timm; {arch} has: {', '.join(PREFIX + c for c in close)}"
    close = difflib.get_close_matches(name, timm.list_models(), n=NEAREST, cutoff=0.5)
    hint = f"; nearest: {', '.join(PREFIX + c for c in close)}" if close else ""
    return f"no timm model {name!r}{hint} (convbench list 'timm/PATTERN' lists them)"


def _pretrained_cfg(timm: ModuleType, name: str) -> dict[str, Any]:
    if not name:
        raise UserInputError("name a timm model after timm/, e.g. timm/resnet50 (convbench list 'timm/*' lists them)")
    if not timm.is_model(name):
        raise UserInputError(_nearest(timm, name))
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # an architecture with an unknown tag
        raise UserInputError(_nearest(timm, name)) from None
    return cfg.to_dict() if cfg is not None else {}


def full_name(name: str, cfg: dict[str, Any]) -> str:
    """``resnet50`` -> ``resnet50.a1_in1k``: the architecture with the tag its pretrained config resolves to."""
    arch = cfg.get("architecture") or name.split(".")[0]
    tag = cfg.get("tag")
    return f"{arch}.{tag}" if tag else arch


def cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The weights file of ``cfg`` in the local Hugging Face hub cache or torch hub cache, or None.

    Looked up without any network access: ``huggingface_hub.try_to_load_from_cache`` only reads the cache
    folders, and the torch hub cache is a file name derived from the URL (``torch.hub.load_state_dict_from_url``).
    """
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import constants, try_to_load_from_cache
        except ImportError:
            pass
        else:
            names = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else HF_WEIGHT_FILES
            for filename in names:
                found = try_to_load_from_cache(hub_id, filename, cache_dir=constants.HF_HUB_CACHE)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
    url = cfg.get("url")
    if url:
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url.split("?")[0]).name
        if path.is_file():
            return path
    return None


@cache
def _module_digest(version: str, arch: str) -> str:
    """Hash of timm's version and the source file that defines ``arch``: what shapes the graph."""
    import timm

    digest = hashlib.sha256(f"timm {version} {arch}".encode())
    try:
        source = inspect.getsourcefile(timm.models.model_entrypoint(arch))
    except (TypeError, RuntimeError):
        source = None
    if source and Path(source).is_file():
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


class TimmBuilder:
    """Builds a timm model by name (picklable, so trial workers can rebuild it); with ``pretrained=True``
    the weights come from ``weights_file`` only, never from the network."""

    def __init__(self, name: str, weights_file: Path | None = None) -> None:
        self.name = name
        self.weights_file = weights_file

    def __call__(self, **kwargs: Any) -> Any:
        timm = import_timm()
        if kwargs.get("pretrained"):
            if self.weights_file is None:
                raise UserInputError(f"the pretrained weights of timm/{self.name} are not available offline")
            # source "" makes timm's loader take the file override (timm.models._builder._resolve_pretrained_source).
            kwargs["pretrained_cfg_overlay"] = {"file": str(self.weights_file), "source": ""}
        return timm.create_model(self.name, **kwargs)


def resolve_timm(
    spec: ModelSpec, *, resolution: int | None, in_chans: int | None, num_classes: int | None
) -> ResolvedModel:
    """A ``ResolvedModel`` for ``timm/NAME``; an unknown name, missing timm or uncached weights is one line."""
    from convbench.models.weights import weights_digest

    timm = import_timm()
    name = spec.source[len(PREFIX) :]
    cfg = _pretrained_cfg(timm, name)
    args = dict(spec.args)
    if in_chans is not None:
        args["in_chans"] = in_chans
    if num_classes is not None:
        args["num_classes"] = num_classes
    pretrained = bool(args.get("pretrained"))
    weights_file = None
    if pretrained:
        if spec.weights:
            raise UserInputError("give either --pretrained or --weights, not both")
        weights_file = cached_weights(cfg)
        if weights_file is None:
            raise UserInputError(
                f"the pretrained weights of timm/{full_name(name, cfg)} are not available offline (not in the "
                "Hugging Face hub cache or the torch hub cache); run without --pretrained for random weights"
            )
    declared = tuple(int(v) for v in cfg.get("input_size") or (3, 224, 224))
    channels = int(args.get("in_chans") or declared[0])
    preprocessing = {key: cfg[key] for key in ("interpolation", "crop_pct", "mean", "std") if cfg.get(key) is not None}
    if channels != declared[0] and "mean" in preprocessing:  # timm's per-channel statistics fit 3 channels only
        preprocessing.pop("mean"), preprocessing.pop("std", None)
    full = full_name(name, cfg)
    return ResolvedModel(
        spec=spec,
        kind="timm",
        family="timm",
        paper=str(cfg.get("paper_ids") or ""),
        origin=PREFIX + full,
        digest=_module_digest(timm.__version__, full.split(".")[0]),
        input_size=(channels, resolution, resolution) if resolution else (channels, declared[1], declared[2]),
        num_classes=int(args.get("num_classes") or cfg.get("num_classes") or 0) or None,
        builder=TimmBuilder(name, weights_file),
        builder_args=args,
        # Counting needs the graph, not the weights: no file is read for it.
        counting_args={"pretrained": False} if pretrained else {},
        accepts=("in_chans", "num_classes", "pretrained"),
        weights_source=f"timm pretrained: {weights_file}" if weights_file else "",
        weights_digest=weights_digest(weights_file) if weights_file else "",
        preprocessing=preprocessing,
        provenance={"timm_version": timm.__version__, "timm_name": full},
    )
