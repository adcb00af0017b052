"""Canonical JSON, strict JSON parsing, base64 fields and size-bounded file reads.

Signed documents (public identities, rosters, audit-log lines) are signed over
:func:`canonical_json`: sorted keys, no whitespace, ASCII only, no NaN. :func:`strict_json` refuses
duplicate keys, non-finite numbers and deep nesting, so a parsed document has exactly one meaning
and re-encodes to the signed bytes without error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "MAX_JSON_DEPTH",
    "b64decode",
    "b64encode",
    "canonical_json",
    "check_json_depth",
    "choice",
    "read_bounded",
    "strict_json",
]

_E = TypeVar("_E", bound=Enum)


def choice(kind: type[_E], name: object, label: str) -> _E:
    """The member of ``kind`` whose value is ``name`` (or ``name`` itself if already one);
    ``ValueError`` naming ``label`` and the known values otherwise."""
    if isinstance(name, kind):
        return name
    try:
        return kind(name)
    except ValueError:
        known = ", ".join(str(m.value) for m in kind)
        raise ValueError(f"{label}: unknown {name!r}; choose one of {known}") from None


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The one byte string a signer and a verifier agree on for ``obj``."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


#: Deepest nesting :func:`strict_json` accepts; fhe_agg's own documents nest at most 6 deep.
MAX_JSON_DEPTH = 32


def check_json_depth(doc: Any) -> None:
    """``ValueError`` if ``doc`` nests lists and objects deeper than :data:`MAX_JSON_DEPTH`."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))


def strict_json(data: bytes) -> Any:
    """Parse UTF-8 JSON; ``ValueError`` for invalid JSON, duplicate keys, NaN, Infinity, a
    number beyond the float range, or nesting deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        doc = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite,
        )
    except RecursionError:  # the C scanner's own limit, far beyond MAX_JSON_DEPTH
        raise ValueError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    if isinstance(doc, dict | list):
        check_json_depth(doc)
    return doc


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4)."""
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: object) -> bytes:
    """Decode strict base64; ``ValueError`` for anything else (including non-strings)."""
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("invalid base64") from None


def read_bounded(path: Path, limit: int, what: str, error: type[Exception] = ValueError) -> bytes:
    """The bytes of ``path``, reading at most ``limit + 1``; ``error`` naming ``what`` and the
    file if it holds more than ``limit``."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit} bytes")
    return data
