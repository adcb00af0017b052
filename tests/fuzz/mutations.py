"""Hypothesis strategies that damage valid messages, and the "refuse or parse" assertion.

Two kinds of damage: byte-level (flip, overwrite, truncate, insert, delete; positions biased
towards headers) and structural (decode msgpack or JSON, replace one node anywhere in the tree
with a value of any type, range or depth, encode again), which reaches the typed validation
of each field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

S = TypeVar("S")
T = TypeVar("T")

#: Settings of every parser property test: few, cheap examples (the suite must stay fast;
#: the atheris harnesses under fuzz/ run the long campaigns).
PARSER_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_DEEP = "\x00deep\x00"

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=40)
    | st.just(_DEEP)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
msgpack_values = st.recursive(
    _scalars | st.binary(max_size=40) | st.sampled_from([b"\x00" * 32, b"\xff" * 3309]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def damaged_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with one to three byte-level mutations."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        size = len(data)
        where = draw(
            st.integers(0, min(size, 600))
            | st.integers(0, size)
            | st.integers(max(size - 64, 0), size)
        )
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if op in ("flip", "set") and where < size:
            data[where] = (
                data[where] ^ (1 << draw(st.integers(0, 7)))
                if op == "flip"
                else draw(st.integers(0, 255))
            )
        elif op == "truncate":
            del data[where:]
        elif op == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif where < size:
            del data[where : where + draw(st.integers(1, 16))]
    return bytes(data)


def _paths(tree: Any) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            out.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return out


@st.composite
def _damaged_tree(draw: st.DrawFn, tree: Any, values: st.SearchStrategy[Any]) -> Any:
    root = [tree]
    container, key = draw(st.sampled_from(_paths(root)))
    if draw(st.booleans()) and isinstance(container, dict):
        del container[key]  # a missing field
    else:
        container[key] = draw(values)
    return root[0]


def damaged_msgpack(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` (msgpack) with one node replaced or removed, re-encoded; deep nesting included."""

    def encode(tree: Any) -> bytes:
        raw: bytes = msgpack.packb(tree, use_bin_type=True)
        return raw.replace(msgpack.packb(_DEEP), b"\x91" * 2000 + b"\x90")

    return st.just(seed).flatmap(
        lambda s: _damaged_tree(msgpack.unpackb(s, raw=False), msgpack_values).map(encode)
    )


def damaged_json(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` (JSON) with one node replaced or removed, re-encoded canonically (so the
    damage is the only change); NaN, Infinity and 2,000-deep nesting included."""

    def encode(tree: Any) -> bytes:
        text = json.dumps(tree, sort_keys=True, separators=(",", ":")).encode()
        return text.replace(json.dumps(_DEEP).encode(), b"[" * 2000 + b"]" * 2000)

    return st.just(seed).flatmap(lambda s: _damaged_tree(json.loads(s), json_values).map(encode))


def damaged(seed: bytes, kind: str) -> st.SearchStrategy[bytes]:
    """Byte-level or structural damage to ``seed`` (``kind``: msgpack, json or binary)."""
    structural = {"msgpack": damaged_msgpack, "json": damaged_json}.get(kind)
    if structural is None:
        return damaged_bytes(seed)
    return damaged_bytes(seed) | structural(seed)


def refuse_or_parse(
    parse: Callable[[S], T], data: S, errors: tuple[type[BaseException], ...]
) -> T | None:
    """``parse(data)``, or ``None`` if it raised one of the documented ``errors``; any other
    exception escapes and fails the test (and Hypothesis shrinks the input)."""
    try:
        return parse(data)
    except errors:
        return None
