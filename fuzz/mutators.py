"""Structure-aware mutations for the msgpack and JSON targets.

Byte flips rarely turn a valid envelope or key file into another well-formed document with one
odd field, which is where typed validation is tested. Half of the time these mutators decode
the input, change one node of the tree (a value of another type or range, a deleted or extra
key, a splice from elsewhere in the tree, a deeply nested value) and encode it again; the other
half they leave the bytes to libFuzzer's own mutations.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import msgpack

_DEEP = "\x00deep\x00"
_COMMON: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    255,
    256,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    0.0,
    -0.0,
    1.0,
    0.5,
    1e308,
    -1e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "x",
    "\x00",
    "\u2028",
    "é" * 3,
    "x" * 200,
    "x" * 5000,
    [],
    {},
    [1, 2, 3],
    {"a": 1},
    _DEEP,
]
_MSGPACK_ONLY: list[Any] = [b"", b"\x00" * 31, b"\x00" * 32, b"\xff" * 33, 2**64 - 1]


def _nodes(tree: Any) -> list[tuple[Any, Any]]:
    """Every ``(container, key)`` in ``tree`` (iteratively; trees may be deep)."""
    out: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            out.append((node, key))
            if isinstance(value, dict | list) and len(out) < 10_000:
                stack.append(value)
    return out


def _mutate_tree(tree: Any, rng: random.Random, extra: list[Any]) -> Any:
    root = [tree]
    nodes = _nodes(root)
    container, key = rng.choice(nodes)
    value = container[key]
    choice = rng.randrange(6)
    if choice == 0 and container is not root:
        del container[key]  # a missing field or element
    elif choice == 1 and isinstance(value, dict):
        value[rng.choice(["x", "v", "kind", "body", "seq", "format"])] = rng.choice(_COMMON)
    elif choice == 2 and isinstance(value, int) and not isinstance(value, bool):
        container[key] = rng.choice(
            [value + 1, value - 1, -value, value ^ (1 << rng.randrange(64))]
        )
    elif choice == 3 and isinstance(value, str | bytes) and value:
        cut = rng.randrange(len(value))
        container[key] = rng.choice(
            [value[:cut], value + value[cut:], value[:cut] + value[cut + 1 :]]
        )
    elif choice == 4:
        container[key] = _copy_of(rng.choice(nodes))  # a splice from elsewhere
    else:
        container[key] = rng.choice(_COMMON + extra)
    return root[0]


def _copy_of(node: tuple[Any, Any]) -> Any:
    """A deep copy of the value at ``node``: splicing the node itself could put a container
    inside itself (a cycle the encoder refuses) or alias one subtree in two places."""
    container, key = node
    return copy.deepcopy(container[key])


def _deepen(text: bytes, marker: bytes, depth: int) -> bytes:
    return text.replace(marker, b"[" * depth + b"]" * depth)


def _structured(
    decode: Callable[[bytes], Any], encode: Callable[[Any], bytes], extra: list[Any]
) -> Callable[[bytes, int, int], bytes]:
    import atheris

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        try:
            tree = decode(data)
            out = encode(_mutate_tree(tree, rng, extra))
        except Exception:  # not a document: mutate the bytes instead
            return atheris.Mutate(data, max_size)
        return out[:max_size] if len(out) > max_size else out

    return mutate


def _json_encode(tree: Any) -> bytes:
    text = json.dumps(tree, sort_keys=True, separators=(",", ":")).encode()
    return _deepen(text, json.dumps(_DEEP).encode(), 3000)


def _json_lines_decode(data: bytes) -> Any:
    return [json.loads(line) for line in data.splitlines()]


def _json_lines_encode(lines: Any) -> bytes:
    if not isinstance(lines, list):
        lines = [lines]
    return b"".join(_json_encode(line) + b"\n" for line in lines)


def _msgpack_decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _msgpack_encode(tree: Any) -> bytes:
    text = msgpack.packb(tree, use_bin_type=True)
    return text.replace(msgpack.packb(_DEEP), b"\x91" * 3000 + b"\x90")


MSGPACK = _structured(_msgpack_decode, _msgpack_encode, _MSGPACK_ONLY)
JSON = _structured(json.loads, _json_encode, [])
JSON_LINES = _structured(_json_lines_decode, _json_lines_encode, [])
