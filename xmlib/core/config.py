"""Frozen-dataclass configs fed from a named profile plus papermill overrides.

Each chapter defines one frozen dataclass (the defaults are the book's CPU profile) and a mapping of
named profiles to the values that differ::

    @dataclass(frozen=True)
    class Config(BaseConfig):
        seed: int = 0
        epochs: int = 20

    PROFILES = {"smoke": {"epochs": 1}, "default": {}, "paper": {"epochs": 100}}
    cfg = resolve_config(Config, PROFILES, profile="smoke", overrides={"seed": 3})

Unknown names, wrong types and bad values are errors that name the parameter, what was given and the
fix, never silently ignored.

A field's allowed values are declared once, next to the field, and checked for every config by
:class:`BaseConfig` (before the config's own ``validate``, which keeps the rules that tie fields
together)::

    lr: float = positive(1e-3)                                # > 0, finite; default 1e-3
    dropout: float = between(0.0, 1.0, 0.2, high_open=True)   # [0, 1); bounds first, then the default
    folds: int = at_least(2, 5, why="cross-validation needs two folds")
    zscore_ddof: int = one_of((0, 1), 0)
    seeds: int = analysis_field(3, domain=Range(1))  # roles and domains combine

A tuple field's domain applies to every item (and the tuple may not be empty). A bad value raises
:class:`ConfigError` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from typing import Any, Literal, Mapping, TypeVar


class ConfigError(ValueError):
    """A bad profile name, parameter name, type or value."""


C = TypeVar("C", bound="BaseConfig")


@dataclasses.dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` to ``high`` (either end may be open or absent), optionally multiples
    of ``step``; ``why`` says where the bounds come from."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    step: int | None = None
    why: str = ""

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return self.step is None or value % self.step == 0

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {self.high}"
        else:
            text = "finite"
        if self.step is not None:
            text = f"a multiple of {self.step} {text}"
        return text + (f" ({self.why})" if self.why else "")


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of a few ``values`` (for numbers that are really choices, e.g. 0 or 1)."""

    values: tuple
    why: str = ""

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        return f"one of {list(self.values)}" + (f" ({self.why})" if self.why else "")


Domain = Range | OneOf


def _field(default: Any, *, domain: Domain | None = None, role: str | None = None) -> Any:
    metadata = {k: v for k, v in (("domain", domain), ("role", role)) if v is not None}
    return dataclasses.field(default=default, metadata=metadata)


def field(default: Any, domain: Domain) -> Any:
    """A config field whose values must lie in ``domain`` (:class:`Range` or :class:`OneOf`)."""
    return _field(default, domain=domain)


def positive(default: Any, why: str = "") -> Any:
    """A field that must be a finite number > 0."""
    return _field(default, domain=Range(0, low_open=True, why=why))


def at_least(low: float, default: Any, why: str = "") -> Any:
    """A field that must be a finite number >= ``low``."""
    return _field(default, domain=Range(low, why=why))


def between(low: float, high: float, default: Any, *, low_open: bool = False, high_open: bool = False, why: str = "") -> Any:
    """A field that must lie between ``low`` and ``high`` (closed ends unless said open)."""
    return _field(default, domain=Range(low, high, low_open, high_open, why=why))


def one_of(values: tuple, default: Any, why: str = "") -> Any:
    """A field that must be one of ``values``."""
    return _field(default, domain=OneOf(tuple(values), why=why))


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Base for chapter configs: type-checked on creation, ``validate`` hook for value checks."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(type(self).__name__, f.name, hints[f.name], value)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.check_domains()
        self.validate()

    def check_domains(self) -> None:
        """Check every field declared with a domain; the error names the field and the allowed range."""
        for f in dataclasses.fields(self):
            domain = f.metadata.get("domain")
            if domain is None:
                continue
            value = getattr(self, f.name)
            items = value if isinstance(value, tuple) else (value,)
            if not items:
                raise ConfigError(f"{type(self).__name__}.{f.name} = (): needs at least one value, each {domain.describe()}")
            for item in items:
                if not domain.contains(item):
                    each = f" (the item {item!r})" if isinstance(value, tuple) else ""
                    raise ConfigError(f"{type(self).__name__}.{f.name} = {value!r}{each}: must be {domain.describe()}")

    @classmethod
    def domains(cls) -> dict[str, str]:
        """``{field: allowed values}`` of the fields declared with a domain (for docs and error pages)."""
        return {f.name: f.metadata["domain"].describe() for f in dataclasses.fields(cls) if "domain" in f.metadata}

    def validate(self) -> None:
        """Override to check values; raise :class:`ConfigError` via :meth:`require`."""

    def require(self, condition: bool, name: str, message: str) -> None:
        if not condition:
            raise ConfigError(f"{type(self).__name__}.{name} = {getattr(self, name)!r}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: C, **changes: Any) -> C:
        _check_names(type(self), changes)
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short stable hash of all the values (keys the chapter's run folder)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @classmethod
    def fields_with_role(cls, role: str) -> tuple[str, ...]:
        """Fields declared with :func:`analysis_field` (``role="analysis"``) or :func:`evaluation_field`
        (``role="evaluation"``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("role") == role)

    @classmethod
    def analysis_fields(cls) -> tuple[str, ...]:
        return cls.fields_with_role("analysis")

    def model_fingerprint(self, exclude: tuple[str, ...] = (), *, evaluation: bool = True) -> str:
        """A short hash of the values that can change a trained model and, with ``evaluation``, its test
        results: every field but the analysis-only ones, the evaluation ones when ``evaluation=False``,
        and ``exclude`` (e.g. ``("seed",)`` when the seed keys a result separately)."""
        skip = set(self.analysis_fields()) | set(exclude)
        if not evaluation:
            skip |= set(self.fields_with_role("evaluation"))
        blob = json.dumps({k: v for k, v in self.to_dict().items() if k not in skip}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def analysis_field(default: Any, domain: Domain | None = None) -> Any:
    """A config field that only changes the analysis (bootstrap replicates, plots, how many seeds a table
    uses): left out of :meth:`BaseConfig.model_fingerprint`, so changing it retrains nothing. ``domain``:
    its allowed values, as for :func:`field`."""
    return _field(default, domain=domain, role="analysis")


def evaluation_field(default: Any, domain: Domain | None = None) -> Any:
    """A config field that changes how a trained model is tested (e.g. the test subset), not the model:
    checkpoints are keyed without it (``model_fingerprint(evaluation=False)``), results with it.
    ``domain``: its allowed values, as for :func:`field`."""
    return _field(default, domain=domain, role="evaluation")


def resolve_config(
    cls: type[C],
    profiles: Mapping[str, Mapping[str, Any]],
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Build ``cls`` from its defaults, then the named profile's values, then ``overrides``."""
    if profile not in profiles:
        raise ConfigError(
            f"unknown profile {profile!r} for {cls.__name__}; choose one of {sorted(profiles)} "
            f"(papermill: -p profile smoke)"
        )
    values: dict[str, Any] = {}
    for source, mapping in ((f"profile {profile!r}", profiles[profile]), ("overrides", overrides or {})):
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{source} must be a mapping of parameter names to values, got {type(mapping).__name__}")
        _check_names(cls, mapping, source)
        values.update(mapping)
    return cls(**values)


def _check_names(cls: type, mapping: Mapping[str, Any], source: str = "overrides") -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    for name in mapping:
        if name not in valid:
            close = difflib.get_close_matches(str(name), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown parameter {name!r} in {source} for {cls.__name__}{hint} "
                f"Valid names: {', '.join(valid)}"
            )


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``hint``; allow only lossless conversions."""
    where = f"{owner}.{name}"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(owner, name, arg, value)
            except ConfigError:
                continue
        raise ConfigError(f"{where} = {value!r} does not fit {_name(hint)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r}: must be one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"{where} = {value!r}: expected a list or tuple ({_name(hint)})")
        if len(args) == 2 and args[1] is Ellipsis:
            items = tuple(_coerce(owner, name, args[0], v) for v in value)
        else:
            if len(args) != len(value):
                raise ConfigError(f"{where} = {value!r}: expected {len(args)} items ({_name(hint)})")
            items = tuple(_coerce(owner, name, a, v) for a, v in zip(args, value))
        return items
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: expected true/false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} = {value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: expected a number")
        return value if isinstance(value, float) else float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: expected a string")
        return value
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
