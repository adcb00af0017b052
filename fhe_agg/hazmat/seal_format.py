"""Parse and build SEAL 4.x serializations of CKKS ciphertexts, plaintexts and public keys.

Layout (SEAL ``serialization.h``, ``ciphertext.cpp``, ``plaintext.cpp``, ``dynarray.h``): a 16-byte
header (magic ``0xA15E``, header size, version major/minor, compression mode, reserved, total
size), then the object's members, zstd-compressed as a whole when the mode says so. A ciphertext's
members are parms_id (4 x u64), is_ntt_form (u8), size, N, coeff_modulus_size (u64 each), scale
(f64), correction factor (u64), then a DynArray (its own uncompressed header, a u64 count, and the
u64 coefficients as ``[poly][prime][coefficient]``). A plaintext is parms_id, coeff_count, scale,
then the DynArray. A public key is serialized exactly like a size-2 ciphertext.

Parsing is strict and bounded: every size is checked against what the caller expects before any
allocation, and every coefficient must be reduced modulo its prime.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import zstandard

from fhe_agg.errors import MalformedMessage, MessageTooLarge, ParameterMismatch
from fhe_agg.hazmat.rns import U64

__all__ = [
    "ParmsId",
    "RawCiphertext",
    "build_ciphertext",
    "build_plaintext",
    "check_not_transparent",
    "check_scale",
    "ciphertext_wire_bound",
    "parse_ciphertext",
]

ParmsId = tuple[int, int, int, int]

_MAGIC = 0xA15E
_VERSION = (4, 3)
_COMPR_NONE, _COMPR_ZSTD = 0, 2
_HEADER = struct.Struct("<HBBBBHQ")
_CT_META = struct.Struct("<4QB3QdQ")
_PT_META = struct.Struct("<4QQd")
_COUNT = struct.Struct("<Q")


@dataclass(frozen=True, eq=False)
class RawCiphertext:
    """A CKKS ciphertext as arrays: ``data[poly, prime, coefficient]`` in NTT form."""

    parms_id: ParmsId
    scale: float
    data: U64


def ciphertext_wire_bound(n: int, n_primes: int, size: int = 2) -> int:
    """Largest byte length a serialized ciphertext of this shape may have (zstd can expand a bit)."""
    raw = _HEADER.size + _CT_META.size + _HEADER.size + _COUNT.size + 8 * size * n_primes * n
    return raw + raw // 64 + 1024


def _header(total: int, compressed: bool) -> bytes:
    mode = _COMPR_ZSTD if compressed else _COMPR_NONE
    return _HEADER.pack(_MAGIC, _HEADER.size, *_VERSION, mode, 0, total)


def _dynarray(values: U64) -> bytes:
    body = _COUNT.pack(values.size) + values.astype("<u8", copy=False).tobytes()
    return (
        _HEADER.pack(_MAGIC, _HEADER.size, *_VERSION, _COMPR_NONE, 0, _HEADER.size + len(body))
        + body
    )


def _wrap(members: bytes, compress: bool) -> bytes:
    if compress:
        members = zstandard.ZstdCompressor(level=1).compress(members)
    return _header(_HEADER.size + len(members), compress) + members


def build_ciphertext(ct: RawCiphertext, *, compress: bool = False) -> bytes:
    """Serialize ``ct`` the way ``seal::Ciphertext::save`` does (loadable by SEAL)."""
    size, n_primes, n = ct.data.shape
    meta = _CT_META.pack(*ct.parms_id, 1, size, n, n_primes, ct.scale, 1)
    return _wrap(meta + _dynarray(ct.data.reshape(-1)), compress)


def build_plaintext(parms_id: ParmsId, scale: float, data: U64, *, compress: bool = False) -> bytes:
    """Serialize an NTT-form CKKS plaintext (``data[prime, coefficient]``) for ``Plaintext.load``."""
    meta = _PT_META.pack(*parms_id, data.size, scale)
    return _wrap(meta + _dynarray(data.reshape(-1)), compress)


def _unwrap(blob: bytes, expected_body: int, max_bytes: int, what: str) -> bytes:
    if len(blob) > max_bytes:
        raise MessageTooLarge(f"{what}: {len(blob)} bytes exceeds the bound of {max_bytes}")
    if len(blob) < _HEADER.size:
        raise MalformedMessage(f"{what}: {len(blob)} bytes is shorter than a SEAL header")
    magic, hsize, major, minor, mode, reserved, total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or hsize != _HEADER.size or reserved != 0:
        raise MalformedMessage(f"{what}: not a SEAL serialization (bad magic or header)")
    if (major, minor) != _VERSION:
        raise MalformedMessage(
            f"{what}: SEAL format {major}.{minor}, expected {_VERSION[0]}.{_VERSION[1]}"
        )
    if total != len(blob):
        raise MalformedMessage(
            f"{what}: header says {total} bytes but {len(blob)} arrived (truncated?)"
        )
    body = blob[_HEADER.size :]
    if mode == _COMPR_ZSTD:
        try:
            # decompress() allocates the size a frame header declares, whatever
            # max_output_size says: check it first (-1 means not declared, then bounded).
            declared = zstandard.frame_content_size(body)
            if declared > expected_body:
                raise MalformedMessage(
                    f"{what}: zstd frame declares {declared} bytes, expected {expected_body}"
                )
            body = zstandard.ZstdDecompressor().decompress(
                body, max_output_size=expected_body, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise MalformedMessage(f"{what}: corrupt zstd payload ({exc})") from None
    elif mode != _COMPR_NONE:
        raise MalformedMessage(f"{what}: unsupported compression mode {mode}")
    if len(body) != expected_body:
        raise MalformedMessage(f"{what}: body is {len(body)} bytes, expected {expected_body}")
    return body


def _parse_dynarray(body: bytes, offset: int, count: int, what: str) -> U64:
    magic, hsize, major, minor, mode, reserved, total = _HEADER.unpack_from(body, offset)
    if (magic, hsize, (major, minor), mode, reserved) != (_MAGIC, _HEADER.size, _VERSION, 0, 0):
        raise MalformedMessage(f"{what}: bad coefficient array header")
    (found,) = _COUNT.unpack_from(body, offset + _HEADER.size)
    if found != count or total != _HEADER.size + _COUNT.size + 8 * count:
        raise MalformedMessage(f"{what}: coefficient count {found}, expected {count}")
    start = offset + _HEADER.size + _COUNT.size
    return np.frombuffer(body, dtype="<u8", count=count, offset=start).astype(np.uint64)


def _check_reduced(data: U64, primes: tuple[int, ...], what: str) -> None:
    bounds = np.array(primes, dtype=np.uint64)[:, None]
    if np.any(data >= bounds):
        raise MalformedMessage(f"{what}: coefficient not reduced modulo its prime")


def check_scale(scale: float, what: str) -> None:
    """A ciphertext's scale must be a finite number >= 1 (:class:`MalformedMessage`)."""
    if not (math.isfinite(scale) and scale >= 1.0):
        raise MalformedMessage(f"{what}: scale {scale!r} is not a finite number >= 1")


def check_not_transparent(data: U64, what: str) -> None:
    """``c1 = 0`` would be a plaintext in disguise (:class:`MalformedMessage`)."""
    if not np.any(data[1]):
        raise MalformedMessage(f"{what}: transparent ciphertext (c1 = 0) is not an encryption")


def parse_ciphertext(
    blob: bytes,
    *,
    n: int,
    primes: tuple[int, ...],
    parms_id: ParmsId,
    max_bytes: int | None = None,
    what: str = "ciphertext",
) -> RawCiphertext:
    """Parse a size-2 NTT-form CKKS ciphertext serialized by SEAL (or :func:`build_ciphertext`).

    Raises :class:`MessageTooLarge`, :class:`MalformedMessage` for bytes that are not such a
    ciphertext, and :class:`ParameterMismatch` for a valid ciphertext under other parameters.
    """
    n_primes = len(primes)
    count = 2 * n_primes * n
    expected = _CT_META.size + _HEADER.size + _COUNT.size + 8 * count
    bound = ciphertext_wire_bound(n, n_primes) if max_bytes is None else max_bytes
    body = _unwrap(blob, expected, bound, what)
    *pid, ntt, size, degree, cms, scale, correction = _CT_META.unpack_from(body)
    if tuple(pid) != parms_id:
        raise ParameterMismatch(f"{what}: parms_id differs from the expected parameter level")
    if (ntt, size, degree, cms, correction) != (1, 2, n, n_primes, 1):
        raise MalformedMessage(
            f"{what}: expected an NTT-form ciphertext of size 2, N={n}, {n_primes} primes; got "
            f"ntt={ntt}, size={size}, N={degree}, primes={cms}"
        )
    check_scale(scale, what)
    data = _parse_dynarray(body, _CT_META.size, count, what).reshape(2, n_primes, n)
    _check_reduced(data.reshape(2 * n_primes, n), primes * 2, what)
    check_not_transparent(data, what)
    return RawCiphertext(parms_id=parms_id, scale=scale, data=data)
