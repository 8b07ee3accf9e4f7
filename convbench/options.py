"""Options declared once: type, default, help and validation in one dataclass field, used everywhere.

A configuration is a frozen dataclass whose fields are declared with ``option(...)``. From that one
declaration come the command-line flags of every command that takes the dataclass (``cli_options`` turns the
fields into Typer parameters), the validation (``validate``: one place, one wording), the run-spec keys
(``from_mapping``) and the key that says which settings a result was measured with (``settings_key``).
Runtimes declare their own options the same way, so a runtime's flags appear without editing the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from convbench.errors import UserInputError

Check = Callable[[Any], str | None]  # returns what is wrong with a value, or None


@dataclass(frozen=True)
class OptionInfo:
    help: str
    flags: tuple[str, ...] = ()  # default: --field-name
    check: Check | None = None
    parse: Callable[[str], Any] | None = None  # the command line's text -> the field's value
    cli_type: Any = None  # the type the command line reads (default: the field's own)
    in_key: bool = True  # part of the settings a measurement is identified by
    hidden: bool = False


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flags: Sequence[str] = (),
    check: Check | None = None,
    parse: Callable[[str], Any] | None = None,
    cli_type: Any = None,
    in_key: bool = True,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line option and a run-spec key."""
    info = OptionInfo(help, tuple(flags), check, parse, cli_type, in_key)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"option": info})
    return field(default=default, metadata={"option": info})


def group(cls: type, help: str = "") -> Any:
    """A field holding another options dataclass whose options are flattened into the same command."""
    return field(default_factory=cls, metadata={"group": cls, "help": help})


# Checks -------------------------------------------------------------------------------------------------


def between(low: float, high: float, unit: str = "") -> Check:
    suffix = f" {unit}" if unit else ""

    def check(value: Any) -> str | None:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v is not None and not low <= v <= high:
                return f"must be between {low:g} and {high:g}{suffix}, got {v:g}"
        return None

    return check


def at_least(low: float) -> Check:
    def check(value: Any) -> str | None:
        if value is not None and value < low:
            return f"must be at least {low:g}, got {value:g}"
        return None

    return check


def above(low: float) -> Check:
    def check(value: Any) -> str | None:
        if value is not None and not value > low:
            return f"must be more than {low:g}, got {value:g}"
        return None

    return check


def one_of(choices: Iterable[str] | Callable[[], Iterable[str]]) -> Check:
    def check(value: Any) -> str | None:
        allowed = list(choices() if callable(choices) else choices)
        if value is not None and value not in allowed:
            return f"must be one of {', '.join(allowed)}, got {value!r}"
        return None

    return check


def int_list(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``: whole numbers separated by commas, no empty items, duplicates dropped."""
    if isinstance(text, bool):
        raise ValueError(f"takes whole numbers, got {text!r}")
    if isinstance(text, int):
        return (text,)
    if isinstance(text, list | tuple):
        return tuple(dict.fromkeys(int(v) for v in text))
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"takes whole numbers separated by commas, got {text!r} (an empty item)")
    try:
        return tuple(dict.fromkeys(int(p) for p in parts))
    except ValueError:
        raise ValueError(f"takes whole numbers separated by commas, got {text!r}") from None


# Introspection ------------------------------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flag_of(f: dataclasses.Field) -> str:
    info: OptionInfo = f.metadata["option"]
    return info.flags[0].split("/")[0] if info.flags else "--" + f.name.replace("_", "-")


def option_fields(cls: type) -> list[tuple[tuple[str, ...], dataclasses.Field]]:
    """(path, field) for every option of ``cls``, groups flattened; the path leads through group fields."""
    out: list[tuple[tuple[str, ...], dataclasses.Field]] = []
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            out += [((f.name, *path), sub) for path, sub in option_fields(f.metadata["group"])]
        elif "option" in f.metadata:
            out.append(((f.name,), f))
    return out


def _owner(cls: type, path: tuple[str, ...]) -> type:
    for name in path[:-1]:
        cls = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["group"]
    return cls


def field_type(cls: type, path: tuple[str, ...]) -> Any:
    return _hints(_owner(cls, path))[path[-1]]


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _convert(f: dataclasses.Field, value: Any) -> Any:
    info: OptionInfo = f.metadata["option"]
    if value is None:
        return None
    if info.parse is not None and not isinstance(default_of(f), bool):
        try:
            return info.parse(value)
        except ValueError as exc:
            raise UserInputError(f"{flag_of(f)} {exc}") from None
    return value


def from_mapping(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Build ``cls`` from flat option values (``None`` or absent: the default), then validate it.

    Unknown keys are an error naming the key (``where`` says which file or section they came from).
    """
    fields = {path[-1]: (path, f) for path, f in option_fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        origin = f"{where}: " if where else ""
        raise UserInputError(f"{origin}unknown option {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    nested: dict[tuple[str, ...], dict[str, Any]] = {}
    for name, value in values.items():
        path, f = fields[name]
        if value is None:
            continue
        nested.setdefault(path[:-1], {})[path[-1]] = _convert(f, value)
    return validate(_construct(cls, (), nested))


def _construct(cls: type, prefix: tuple[str, ...], nested: dict[tuple[str, ...], dict[str, Any]]) -> Any:
    kwargs = dict(nested.get(prefix, {}))
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            kwargs[f.name] = _construct(f.metadata["group"], (*prefix, f.name), nested)
    return cls(**kwargs)


def validate(obj: Any) -> Any:
    """Check every option of ``obj`` with its declared check; the first problem is a one-line error."""
    for path, f in option_fields(type(obj)):
        info: OptionInfo = f.metadata["option"]
        value = obj
        for name in path:
            value = getattr(value, name)
        if info.check is not None:
            problem = info.check(value)
            if problem:
                raise UserInputError(f"{flag_of(f)} {problem}")
    post = getattr(obj, "check", None)
    if callable(post):
        post()
    return obj


def settings_key(obj: Any, extra: Mapping[str, Any] | None = None) -> str:
    """The options of ``obj`` that decide a measurement, as one comparable string (non-defaults only)."""
    parts: dict[str, Any] = {}
    for path, f in option_fields(type(obj)):
        if not f.metadata["option"].in_key:
            continue
        value = obj
        for name in path:
            value = getattr(value, name)
        parts[path[-1]] = value
    parts.update(extra or {})
    return " ".join(f"{k}={_text(v)}" for k, v in parts.items() if v not in (None, "", False, ()))


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


# Command-line parameters --------------------------------------------------------------------------------


def _optional(tp: Any) -> Any:
    return tp | None


def cli_parameter(path: tuple[str, ...], f: dataclasses.Field, tp: Any, help_suffix: str = "") -> inspect.Parameter:
    import typer

    info: OptionInfo = f.metadata["option"]
    default = default_of(f)
    name = path[-1]
    flags = list(info.flags) or ["--" + name.replace("_", "-")]
    help_text = info.help + help_suffix
    if tp is bool or info.cli_type is bool:
        if not info.flags:
            flags = [f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"] if default else flags
        annotation = Annotated[bool, typer.Option(*flags, help=help_text)]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=bool(default), annotation=annotation)
    cli_type = info.cli_type or tp
    origin = typing.get_origin(cli_type)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        cli_type = next(a for a in typing.get_args(cli_type) if a is not type(None))
    if default not in (None, (), ""):
        help_text += f" [default: {_text(default)}]"
    annotation = Annotated[_optional(cli_type), typer.Option(*flags, help=help_text, show_default=False)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def cli_options(cls: type, only: Iterable[str] | None = None) -> list[inspect.Parameter]:
    chosen = set(only) if only is not None else None
    return [
        cli_parameter(path, f, field_type(cls, path))
        for path, f in option_fields(cls)
        if (chosen is None or path[-1] in chosen) and not f.metadata["option"].hidden
    ]


@dataclass(frozen=True)
class Uses:
    """What a command takes from one or more option dataclasses: the first class is built (by ``build``, or
    from its own fields) from the flags of all of them; ``only`` limits the flags to some fields."""

    classes: tuple[type, ...]
    build: Callable[[dict[str, Any]], Any] | None = None
    only: tuple[str, ...] | None = None

    def parameters(self) -> list[inspect.Parameter]:
        params: dict[str, inspect.Parameter] = {}
        for cls in self.classes:
            for p in cli_options(cls, self.only):
                params.setdefault(p.name, p)
        return list(params.values())

    def make(self, raw: dict[str, Any]) -> Any:
        return self.build(raw) if self.build else from_mapping(self.classes[0], raw)


def takes(**groups: type | Uses) -> Callable[[Callable], Callable]:
    """Decorator for a Typer command: add the options of each dataclass and pass the built objects.

    ``@takes(config=BenchmarkConfig)`` adds a flag per option of ``BenchmarkConfig`` to the command's
    signature and calls the command with ``config=`` the validated object.
    """
    uses = {arg: spec if isinstance(spec, Uses) else Uses((spec,)) for arg, spec in groups.items()}

    def decorate(func: Callable) -> Callable:
        hints = typing.get_type_hints(func, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(func).parameters.values()
            if p.name not in uses
        ]
        taken = {p.name for p in own}
        added: dict[str, list[str]] = {}
        extra: list[inspect.Parameter] = []
        for arg, use in uses.items():
            params = [p for p in use.parameters() if p.name not in taken]
            taken |= {p.name for p in params}
            added[arg] = [p.name for p in params]
            extra += params

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for arg, use in uses.items():
                raw = {name: kwargs.pop(name) for name in added[arg] if name in kwargs}
                kwargs[arg] = use.make(raw)
            return func(*args, **kwargs)

        wrapper.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
        return wrapper

    return decorate
