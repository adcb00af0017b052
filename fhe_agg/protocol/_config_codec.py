"""One canonical encoding of a frozen dataclass, derived from its declaration.

:meth:`FederationConfig.to_bytes` and ``params_id`` use it, so a field added to the dataclass (or
to a nested policy) is encoded, hashed and parsed without a second list of fields to keep in
step. Every field whose ``compare`` is true is encoded under its name, in declaration order:
nested dataclasses as maps, tuples as arrays, enums as their values, ``float`` fields always as floats (``1000`` and
``1000.0`` are one configuration), ``None`` as nil. Decoding follows the type annotations and
refuses anything else; the dataclass's own constructor then validates the values.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, TypeVar

from fhe_agg.errors import MalformedMessage

__all__ = ["decode_dataclass", "encode_dataclass"]

T = TypeVar("T")
_MAX_DEPTH = 4


def _fields(cls: type) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.compare]


def encode_dataclass(value: object) -> dict[str, Any]:
    """The canonical map of ``value``'s compared fields."""
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    return {name: _encode(getattr(value, name), hint) for name, hint in _fields(type(value))}


def _encode(value: object, hint: Any) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode_dataclass(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis} or {object}
        return [_encode(v, item) for v in value]
    if isinstance(value, bool | str):
        return value
    if float in _options(hint) and isinstance(value, int | float):
        return float(value)
    if isinstance(value, int):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__}")


def _options(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def decode_dataclass(cls: type[T], raw: object, where: str, depth: int = 0) -> T:
    """Rebuild ``cls`` from its canonical map; :class:`MalformedMessage` for another shape or
    a value its constructor refuses (``TypeError``/``ValueError``, or an ``OverflowError`` of a
    derived bound)."""
    names = [name for name, _ in _fields(cls)]
    if depth > _MAX_DEPTH or not isinstance(raw, dict) or list(raw) != names:
        raise MalformedMessage(f"{where}: expected the fields {names} in this order")
    values = {
        name: _decode(raw[name], hint, f"{where}.{name}", depth) for name, hint in _fields(cls)
    }
    try:
        return cls(**values)
    except (TypeError, ValueError, ArithmeticError) as exc:  # e.g. 2**bits beyond a float
        raise MalformedMessage(f"{where}: {type(exc).__name__}: {exc}") from None


def _decode(raw: object, hint: Any, where: str, depth: int) -> Any:
    options = _options(hint)
    if raw is None:
        if type(None) in options:
            return None
        raise MalformedMessage(f"{where}: may not be nil")
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(raw, dict):
            return decode_dataclass(option, raw, where, depth + 1)  # type: ignore[arg-type]
        if typing.get_origin(option) is tuple and isinstance(raw, list):
            (item,) = {a for a in typing.get_args(option) if a is not Ellipsis}
            return tuple(_decode(v, item, f"{where}[]", depth) for v in raw)
        if isinstance(option, type) and issubclass(option, enum.Enum):
            members = [m for m in option if type(m.value) is type(raw) and m.value == raw]
            if members:
                return members[0]
            continue
        if option is bool and type(raw) is bool:
            return raw
        if option is int and type(raw) is int:
            return raw
        if option is float and type(raw) is float and math.isfinite(raw):
            return raw
        if option is str and type(raw) is str:
            return raw
    raise MalformedMessage(f"{where}: expected {hint}, got {type(raw).__name__}")
