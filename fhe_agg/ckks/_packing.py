"""Flatten model parameters into one float64 vector with a layout, chunk it, and restore it.

A :class:`Layout` records every tensor's name, shape, dtype and offset; its SHA3-256 hash is
signed with each update so that every party agrees on what the numbers mean. Floating-point
tensors are encrypted and averaged. Integer and boolean tensors (BatchNorm's
``num_batches_tracked``) are never averaged as floats: they are left out of the encrypted vector
and :func:`unflatten` takes them from a local ``template`` (policy ``"keep-local"``), or
:func:`flatten` refuses them (policy ``"reject"``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import msgpack
import numpy as np
from numpy.typing import NDArray

from fhe_agg.errors import InvalidInput, MalformedMessage
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["IntegerPolicy", "Layout", "LayoutEntry", "chunk", "flatten", "unflatten"]

IntegerPolicy = Literal["keep-local", "reject"]

_FLOAT_KINDS = ("f",)
_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class LayoutEntry:
    """One tensor: where it sits in the flat vector (``offset``) unless it is kept local."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int
    encrypted: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """The structure of a model's parameters and the length of its encrypted vector."""

    entries: tuple[LayoutEntry, ...]

    @property
    def length(self) -> int:
        """Number of reals that are encrypted."""
        return sum(e.size for e in self.entries if e.encrypted)

    def _canonical(self) -> list[list[object]]:
        """Every entry as ``[name, shape, dtype, offset, encrypted]``: hashed and sent as is."""
        return [[e.name, list(e.shape), e.dtype, e.offset, e.encrypted] for e in self.entries]

    @property
    def digest(self) -> bytes:
        """SHA3-256 over a canonical encoding of every entry; signed with each update."""
        return hashlib.sha3_256(b"fhe_agg/layout|" + msgpack.packb(self._canonical())).digest()

    def to_bytes(self) -> bytes:
        """Versioned msgpack envelope of the canonical entries (what :attr:`digest` hashes)."""
        return pack("layout", {"entries": self._canonical()})

    @classmethod
    def from_bytes(cls, data: bytes) -> Layout:
        """Inverse of :meth:`to_bytes` for at most 100,000 tensors of at most 32 dimensions;
        raises :class:`~fhe_agg.MalformedMessage` / :class:`~fhe_agg.MessageTooLarge`."""
        f = unpack(data, "layout", max_bytes=_MAX_ENTRIES * 512, max_bin=0, max_array=_MAX_ENTRIES)
        f.expect_keys("entries")
        return cls(tuple(_entry_from_wire(raw) for raw in f.items("entries", max_len=_MAX_ENTRIES)))

    def chunk_count(self, reals_per_chunk: int) -> int:
        """Ciphertexts needed for the encrypted vector (at least one)."""
        return max(1, -(-self.length // reals_per_chunk))

    @classmethod
    def for_vector(cls, length: int) -> Layout:
        """The layout of a single flat float64 vector of ``length`` reals."""
        return cls((LayoutEntry("vector", (length,), "float64", 0, True),))


def _entry_from_wire(raw: object) -> LayoutEntry:
    if not isinstance(raw, list) or len(raw) != 5:
        raise MalformedMessage("layout.entries: expected [name, shape, dtype, offset, encrypted]")
    name, shape, dtype, offset, encrypted = raw
    if (
        not isinstance(name, str)
        or not isinstance(dtype, str)
        or not isinstance(shape, list)
        or len(shape) > 32
        or not all(type(d) is int and 0 <= d < 2**40 for d in shape)
        or type(offset) is not int
        or not 0 <= offset < 2**40
        or not isinstance(encrypted, bool)
    ):
        raise MalformedMessage(f"layout.entries: malformed entry {name!r:.40}")
    return LayoutEntry(name, tuple(shape), dtype, offset, encrypted)


def _as_numpy(value: object, name: str) -> NDArray[np.generic]:
    if hasattr(value, "detach"):  # a torch tensor; imported lazily by fhe_agg.torch
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    if isinstance(value, np.ndarray | np.generic | int | float):
        return np.asarray(value)
    raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")


def flatten(
    params: Sequence[object] | Mapping[str, object],
    *,
    integer_policy: IntegerPolicy = "keep-local",
) -> tuple[NDArray[np.float64], Layout]:
    """Concatenate floating-point tensors into one float64 vector and describe the layout.

    ``params`` is a list of arrays (named ``"0"``, ``"1"``, ...) or a mapping such as a torch
    ``state_dict``. Raises :class:`InvalidInput` for NaN/Inf values and, under ``"reject"``,
    for non-float tensors.
    """
    if integer_policy not in ("keep-local", "reject"):
        raise ValueError(
            f"integer_policy: expected 'keep-local' or 'reject', got {integer_policy!r}"
        )
    items = (
        list(params.items())
        if isinstance(params, Mapping)
        else [(str(i), v) for i, v in enumerate(params)]
    )
    if len(items) > _MAX_ENTRIES:
        raise InvalidInput(f"params: {len(items)} tensors exceeds {_MAX_ENTRIES}")
    entries: list[LayoutEntry] = []
    parts: list[NDArray[np.float64]] = []
    offset = 0
    for name, value in items:
        array = _as_numpy(value, f"params[{name!r}]")
        is_float = array.dtype.kind in _FLOAT_KINDS
        if not is_float and integer_policy == "reject":
            raise InvalidInput(
                f"params[{name!r}]: dtype {array.dtype} is not floating point; pass "
                "integer_policy='keep-local' to keep it out of the average"
            )
        entries.append(
            LayoutEntry(str(name), tuple(array.shape), str(array.dtype), offset, is_float)
        )
        if is_float:
            flat = array.astype(np.float64).ravel()
            if not np.all(np.isfinite(flat)):
                raise InvalidInput(f"params[{name!r}]: contains NaN or Inf")
            parts.append(flat)
            offset += flat.size
    vector = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)
    return vector, Layout(tuple(entries))


def unflatten(
    vector: NDArray[np.float64],
    layout: Layout,
    *,
    template: Mapping[str, object] | Sequence[object] | None = None,
) -> dict[str, NDArray[np.generic]]:
    """Rebuild ``{name: array}`` with the original shapes and dtypes.

    Tensors kept local are copied from ``template`` (same names as given to :func:`flatten`);
    without one they raise :class:`InvalidInput`.
    """
    if vector.shape != (layout.length,):
        raise InvalidInput(f"vector: shape {vector.shape}, layout expects ({layout.length},)")
    local: Mapping[str, object] = {}
    if template is not None:
        local = (
            template
            if isinstance(template, Mapping)
            else {str(i): v for i, v in enumerate(template)}
        )
    out: dict[str, NDArray[np.generic]] = {}
    for e in layout.entries:
        if e.encrypted:
            out[e.name] = vector[e.offset : e.offset + e.size].astype(e.dtype).reshape(e.shape)
        elif e.name in local:
            out[e.name] = _as_numpy(local[e.name], e.name).astype(e.dtype).reshape(e.shape).copy()
        else:
            raise InvalidInput(
                f"{e.name}: tensor of dtype {e.dtype} was kept local; pass a template"
            )
    return out


def chunk(vector: NDArray[np.float64], reals_per_chunk: int) -> list[NDArray[np.float64]]:
    """Split into chunks of exactly ``reals_per_chunk`` reals, zero-padding the last one."""
    count = max(1, -(-vector.size // reals_per_chunk))
    padded = np.zeros(count * reals_per_chunk, dtype=np.float64)
    padded[: vector.size] = vector
    return list(padded.reshape(count, reals_per_chunk))
