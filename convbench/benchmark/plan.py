"""What to measure and how, declared once and resolved once.

``BenchmarkConfig`` is the request as a user writes it: one field per command-line flag and run-spec key (the
fields become flags through ``convbench.options``), with lists to sweep and ``None`` for "the default". It is
resolved once, by ``BenchmarkConfig.plans()``, into one immutable ``Plan`` per (batch size, resolution):

- ``Workload``: what is measured and counted (batch size, resolution, MAC convention);
- ``Backend``: what runs it (device, runtime, threads, exporter, precision, and the runtime's own typed options,
  parsed once here);
- ``Protocol``: how it is timed (trials, isolation, adaptive stopping, the timing loop's settings).

Trials, worker processes, result rows and cache keys all read the plan; a worker process receives the plan
itself (pickled), never a mapping to parse again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from convbench.counting.macs import CONVENTIONS, DEFAULT_CONVENTION
from convbench.errors import UserInputError
from convbench.export import EXPORTERS
from convbench.options import (
    above,
    at_least,
    between,
    default_of,
    from_mapping,
    group,
    int_list,
    one_of,
    option,
    option_fields,
    settings_key,
)
from convbench.runtimes import DEFAULT_RUNTIME, DEVICES, RunSettings, runtime_class, runtime_help
from convbench.timing.machine import available_cores
from convbench.timing.measure import TimingSettings

if TYPE_CHECKING:
    from convbench.models.spec import ModelSpec, ResolvedModel

ISOLATION = ("process", "session")
#: A worker that has not answered after this long is stopped: a hung runtime must not hang a sweep forever.
DEFAULT_WORKER_TIMEOUT_S = 1800.0


def _runtime_names() -> list[str]:
    from convbench.runtimes import runtime_names

    return runtime_names()


@dataclass(frozen=True)
class BenchmarkConfig:
    """The request: every option of ``profile``, ``compare``, ``reproduce`` and run specs, as given.

    Build it flat (``BenchmarkConfig(trials=3, batch_size=(1, 8))``; runtime options as ``runtime_args``, or
    through ``config_from_mapping``), then ``plans()`` resolves it. Recorded in every row through its plan.
    """

    # Workload
    batch_size: tuple[int, ...] = option(
        (1,),
        "Batch size, or a list to sweep: 1,8,32.",
        flags=("--batch-size", "-b"),
        parse=int_list,
        cli_type=str,
        check=between(1, 65536),
    )
    resolution: tuple[int, ...] = option(
        (),
        "Square input size (default: the model's), or a list to sweep: 160,224.",
        parse=int_list,
        cli_type=str,
        check=between(8, 4096, "pixels"),
    )
    convention: str = option(
        DEFAULT_CONVENTION,
        "MAC counting convention: convbench, fvcore, mac+, micronet or paper (`count --help`).",
        check=one_of([*CONVENTIONS, "paper"]),
    )
    # Backend
    device: str = option("cpu", "cpu or cuda.", check=one_of(DEVICES))
    runtime: str | None = option(None, runtime_help(), check=one_of(_runtime_names))
    threads: int | None = option(None, "Intra-op threads (default: the available cores).", check=between(1, 1024))
    exporter: str = option("dynamo", "ONNX exporter: dynamo or torchscript.", check=one_of(EXPORTERS))
    precision: str = option(
        "fp32",
        "Numeric precision, checked against the runtime: fp32 everywhere; torch on cuda also fp16, bf16, "
        "amp-fp16, amp-bf16; openvino also bf16 where the CPU has it.",
    )
    # Protocol
    trials: int = option(
        10,
        "Independent trials (fresh sessions; with --isolate process, fresh processes); intervals include the "
        "variation between them.",
        check=between(1, 1000),
        in_key=False,
    )
    isolate: str = option(
        "process",
        "process: each trial in a fresh worker process (as pyperf); session: fresh sessions in this "
        "process (faster, misses between-process variation).",
        check=one_of(ISOLATION),
        in_key=False,
    )
    target_ci: float | None = option(
        None,
        "Add trials until every speed-up's 95% interval half-width is within this many percent.",
        check=above(0),
        in_key=False,
    )
    max_time: float = option(
        600.0, "With --target-ci: stop adding trials after this many seconds.", check=above(0), in_key=False
    )
    seed: int = option(0, "Seed of the model order shuffled between trials.", check=at_least(0), in_key=False)
    worker_timeout: float = option(
        DEFAULT_WORKER_TIMEOUT_S,
        "Seconds a trial's worker process may take before it is stopped and the run fails with one line.",
        check=above(0),
        in_key=False,
    )
    timing: TimingSettings = group(TimingSettings)
    # Options of the selected runtime that differ from their defaults (name -> value), from its options class.
    runtime_args: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.runtime_args, dict):  # a mapping is the natural way to write them in Python
            object.__setattr__(self, "runtime_args", tuple(self.runtime_args.items()))

    @property
    def runtime_name(self) -> str:
        return self.runtime or DEFAULT_RUNTIME.get(self.device, "onnxruntime")

    def runtime_options(self) -> Any:
        """The selected runtime's own typed options object, from ``runtime_args``; unknown names fail."""
        cls = runtime_class(self.runtime, self.device)
        fields = {path[-1] for path, _ in option_fields(cls.options_type)}
        for name, _ in self.runtime_args:
            if name not in fields:
                owners = _option_owners(name)
                flag = "--" + name.replace("_", "-")
                raise UserInputError(
                    f"{flag} is not an option of runtime {cls.name} on {self.device}"
                    + (f"; it applies to {', '.join(owners)}" if owners else "")
                )
        return from_mapping(cls.options_type, dict(self.runtime_args), where=f"runtime {cls.name}")

    def check(self) -> None:
        """Checks across options (each option's own check ran already)."""
        self.plans()

    def plans(self) -> list[Plan]:
        """One resolved plan per (batch size, resolution), in sweep order; the checks across options run here."""
        cls = runtime_class(self.runtime, self.device)
        if self.precision not in cls.precisions:
            raise UserInputError(
                f"--precision {self.precision} is not supported by runtime {cls.name} on {self.device}; "
                f"it supports {', '.join(cls.precisions)}"
            )
        options = self.runtime_options()
        backend = Backend(
            device=self.device,
            runtime=cls.name,
            threads=self.threads or available_cores(),
            exporter=self.exporter,
            precision=self.precision,
            options=options,
        )
        protocol = Protocol(
            trials=self.trials,
            isolate=self.isolate,
            target_ci=self.target_ci,
            max_time=self.max_time,
            seed=self.seed,
            worker_timeout=self.worker_timeout,
            timing=self.timing,
        )
        extra = {"runtime": backend.runtime, "threads": backend.threads, **asdict(options)}
        return [
            Plan(
                Workload(b, r, self.convention),
                backend,
                protocol,
                settings_key(replace(self, runtime=None, threads=None, batch_size=(b,), resolution=_one(r)), extra),
                self,
            )
            for b in self.batch_size
            for r in (self.resolution or (None,))
        ]

    def plan(self) -> Plan:
        """The plan of a request for exactly one (batch size, resolution)."""
        plans = self.plans()
        if len(plans) != 1:
            raise UserInputError("this command takes one batch size and one resolution, not a list")
        return plans[0]

    def to_mapping(self) -> dict[str, Any]:
        """Flat option values (and runtime options) that ``config_from_mapping`` turns back into this config."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("timing", "runtime_args")}
        flat.update(asdict(self.timing))
        flat.update(dict(self.runtime_args))
        return flat


@dataclass(frozen=True)
class Workload:
    """What is measured: one batch size, one resolution (None: the model's own) and the MAC convention."""

    batch_size: int
    resolution: int | None
    convention: str


@dataclass(frozen=True)
class Backend:
    """What runs the models, resolved: the runtime's name, the thread count and its typed options."""

    device: str
    runtime: str
    threads: int
    exporter: str
    precision: str
    options: Any = field(default=None)

    @property
    def runtime_class(self) -> type:
        return runtime_class(self.runtime, self.device)


@dataclass(frozen=True)
class Protocol:
    """How the models are timed: independent trials, their isolation, adaptive stopping and the timing loop."""

    trials: int
    isolate: str
    target_ci: float | None
    max_time: float
    seed: int
    worker_timeout: float
    timing: TimingSettings


@dataclass(frozen=True)
class Plan:
    """One resolved (batch size, resolution) point of a request: read by trials, workers, rows and caches."""

    workload: Workload
    backend: Backend
    protocol: Protocol
    #: the settings a measurement is identified by (timing and trial counts aside), as one string.
    settings_key: str
    #: the request it came from, for the row's record of every option.
    request: BenchmarkConfig

    def resolve(self, spec: ModelSpec) -> ResolvedModel:
        """``spec`` as this plan builds it: at its resolution, with its family's defaults for this runtime and
        device (e.g. the implementation measured best there), so the parent and every worker build the same."""
        from convbench.models.spec import resolve_model

        return resolve_model(
            spec, resolution=self.workload.resolution, runtime=self.backend.runtime, device=self.backend.device
        )

    def run_settings(self, model: ResolvedModel) -> RunSettings:
        """What the runtime receives for ``model``: its input shape at this point, and the thread budget."""
        return RunSettings(
            device=self.backend.device,
            threads=self.backend.threads,
            input_shape=model.input_shape(self.workload.batch_size, self.workload.resolution),
            exporter=self.backend.exporter,
            precision=self.backend.precision,
        )


def _one(resolution: int | None) -> tuple[int, ...]:
    return () if resolution is None else (resolution,)


def _option_owners(name: str) -> list[str]:
    from convbench.runtimes import discover

    owners = []
    for key, cls in discover().items():
        if any(path[-1] == name for path, _ in option_fields(cls.options_type)):
            owners.append(f"{key.name} on {key.device}")
    return owners


def runtime_option_classes() -> list[type]:
    from convbench.runtimes import all_runtime_classes

    return list(dict.fromkeys(cls.options_type for cls in all_runtime_classes()))


def runtime_option_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for cls in runtime_option_classes():
        for path, f in option_fields(cls):
            defaults.setdefault(path[-1], default_of(f))
    return defaults


def config_from_mapping(values: dict[str, Any], where: str = "") -> BenchmarkConfig:
    """A validated ``BenchmarkConfig`` from flat option values, runtime options included.

    Runtime options left at their defaults are dropped, so only the ones a user set are checked against the
    selected runtime ("--cuda-graphs is not an option of runtime onnxruntime").
    """
    defaults = runtime_option_defaults()
    own = {path[-1] for path, _ in option_fields(BenchmarkConfig)}
    runtime_args = tuple(
        (k, v) for k, v in values.items() if k in defaults and k not in own and v is not None and v != defaults[k]
    )
    unknown = [k for k in values if k not in own and k not in defaults]
    if unknown:
        origin = f"{where}: " if where else ""
        raise UserInputError(f"{origin}unknown option {unknown[0]!r}")
    config = from_mapping(BenchmarkConfig, {k: v for k, v in values.items() if k in own}, where=where)
    config = replace(config, runtime_args=runtime_args)
    config.check()
    return config
