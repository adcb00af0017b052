"""The compact wire format of data-level ciphertexts: coefficients bit-packed to their prime's size.

SEAL serializes every coefficient as a 64-bit word (its zstd pass gains nothing on uniform
residues), so a 60-bit prime wastes 4 bits per coefficient and a 30-bit prime 34. Here each
residue modulo ``q_i`` takes exactly ``q_i.bit_length()`` bits:

    b"FAC1" | u8 polys (2) | u8 primes (L) | u32 N | 4 x u64 parms_id | f64 scale | rows

Row ``(poly, i)`` holds ``N`` residues in groups of 64, each group packed little-endian into
``width_i`` 64-bit words (the same bits as one little-endian bit stream of the row). Parsing is strict and bounded: the exact length is known from the
preset before anything is allocated, and every residue must be reduced modulo its prime.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from fhe_agg._errors import MalformedMessage, MessageTooLarge, ParameterMismatch
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import (
    ParmsId,
    RawCiphertext,
    check_not_transparent,
    check_scale,
)

__all__ = [
    "pack_ciphertext",
    "pack_residues",
    "packed_size",
    "residues_size",
    "unpack_ciphertext",
    "unpack_residues",
]

_MAGIC = b"FAC1"
_HEADER = struct.Struct("<4sBBI4Qd")
_POLYS = 2
_GROUP = 64


def packed_size(n: int, primes: tuple[int, ...]) -> int:
    """Exact byte size of a packed size-2 ciphertext for ring degree ``n`` and ``primes``."""
    return _HEADER.size + residues_size(_POLYS, n, primes)


def _record(width: int) -> tuple[int, int, int]:
    """Residues per byte-aligned record, its bytes, and the 64-bit words that hold it.

    ``r = 8 / gcd(width, 8)`` residues fill whole bytes, so a group of 64 residues is 64/r
    records laid end to end and each record can be (un)packed on its own: ``r`` vectorized
    steps over all records instead of 64 over all groups.
    """
    per = 8 // math.gcd(width, 8)
    size = per * width // 8
    return per, size, -(-size // 8)


def _pack_rows(rows: U64, width: int) -> bytes:
    count, n = rows.shape
    kernels = _accel.kernels(rows.size)
    if kernels is not None and n % _GROUP == 0:
        stream = np.zeros(count * n * width // 64, dtype=np.uint64)
        kernels.pack_bits(np.ascontiguousarray(rows, dtype=np.uint64).ravel(), width, stream)
        return stream.tobytes()
    per, size, words = _record(width)
    records = rows.reshape(count, n // per, per)
    out = np.zeros((count, n // per, words), dtype="<u8")
    for j in range(per):
        word, shift = divmod(j * width, 64)
        value = records[:, :, j]
        out[:, :, word] |= value << np.uint64(shift)
        if shift + width > 64:
            out[:, :, word + 1] |= value >> np.uint64(64 - shift)
    return out.view(np.uint8)[:, :, :size].tobytes()


def _unpack_rows(
    buffer: bytes | memoryview, count: int, n: int, width: int, out: U64 | None = None
) -> U64:
    """``count`` rows of ``n`` values of ``width`` bits; into ``out`` (``(count, n)``, each row
    contiguous, e.g. ``data[:, i, :]``) when given. The compiled kernel reads the wire bytes in
    place, aligned or not (no copy)."""
    kernels = _accel.kernels(count * n)
    if kernels is not None and n % _GROUP == 0:
        if len(buffer) != count * n * width // 8:
            raise ValueError(f"buffer: {len(buffer)} bytes for {count} x {n} x {width} bits")
        stream = np.frombuffer(buffer, dtype=np.uint64, count=count * n * width // 64)
        values = np.empty((count, n), dtype=np.uint64) if out is None else out
        if values.flags.c_contiguous:
            kernels.unpack_bits(stream, width, values.reshape(-1))
            return values
        row_words = n * width // 64
        for r in range(count):
            kernels.unpack_bits(stream[r * row_words : (r + 1) * row_words], width, values[r])
        return values
    unpacked = _unpack_rows_numpy(buffer, count, n, width)
    if out is None:
        return unpacked
    out[...] = unpacked
    return out


def _unpack_rows_numpy(buffer: bytes | memoryview, count: int, n: int, width: int) -> U64:
    per, size, words = _record(width)
    padded = np.zeros((count, n // per, 8 * words), dtype=np.uint8)
    padded[:, :, :size] = np.frombuffer(buffer, dtype=np.uint8).reshape(count, n // per, size)
    packed = padded.view("<u8")
    out = np.empty((count, n // per, per), dtype=np.uint64)
    mask = np.uint64((1 << width) - 1)
    for j in range(per):
        word, shift = divmod(j * width, 64)
        value = packed[:, :, word] >> np.uint64(shift)
        if shift + width > 64:
            value |= packed[:, :, word + 1] << np.uint64(64 - shift)
        out[:, :, j] = value & mask
    return out.reshape(count, n)


def pack_ciphertext(raw: RawCiphertext, primes: tuple[int, ...]) -> bytes:
    """Encode a size-2 ciphertext ``raw.data[poly, prime, coefficient]`` (reduced, NTT form)."""
    polys, count, n = raw.data.shape
    if polys != _POLYS or count != len(primes) or n % _GROUP:
        raise ValueError(f"raw: expected shape (2, {len(primes)}, N), got {raw.data.shape}")
    header = _HEADER.pack(_MAGIC, polys, count, n, *raw.parms_id, raw.scale)
    return header + pack_residues(raw.data, primes)


def unpack_ciphertext(
    blob: bytes,
    *,
    n: int,
    primes: tuple[int, ...],
    parms_id: ParmsId,
    max_bytes: int | None = None,
    what: str = "ciphertext",
    out: U64 | None = None,
) -> RawCiphertext:
    """Strictly decode :func:`pack_ciphertext` output for ring ``n`` and ``primes`` (into
    ``out``, shape ``(2, L, N)``, when given: e.g. a slice of a whole update's array).

    :class:`MessageTooLarge` beyond ``max_bytes``; :class:`MalformedMessage` for a wrong length or
    magic, a scale that is not a finite number >= 1, an unreduced residue or a transparent
    ciphertext (``c1 = 0``); :class:`ParameterMismatch` for another ring, prime count or
    ``parms_id``.
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise MalformedMessage(f"{what}: expected bytes, got {type(blob).__name__}")
    if max_bytes is not None and len(blob) > max_bytes:
        raise MessageTooLarge(f"{what}: {len(blob)} bytes exceeds the bound of {max_bytes}")
    if len(blob) < _HEADER.size:
        raise MalformedMessage(f"{what}: truncated ({len(blob)} bytes)")
    magic, polys, count, ring, *pid, scale = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise MalformedMessage(f"{what}: not a packed ciphertext (bad magic)")
    if polys != _POLYS or ring != n or count != len(primes):
        raise ParameterMismatch(
            f"{what}: {polys} polynomials of degree {ring} over {count} primes, expected "
            f"{_POLYS} of degree {n} over {len(primes)}"
        )
    if tuple(pid) != parms_id:
        raise ParameterMismatch(f"{what}: parms_id differs from the expected parameter level")
    if len(blob) != packed_size(n, primes):
        raise MalformedMessage(f"{what}: {len(blob)} bytes, expected {packed_size(n, primes)}")
    check_scale(scale, what)
    body = memoryview(blob)[_HEADER.size :]
    data = unpack_residues(body, rows=_POLYS, n=n, primes=primes, what=what, out=out)
    check_not_transparent(data, what)
    return RawCiphertext(parms_id, float(scale), data)


def residues_size(rows: int, n: int, primes: tuple[int, ...]) -> int:
    """Byte size of :func:`pack_residues` output for ``rows`` polynomials over ``primes``."""
    return rows * sum(n * q.bit_length() // 8 for q in primes)


def pack_residues(data: U64, primes: tuple[int, ...]) -> bytes:
    """Bit-pack reduced residues ``data[row, prime, coefficient]`` to each prime's width."""
    _, count, n = data.shape
    if count != len(primes) or n % _GROUP:
        raise ValueError(f"data: expected shape (rows, {len(primes)}, N), got {data.shape}")
    return b"".join(
        _pack_rows(np.ascontiguousarray(data[:, i, :]), q.bit_length())
        for i, q in enumerate(primes)
    )


def unpack_residues(
    blob: bytes | memoryview,
    *,
    rows: int,
    n: int,
    primes: tuple[int, ...],
    what: str = "residues",
    out: U64 | None = None,
) -> U64:
    """Strictly decode :func:`pack_residues` output: exact length, every residue reduced
    (:class:`MalformedMessage` otherwise); into ``out`` (``(rows, L, n)`` uint64, each row
    contiguous) when given, which then holds garbage after a refusal."""
    expected = residues_size(rows, n, primes)
    if len(blob) != expected:
        raise MalformedMessage(f"{what}: {len(blob)} bytes, expected {expected}")
    shape = (rows, len(primes), n)
    if out is None:
        out = np.empty(shape, dtype=np.uint64)
    elif out.shape != shape or out.dtype != np.uint64 or out.strides[-1] != 8:
        raise ValueError(f"out: expected a uint64 array of shape {shape} with contiguous rows")
    data = out
    offset = 0
    view = memoryview(blob)
    for i, q in enumerate(primes):
        size = rows * n * q.bit_length() // 8
        values = _unpack_rows(view[offset : offset + size], rows, n, q.bit_length(), data[:, i, :])
        if rows and int(values.max()) >= q:
            raise MalformedMessage(f"{what}: prime {i} holds a residue not reduced mod {q}")
        offset += size
    return data
