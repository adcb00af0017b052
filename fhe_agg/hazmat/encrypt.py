"""Public-key CKKS encryption at the data level ``Q``, keeping the witness for the proof.

SEAL encrypts at the key level ``QP`` and divides by the special prime, which leaves
``c1 = a*u + r`` with ``r`` as large as ``P/2``: no short witness exists for the relation a
well-formedness proof needs. Here the client encrypts at the data level itself, with the same
kernels SEAL's arrays are bit-compatible with (:mod:`fhe_agg.hazmat.ntt`)::

    c0 = pk0*u + e0 + m,    c1 = a*u + e1    (mod every data prime, NTT form)

with ``u`` ternary and ``e0, e1`` rounded Gaussians (``sigma = 3.2``, cut at 6 sigma), exactly as
SEAL samples them (``seal/util/rlwe.cpp``, ``encrypt_zero_asymmetric``). ``(pk0, a)`` is the joint
public key ``(-(a*s + e), a)`` restricted to the data primes. Decryption ``c0 + c1*s`` gives
``m - u*e + e0 + e1*s``: the ``special_prime=False`` noise of
:func:`fhe_agg.ckks._flooding.ciphertext_noise_bound`. The plaintext ``m`` comes from SEAL's CKKS
encoder (:func:`encode_plaintext`), so decoding is unchanged.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import tenseal.sealapi as sealapi
from numpy.typing import NDArray

from fhe_agg.ckks._flooding import KEY_ERROR_SIGMA
from fhe_agg.ckks._random import RandomSource
from fhe_agg.errors import MalformedMessage
from fhe_agg.hazmat.rlwe import FixedOperand, encrypt_ntt
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.sampling import KEY_ERROR_TAIL, rounded_gaussian, ternary
from fhe_agg.hazmat.seal_format import (
    _COUNT,
    _HEADER,
    _PT_META,
    ParmsId,
    _check_reduced,
    _parse_dynarray,
    _unwrap,
    parse_ciphertext,
)

if TYPE_CHECKING:
    from fhe_agg.ckks._keys import PublicKey
    from fhe_agg.ckks._seal import SealBackend

__all__ = [
    "ENCRYPTION_ERROR_SIGMA",
    "ChunkWitness",
    "encode_plaintext",
    "encrypt_chunk",
    "encrypt_with_witness",
    "fixed_operand",
    "parse_plaintext",
    "public_key_data_level",
    "sample_randomness",
]

#: Standard deviation of the fresh errors ``e0, e1`` (SEAL's, cut at 6 sigma like SEAL's sampler).
ENCRYPTION_ERROR_SIGMA = KEY_ERROR_SIGMA
#: Largest ``|e1|`` coefficient an honest encryption produces: ``round(6 * 3.2) = 19``.
ENCRYPTION_ERROR_MAX = 19


@dataclass(frozen=True, eq=False, repr=False)
class ChunkWitness:
    """The secret randomness of one chunk's ``c1 = a*u + e1``: never printed, never serialised."""

    u: NDArray[np.int64]
    e1: NDArray[np.int64]

    def __repr__(self) -> str:
        return "ChunkWitness(<secret>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("ChunkWitness cannot be pickled: it opens the chunk's ciphertext")

    def wipe(self) -> None:
        """Overwrite the witness in place (call once its proof is made)."""
        self.u.fill(0)
        self.e1.fill(0)


_OPERANDS: dict[bytes, FixedOperand] = {}
_OPERAND_CACHE = 8
_OPERANDS_LOCK = threading.Lock()


def fixed_operand(value: U64, primes: tuple[int, ...]) -> FixedOperand:
    """``value`` with its Shoup quotients, cached by content: public-key polynomials multiply
    every chunk, and their quotients cost ~10 ms of Python integers each to compute."""
    key = hashlib.blake2b(
        repr(primes).encode() + np.ascontiguousarray(value, dtype=np.uint64).tobytes(),
        digest_size=32,
    ).digest()
    with _OPERANDS_LOCK:
        operand = _OPERANDS.get(key)
    if operand is None:  # made outside the lock: two threads may both make it, equal values
        operand = FixedOperand.of(np.array(value, dtype=np.uint64), primes)
        with _OPERANDS_LOCK:  # pool threads verifying proofs share the cache
            if len(_OPERANDS) >= _OPERAND_CACHE and key not in _OPERANDS:
                _OPERANDS.pop(next(iter(_OPERANDS)))
            operand = _OPERANDS.setdefault(key, operand)
    return operand


def sample_randomness(
    n: int, rng: RandomSource
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The encryption randomness ``u, e0, e1`` of one chunk, drawn from ``rng`` in this order
    (so a caller holding the same source can redraw a chunk's witness without the NTTs)."""
    u = ternary(n, rng)
    e0 = rounded_gaussian(n, ENCRYPTION_ERROR_SIGMA, rng, tail=KEY_ERROR_TAIL)
    e1 = rounded_gaussian(n, ENCRYPTION_ERROR_SIGMA, rng, tail=KEY_ERROR_TAIL)
    return u, e0, e1


def encrypt_chunk(
    plain_ntt: U64, pk0: FixedOperand, a: FixedOperand, primes: tuple[int, ...], rng: RandomSource
) -> tuple[U64, ChunkWitness]:
    """Encrypt the NTT-form plaintext ``plain_ntt[prime, coefficient]`` under ``(pk0, a)``
    (as :func:`fixed_operand` gives them: made once for every chunk under the same key).

    Returns the ciphertext ``(c0, c1)`` (shape ``(2, L, N)``, NTT form, reduced) and the witness
    ``(u, e1)`` with ``c1 = a*u + e1`` exactly modulo every prime of ``primes``.
    """
    count, n = plain_ntt.shape
    if count != len(primes) or any(
        k.value.ndim != 2 or k.value.shape[0] < count or k.value.shape[1] != n for k in (pk0, a)
    ):
        raise ValueError(
            f"plain_ntt/pk0/a: expected shape ({len(primes)}, N) each, got {plain_ntt.shape}, "
            f"{pk0.value.shape}, {a.value.shape}"
        )
    u, e0, e1 = sample_randomness(n, rng)
    ciphertext = encrypt_ntt(u, e0, e1, plain_ntt, pk0, a, primes)
    e0.fill(0)
    return ciphertext, ChunkWitness(u=u, e1=e1)


def encrypt_with_witness(
    plain_ntt: U64,
    pk0_ntt: U64,
    a_ntt: U64,
    primes: tuple[int, ...],
    rng: RandomSource,
) -> tuple[U64, U64, ChunkWitness]:
    """:func:`encrypt_chunk` under the arrays ``pk0_ntt``, ``a_ntt`` (shape ``(L, N)``):
    ``c0, c1`` (each ``(L, N)``) and the witness."""
    count, n = plain_ntt.shape
    if count != len(primes) or pk0_ntt.shape != (count, n) or a_ntt.shape != (count, n):
        raise ValueError(
            f"plain_ntt/pk0_ntt/a_ntt: expected shape ({len(primes)}, N) each, got "
            f"{plain_ntt.shape}, {pk0_ntt.shape}, {a_ntt.shape}"
        )
    ciphertext, witness = encrypt_chunk(
        plain_ntt, fixed_operand(pk0_ntt, primes), fixed_operand(a_ntt, primes), primes, rng
    )
    return ciphertext[0], ciphertext[1], witness


def public_key_data_level(public_key: PublicKey) -> tuple[U64, U64]:
    """``(pk0, a)`` of ``public_key`` restricted to the data primes (NTT form, shape ``(L, N)``).

    SEAL drops the special prime last, so the data level is the first ``L`` rows of the key
    level (:mod:`fhe_agg.hazmat.rlwe`).
    """
    from fhe_agg.ckks._seal import backend_for

    backend = backend_for(public_key.preset)
    raw = parse_ciphertext(
        public_key.blob,
        n=backend.n,
        primes=backend.key_primes,
        parms_id=backend.key_parms_id,
        what="public key",
    )
    count = len(backend.data_primes)
    return raw.data[0, :count].copy(), raw.data[1, :count].copy()


def encode_plaintext(backend: SealBackend, reals: NDArray[np.float64], scale: float) -> U64:
    """SEAL's CKKS encoding of ``N`` reals (two per complex slot) at the data level, as the
    NTT-form array ``[prime, coefficient]`` that :func:`encrypt_with_witness` takes."""
    if reals.shape != (backend.n,):
        raise ValueError(f"reals: expected shape ({backend.n},), got {reals.shape}")
    packed = reals[0::2] + 1j * reals[1::2]
    plain = sealapi.Plaintext()
    backend.encoder.encode(packed.tolist(), backend.data_parms_id, scale, plain)
    blob: Any = backend.save(plain)
    return parse_plaintext(
        blob, parms_id=backend.data_parms_id, n=backend.n, primes=backend.data_primes
    )


def parse_plaintext(blob: bytes, *, parms_id: ParmsId, n: int, primes: tuple[int, ...]) -> U64:
    """Strictly parse SEAL's serialization of an NTT-form plaintext at ``parms_id`` (layout in
    :mod:`fhe_agg.hazmat.seal_format`); :class:`MalformedMessage` for anything else."""
    count = len(primes) * n
    expected = _PT_META.size + _HEADER.size + _COUNT.size + 8 * count
    body = _unwrap(blob, expected, 2 * expected + 1024, "plaintext")
    *pid, coeff_count, _scale = _PT_META.unpack_from(body)
    if tuple(pid) != parms_id or coeff_count != count:
        raise MalformedMessage("plaintext: not an NTT-form plaintext at the data level")
    data = _parse_dynarray(body, _PT_META.size, count, "plaintext").reshape(len(primes), n)
    _check_reduced(data, primes, "plaintext")
    return data
