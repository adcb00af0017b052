"""Versioned msgpack envelopes with bounded, validating decoding.

Every message is ``{"v": 1, "kind": <str>, "body": <map>}``. Decoding checks the total size
first, gives msgpack hard limits for every container, then validates each field's type and
range. Anything else raises :class:`MalformedMessage` (or :class:`MessageTooLarge`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgpack

from fhe_agg.errors import MalformedMessage, MessageTooLarge

__all__ = ["WIRE_VERSION", "Fields", "pack", "unpack"]

WIRE_VERSION = 1


def pack(kind: str, body: Mapping[str, Any]) -> bytes:
    """Encode ``body`` in a versioned envelope."""
    packed: bytes = msgpack.packb(
        {"v": WIRE_VERSION, "kind": kind, "body": dict(body)}, use_bin_type=True
    )
    return packed


def unpack(
    data: bytes,
    kind: str,
    *,
    max_bytes: int,
    max_bin: int,
    max_array: int,
) -> Fields:
    """Decode an envelope of ``kind`` within the given bounds; return its body as :class:`Fields`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage(f"{kind}: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MessageTooLarge(f"{kind}: {len(data)} bytes exceeds the bound of {max_bytes}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=max_bin,
            max_str_len=4096,
            max_array_len=max_array,
            max_map_len=64,
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise MalformedMessage(
            f"{kind}: not a valid msgpack message ({type(exc).__name__})"
        ) from None
    if not isinstance(obj, dict) or set(obj) != {"v", "kind", "body"}:
        raise MalformedMessage(f"{kind}: not a fhe_agg envelope")
    if obj["v"] != WIRE_VERSION:
        raise MalformedMessage(f"{kind}: wire version {_show(obj['v'])}, expected {WIRE_VERSION}")
    if obj["kind"] != kind:
        raise MalformedMessage(f"expected a {kind} message, got {_show(obj['kind'])}")
    if not isinstance(obj["body"], dict):
        raise MalformedMessage(f"{kind}: body is not a map")
    return Fields(kind, obj["body"])


def _show(value: object) -> str:
    """A peer's value for an error message: short, and never the repr of a nested container
    (a deeply nested one would exhaust the recursion limit)."""
    if isinstance(value, int | float | str | bool) or value is None:
        return repr(value)[:64]
    return f"a {type(value).__name__}"


class Fields:
    """Typed accessors over a decoded body; each raises :class:`MalformedMessage` on a bad field."""

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        self.kind, self.body = kind, body

    def expect_keys(self, *keys: str) -> None:
        if set(self.body) != set(keys):
            raise MalformedMessage(
                f"{self.kind}: fields {sorted(self.body, key=repr)}, expected {sorted(keys)}"
            )

    def _bad(self, key: str, why: str) -> MalformedMessage:
        return MalformedMessage(f"{self.kind}.{key}: {why}")

    def integer(self, key: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
        value = self.body.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self._bad(key, f"expected an integer in {lo}..{hi}")
        return value

    def number(self, key: str) -> float:
        value = self.body.get(key)
        if not isinstance(value, float) or not math.isfinite(value):
            raise self._bad(key, "expected a finite float")
        return value

    def blob(self, key: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
        value = self.body.get(key)
        if not isinstance(value, bytes):
            raise self._bad(key, "expected bytes")
        if size is not None and len(value) != size:
            raise self._bad(key, f"expected {size} bytes, got {len(value)}")
        if max_size is not None and len(value) > max_size:
            raise self._bad(key, f"{len(value)} bytes exceeds {max_size}")
        return value

    def text(self, key: str, *, max_len: int = 128) -> str:
        value = self.body.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
            raise self._bad(key, f"expected a printable string of 1..{max_len} characters")
        return value

    def items(self, key: str, *, max_len: int) -> list[Any]:
        value = self.body.get(key)
        if not isinstance(value, list) or len(value) > max_len:
            raise self._bad(key, f"expected a list of at most {max_len} items")
        return value

    def blobs(self, key: str, *, max_items: int) -> list[bytes]:
        """A list of at most ``max_items`` byte strings (their size is bounded by ``unpack``)."""
        value = self.items(key, max_len=max_items)
        if not all(isinstance(b, bytes) for b in value):
            raise self._bad(key, "every item must be bytes")
        return value
