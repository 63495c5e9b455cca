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
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from typing import Any, Literal, Mapping, TypeVar


class ConfigError(ValueError):
    """A bad profile name, parameter name, type or value."""


C = TypeVar("C", bound="BaseConfig")


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
        self.validate()

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


def analysis_field(default: Any) -> Any:
    """A config field that only changes the analysis (bootstrap replicates, plots, how many seeds a table
    uses): left out of :meth:`BaseConfig.model_fingerprint`, so changing it retrains nothing."""
    return dataclasses.field(default=default, metadata={"role": "analysis"})


def evaluation_field(default: Any) -> Any:
    """A config field that changes how a trained model is tested (e.g. the test subset), not the model:
    checkpoints are keyed without it (``model_fingerprint(evaluation=False)``), results with it."""
    return dataclasses.field(default=default, metadata={"role": "evaluation"})


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
