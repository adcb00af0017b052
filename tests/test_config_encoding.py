"""FederationConfig has one encoding, and params_id is its hash: every field changes params_id.

The fields are enumerated from the dataclass declarations (nested policies included), never
from a hand-written list, so a field added later is perturbed here without touching this test.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest

from fhe_agg import (
    PRESETS,
    DpPolicy,
    FederationConfig,
    FheAggError,
    FloodingPolicy,
    MalformedMessage,
)

BASE = FederationConfig(
    preset=PRESETS["precise"],
    min_clients=3,
    max_clients=16,
    max_weight=100.0,
    value_bound=1.0,
    holders=5,
    threshold=3,
    flooding=FloodingPolicy(),
    dp=DpPolicy(clip=1.0, noise_multiplier=1.0, honest_holders=2),
)

Path = tuple[str, ...]


def _options(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def leaves(obj: object, path: Path = ()) -> Iterator[tuple[Path, object, Any]]:
    """Every compared field, recursively: (path, value, annotation)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        if not f.compare:
            continue
        value = getattr(obj, f.name)
        yield (*path, f.name), value, hints[f.name]
        if dataclasses.is_dataclass(value):
            yield from leaves(value, (*path, f.name))


def candidates(value: object, hint: Any) -> list[object]:
    """Other values of the field's type, some of which the constructors accept."""
    out: list[object] = []
    for option in _options(hint):
        if option is type(None):
            out.append(None)
        elif option is bool:
            out.append(not value)
        elif isinstance(option, type) and issubclass(option, enum.Enum):
            out += [m for m in option if m is not value]
        elif option is int:
            v = value if type(value) is int else 1
            out += [v + 1, v - 1, 2 * v, v // 2, 1, 2]
        elif option is float:
            v = value if type(value) is float else 1.0
            out += [v * 1.5, v / 2, v + 1.0, 0.5, 1e-6]
        elif option is str:
            out += ["central", "distributed", f"{value}-other"]
        elif typing.get_origin(option) is tuple and isinstance(value, tuple):
            out += [(*value, value[-1]), value[:-1], tuple(x - 10 for x in value)]
        elif dataclasses.is_dataclass(option) and value is None:
            out += [
                option() if option is FloodingPolicy else DpPolicy(clip=1.0, noise_multiplier=1.0)
            ]
    return [c for c in out if c != value or type(c) is not type(value)]


def replaced(obj: Any, path: Path, value: object) -> Any:
    head, *rest = path
    inner = value if not rest else replaced(getattr(obj, head), tuple(rest), value)
    return dataclasses.replace(obj, **{head: inner})


def forced(obj: Any, path: Path, value: object) -> Any:
    """``obj`` with the field at ``path`` set to ``value`` without the constructors' checks
    (some fields, such as an explicit opt-in, are never valid changed alone)."""
    head, *rest = path
    copy_ = copy.copy(obj)
    copy_.__dict__.pop("params_id", None)  # cached on the original
    inner = value if not rest else forced(getattr(obj, head), tuple(rest), value)
    object.__setattr__(copy_, head, inner)
    return copy_


def test_every_field_of_every_policy_changes_params_id() -> None:
    names = {f.name for f in dataclasses.fields(FederationConfig) if f.compare}
    assert {p[0] for p, _, _ in leaves(BASE)} == names
    valid = 0
    for path, value, hint in leaves(BASE):
        if dataclasses.is_dataclass(value) and type(None) not in _options(hint):
            continue  # a required policy: its own fields are the leaves perturbed
        others = candidates(value, hint)
        assert others, path
        for candidate in others:
            assert forced(BASE, path, candidate).params_id != BASE.params_id, (path, candidate)
            try:
                variant = replaced(BASE, path, candidate)
            except (TypeError, ValueError, FheAggError):
                continue  # a value the constructors refuse
            assert variant.params_id != BASE.params_id, (path, candidate)
            assert FederationConfig.from_bytes(variant.to_bytes()) == variant
            valid += 1
    assert valid >= len(names)


def test_the_encoding_round_trips_and_is_canonical() -> None:
    data = BASE.to_bytes()
    again = FederationConfig.from_bytes(data)
    assert again == BASE and again.to_bytes() == data and again.params_id == BASE.params_id
    as_int = dataclasses.replace(BASE, max_weight=100)  # type: ignore[arg-type]
    assert as_int.to_bytes() == data  # 100 and 100.0 are one configuration
    single = FederationConfig()
    assert FederationConfig.from_bytes(single.to_bytes()) == single


@pytest.mark.parametrize("cut", [0, 1, 10, -1])
def test_truncated_or_edited_encodings_are_refused(cut: int) -> None:
    data = BASE.to_bytes()
    with pytest.raises(MalformedMessage):
        FederationConfig.from_bytes(data[:cut])
    edited = data.replace(b"distributed", b"everywhere!")
    with pytest.raises(MalformedMessage, match="mode"):
        FederationConfig.from_bytes(edited)
