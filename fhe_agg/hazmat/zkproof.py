"""Amortised zero-knowledge proof that every chunk's ``c1 = a*u + e1`` with short ``(u, e1)``.

Relation (per batch of ``V <= PROOF_BATCH`` chunks, modulo every data prime, NTT form): the prover
knows ``w_k = (u_k, e1_k)`` with ``c1_k = a*u_k + e1_k``. Protocol, made non-interactive with
Fiat–Shamir [BDLN16, BL17, L12]:

1. sample ``U`` Gaussian masks ``y_j = (y_u,j, y_e,j)`` (integer polynomials) and commit
   ``t_j = a*y_u,j + y_e,j``;
2. ``seed = SHAKE-256(label, context, SHA-256(a), SHA-256(c1), SHA-256(t))`` (the bulk arrays
   through SHA-256, which SHA-NI runs 3-4x faster than Keccak: :func:`transcript_seed`; for
   ``c1``, a caller's digest that determines it may stand in: ``c1_digest``); ``W`` (``U x V``,
   binary) is expanded from it;
3. respond ``z_j = y_j + sum_k W_jk w_k``; keep it with the rejection probability of [L12,
   Thm 4.6] (else restart at 1), so ``z`` is distributed independently of the witness;
4. the proof is ``seed || z`` (fixed-width signed integers, bit-packed).

The verifier checks every coefficient's encoding and every row's ``||z_u,j||_2 <= beta_u``,
``||z_e,j||_2 <= beta_e``, recomputes ``t_j = a*z_u,j + z_e,j - sum_k W_jk c1_k`` and the seed.
Soundness, zero knowledge and the extracted bounds are derived in :mod:`.zkparams`;
``docs/key-safety.md`` §proof states them. Caller's duty: ``statement.context`` binds the
protocol version, params id, public-key fingerprint, round, client and chunk indices.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ckks._random import RandomSource
from fhe_agg.errors import InvalidProof
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.encrypt import ChunkWitness, fixed_operand
from fhe_agg.hazmat.packed_format import _pack_rows, _unpack_rows
from fhe_agg.hazmat.rlwe import ntt_mul_add
from fhe_agg.hazmat.rns import U64, csub, mul_shoup, shoup_quotient, sub_mod
from fhe_agg.hazmat.sampling import MAX_RADIUS, rounded_gaussian
from fhe_agg.hazmat.zkparams import (
    PROOF_BATCH,
    ExtractionBounds,
    ProofParameters,
    RejectionBounds,
    extraction_bounds,
    proof_parameters,
)

__all__ = [
    "PROOF_BATCH",
    "ExtractionBounds",
    "ProofStatement",
    "challenge_matrix",
    "extraction_bounds",
    "proof_size_bound",
    "prove",
    "transcript_seed",
    "verify",
    "words_digest",
]

#: v2: the arrays enter the transcript as SHA-256 digests (v1 hashed their words with SHAKE-256).
_LABEL = b"fhe_agg/zkproof/v2"
_MAGIC = b"FZP1"
_SEED = 32
_MAX_ATTEMPTS = 200


@dataclass(frozen=True, kw_only=True, eq=False)
class ProofStatement:
    """What a proof is about: ``context`` (the transcript binding, built by the caller), the
    data-level ``a`` in NTT form (``(L, N)``), the data primes and the ring degree."""

    context: bytes
    a_ntt: U64
    primes: tuple[int, ...]
    n: int


def proof_size_bound(n: int, primes: tuple[int, ...] = ()) -> int:
    """Exact byte size of one batch proof for ring degree ``n`` (independent of the primes)."""
    p = proof_parameters(n)
    return _size(p)


def _size(p: ProofParameters) -> int:
    return len(_MAGIC) + _SEED + p.rows * p.n * (p.width_u + p.width_e) // 8


def transcript_seed(statement: ProofStatement, c1: U64, commitments: U64) -> bytes:
    """The Fiat–Shamir seed: SHAKE-256 over the label, the context, ``(n, L, V, U)``, the primes
    and the SHA-256 digests of ``a``, the batch's ``c1`` and the commitments (each the
    little-endian 64-bit residues in C order; integers little-endian, label and context
    length-prefixed), 32 bytes.

    Binding: the seed determines ``(context, a, c1, t)`` unless SHA-256 collides, so the
    Fiat–Shamir soundness of :func:`fhe_agg.hazmat.zkparams.rows_for` holds up to a SHA-256
    collision: ``2**128`` classical work, the same 256-bit collision level (NIST PQC category 2)
    as the 32-byte SHAKE-256 seed itself and the SHA3-256 digests this replaced; quantum
    collision search [BHT98, CNS17] is compared in ``docs/key-safety.md`` §"Transcript hashing"."""
    return _seed(_prefix(statement, c1, commitments.shape[0]), commitments)


def words_digest(array: U64) -> bytes:
    """SHA-256 of ``array``'s little-endian 64-bit words in C order (no copy when contiguous)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<u8").data).digest()


def _prefix(statement: ProofStatement, c1: U64, rows: int, c1_digest: bytes | None = None) -> Any:
    h = hashlib.shake_256()
    h.update(struct.pack("<I", len(_LABEL)) + _LABEL)
    h.update(struct.pack("<Q", len(statement.context)) + statement.context)
    h.update(struct.pack("<IIII", statement.n, len(statement.primes), c1.shape[0], rows))
    h.update(b"".join(struct.pack("<Q", q) for q in statement.primes))
    h.update(words_digest(statement.a_ntt))
    h.update(words_digest(c1) if c1_digest is None else c1_digest)
    return h


def _seed(prefix: Any, commitments: U64) -> bytes:
    h = prefix.copy()
    h.update(words_digest(commitments))
    digest: bytes = h.digest(_SEED)
    return digest


def challenge_matrix(seed: bytes, rows: int, chunks: int) -> NDArray[np.float64]:
    """The binary ``rows x chunks`` challenge matrix expanded from ``seed`` (SHAKE-256, bits
    little-endian, row-major), as float64 for the BLAS products."""
    stream = hashlib.shake_256(b"fhe_agg/zkproof/challenge|" + seed).digest(
        (rows * chunks + 7) // 8
    )
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), bitorder="little")
    return bits[: rows * chunks].reshape(rows, chunks).astype(np.float64)


class _SmallOperand:
    """Small integers ``x`` (``(V, N)``) for several exact products ``W @ x`` with binary ``W``
    (a proof's attempts): the bound on ``|x|`` found once and, for the compiled path, one int32
    copy made at the first product and kept until :meth:`wipe` (a copy of the witnesses)."""

    def __init__(self, x: NDArray[np.int64]) -> None:
        self.x = x
        self.top = max(int(x.max(initial=0)), -int(x.min(initial=0)))
        self._small: NDArray[np.int32] | None = None

    def times(
        self, w: NDArray[np.float64], bits: NDArray[np.uint8] | None = None
    ) -> NDArray[np.int64]:
        """``W @ x`` exactly: every partial sum of a row is an integer of magnitude at most
        ``V * max|x|``. Compiled, by int32 additions while that bound stays below ``2**31``
        (``bits``: ``W != 0`` as uint8, if already made); in numpy, a float32 product is exact
        below ``2**24`` (an honest batch: ``128 * 19``; twice as fast as float64) and a float64
        one below ``2**53``."""
        bound = w.shape[1] * self.top
        if bound >= 2**53:
            raise ValueError("x: too large for an exact product")
        kernels = _accel.kernels(w.shape[0] * self.x.size)
        if kernels is not None and bound < 2**31:
            if self._small is None:
                self._small = self.x.astype(np.int32)
            if bits is None:
                bits = np.ascontiguousarray(w != 0, dtype=np.uint8)
            out = np.empty((w.shape[0], self.x.shape[1]), dtype=np.int64)
            kernels.binary_combination(bits, self._small, out)
            return out
        dtype = np.float32 if bound < 2**24 else np.float64
        product: NDArray[np.int64] = np.rint(w.astype(dtype) @ self.x.astype(dtype)).astype(
            np.int64
        )
        return product

    def wipe(self) -> None:
        if self._small is not None:
            self._small.fill(0)


def _small_product(w: NDArray[np.float64], x: NDArray[np.int64]) -> NDArray[np.int64]:
    """``W @ x`` for the binary ``W`` and small integers ``x``, exactly (:meth:`_SmallOperand.times`)."""
    operand = _SmallOperand(x)
    try:
        return operand.times(w)
    finally:
        operand.wipe()


def _combine_mod(
    w: NDArray[np.float64], c1: U64, primes: tuple[int, ...], t: U64 | None = None
) -> U64:
    """``sum_k W_jk c1_k mod q_i`` exactly, or with ``t`` (reduced, ``(U, L, N)``) ``t - sum``
    written into ``t`` (the verifier's commitments): residues split in limbs of at most
    ``52 - log2(V)`` bits, each limb product in float64 BLAS (below ``V * 2**limb <= 2**52``:
    exact), recombined with Shoup multiplications (one limb for a 40-bit prime, two for 60
    bits)."""
    rows, chunks, n = w.shape[0], w.shape[1], c1.shape[2]
    kernels = _accel.kernels(rows * c1.size)
    if kernels is not None:  # the same residues, by lazy modular additions (compiled)
        out = np.empty((rows, len(primes), n), dtype=np.uint64) if t is None else t
        bits = np.ascontiguousarray(w != 0, dtype=np.uint8)
        primes_u64 = np.array(primes, dtype=np.uint64)
        kernels.combine_rows(bits, np.ascontiguousarray(c1), primes_u64, out, t is not None)
        return out
    out = np.empty((rows, len(primes), n), dtype=np.uint64) if t is None else t
    for i, q in enumerate(primes):
        limbs = -(-q.bit_length() // (52 - chunks.bit_length()))
        width = -(-q.bit_length() // limbs)
        shift = np.array([(1 << width) % q], dtype=np.uint64)
        quot = shoup_quotient(shift, q)
        residues = c1[:, i, :]
        acc = np.zeros((rows, n), dtype=np.uint64)
        for limb in reversed(range(limbs)):
            part = (residues >> np.uint64(width * limb)) & np.uint64((1 << width) - 1)
            product = (w @ part.astype(np.float64)).astype(np.uint64)
            if chunks << width >= q:  # a 60-bit prime's limb sums stay below q
                product = np.mod(product, np.uint64(q))
            if limb < limbs - 1:
                acc = mul_shoup(acc, shift, quot, q)
            acc = csub(acc + product, q)
        out[:, i, :] = acc if t is None else sub_mod(out[:, i, :], acc, q)
    return out


def _commit(y_u: NDArray[np.int64], y_e: NDArray[np.int64], statement: ProofStatement) -> U64:
    """``a * y_u + y_e`` per row, NTT form, shape ``(U, L, N)``."""
    primes, n = statement.primes, statement.n
    return ntt_mul_add(y_u, fixed_operand(statement.a_ntt, primes), y_e, n, primes)


def _check_batch(statement: ProofStatement, c1: U64) -> int:
    n, count = statement.n, len(statement.primes)
    if not isinstance(c1, np.ndarray) or c1.dtype != np.uint64 or c1.ndim != 3:
        raise InvalidProof("c1: expected a uint64 array of shape (V, L, N)")
    if not 1 <= c1.shape[0] <= PROOF_BATCH or c1.shape[1:] != (count, n):
        raise InvalidProof(
            f"c1: shape {c1.shape}, expected (V, {count}, {n}) with 1 <= V <= {PROOF_BATCH}"
        )
    if statement.a_ntt.shape != (count, n):
        raise InvalidProof(f"statement: a_ntt has shape {statement.a_ntt.shape}")
    for i, q in enumerate(statement.primes):
        if int(c1[:, i, :].max()) >= q:  # a reduction: no temporary array of c1's size
            raise InvalidProof("c1: a residue is not reduced modulo its prime")
    return int(c1.shape[0])


def prove(
    statement: ProofStatement,
    c1: U64,
    witnesses: Sequence[ChunkWitness],
    rng: RandomSource,
    *,
    params: ProofParameters | None = None,
    c1_digest: bytes | None = None,
) -> bytes:
    """Prove that every ``c1[k] = a*u_k + e1_k`` for the given witnesses; ``params`` overrides
    the production parameters (small test instances only); ``c1_digest``: what the transcript
    binds for ``c1`` (:func:`verify`), by default :func:`words_digest` of ``c1``."""
    p = params or proof_parameters(statement.n)
    chunks = _check_batch(statement, c1)
    if len(witnesses) != chunks:
        raise ValueError(f"witnesses: {len(witnesses)} for {chunks} chunks")
    # one stacked copy of each (no second one by the conversion), wiped below
    u = np.stack([w.u for w in witnesses]).astype(np.int64, copy=False)
    e1 = np.stack([w.e1 for w in witnesses]).astype(np.int64, copy=False)
    prefix = _prefix(statement, c1, p.rows, c1_digest)
    rejection = p.rejection(chunks)
    small_u, small_e = _SmallOperand(u), _SmallOperand(e1)  # bound and int32 copy made once
    try:
        for _ in range(_MAX_ATTEMPTS):
            y_u = rounded_gaussian(p.rows * p.n, p.sigma_u, rng, tail=MAX_RADIUS).reshape(
                p.rows, p.n
            )
            y_e = rounded_gaussian(p.rows * p.n, p.sigma_e, rng, tail=MAX_RADIUS).reshape(
                p.rows, p.n
            )
            seed = _seed(prefix, _commit(y_u, y_e, statement))
            w = challenge_matrix(seed, p.rows, chunks)
            bits = np.ascontiguousarray(w != 0, dtype=np.uint8)
            shift_u, shift_e = small_u.times(w, bits), small_e.times(w, bits)
            z_u, z_e = y_u + shift_u, y_e + shift_e
            accepted = _accept(p, rejection, (z_u, shift_u), (z_e, shift_e), rng)
            if accepted and _fits(p, z_u, z_e):
                return _encode(p, seed, z_u, z_e)
    finally:
        u.fill(0)  # the stacked copies of the witnesses
        e1.fill(0)
        small_u.wipe()
        small_e.wipe()
    raise RuntimeError("prove: rejection sampling did not accept (a witness too long?)")


def _accept(
    p: ProofParameters,
    rejection: RejectionBounds,
    part_u: tuple[NDArray[np.int64], NDArray[np.int64]],
    part_e: tuple[NDArray[np.int64], NDArray[np.int64]],
    rng: RandomSource,
) -> bool:
    """[L12, Thm 4.6]: keep ``z`` with probability ``D(z) / (M_V D_c(z))``, after checking the
    honest shift bound ``||c_x|| <= T_x,V`` of this batch size (restart otherwise).

    Each part is ``(z, c)``. The masks are rounded continuous Gaussians, whose log-density ratio
    is that of a Gaussian of variance ``sigma^2 + 1/12`` up to terms of order
    ``|z|^3 |c| / sigma^8`` (Euler–Maclaurin). ``2<z,c> - ||c||^2`` is computed exactly in int64."""
    (z_u, c_u), (z_e, c_e) = part_u, part_e
    norm_u, norm_e = int(np.dot(c_u.ravel(), c_u.ravel())), int(np.dot(c_e.ravel(), c_e.ravel()))
    if norm_u > rejection.t_u**2 or norm_e > rejection.t_e**2:
        return False
    cross_u = 2 * int(np.dot(z_u.ravel(), c_u.ravel())) - norm_u
    cross_e = 2 * int(np.dot(z_e.ravel(), c_e.ravel())) - norm_e
    log_ratio = -cross_u / (2.0 * (p.sigma_u**2 + 1 / 12)) - cross_e / (
        2.0 * (p.sigma_e**2 + 1 / 12)
    )
    threshold = math.exp(min(log_ratio, 700.0) - math.log(rejection.repetitions))
    draw = (int.from_bytes(rng.bytes(8), "little") >> 11) * 2.0**-53
    return draw < threshold


def _fits(p: ProofParameters, z_u: NDArray[np.int64], z_e: NDArray[np.int64]) -> bool:
    """The checks a verifier will make: every coefficient fits its width, every row its norm."""
    try:
        _check_responses(p, z_u, z_e)
    except InvalidProof:
        return False
    return True


def _check_responses(p: ProofParameters, z_u: NDArray[np.int64], z_e: NDArray[np.int64]) -> None:
    for z, width, beta, part in ((z_u, p.width_u, p.beta_u, "u"), (z_e, p.width_e, p.beta_e, "e")):
        limit = (1 << (width - 1)) - 1
        if int(z.max()) > limit or int(z.min()) < -limit:
            raise InvalidProof(f"proof: a response coefficient of the {part} part is out of range")
        norms = np.einsum("ij,ij->i", z, z)  # exact: |z| < 2**23, n * 2**46 < 2**63
        if np.any(norms > math.floor(beta * beta)):
            raise InvalidProof(f"proof: a response row of the {part} part is too long")


def _encode(
    p: ProofParameters, seed: bytes, z_u: NDArray[np.int64], z_e: NDArray[np.int64]
) -> bytes:
    parts = [_MAGIC, seed]
    for z, width in ((z_u, p.width_u), (z_e, p.width_e)):
        # |z| < 2**(width - 1) (checked by _fits): the shifted codes are non-negative int64,
        # whose bits are their uint64 values
        parts.append(_pack_rows((z + (1 << (width - 1))).view(np.uint64), width))
    return b"".join(parts)


def _decode(p: ProofParameters, proof: bytes) -> tuple[bytes, NDArray[np.int64], NDArray[np.int64]]:
    if not isinstance(proof, bytes | bytearray | memoryview):
        raise InvalidProof(f"proof: expected bytes, got {type(proof).__name__}")
    if len(proof) != _size(p):
        raise InvalidProof(f"proof: {len(proof)} bytes, expected {_size(p)}")
    view = memoryview(proof)
    if bytes(view[: len(_MAGIC)]) != _MAGIC:
        raise InvalidProof("proof: bad magic")
    offset = len(_MAGIC) + _SEED
    seed = bytes(view[len(_MAGIC) : offset])
    out = []
    for width in (p.width_u, p.width_e):
        size = p.rows * p.n * width // 8
        signed = _unpack_rows(view[offset : offset + size], p.rows, p.n, width).view(np.int64)
        signed -= 1 << (width - 1)  # in place: every code is below 2**width
        out.append(signed)
        offset += size
    return seed, out[0], out[1]


def verify(
    statement: ProofStatement,
    c1: U64,
    proof: bytes,
    *,
    params: ProofParameters | None = None,
    c1_digest: bytes | None = None,
) -> None:
    """Return if ``proof`` shows every ``c1[k]`` well formed under ``statement``; raise
    :class:`InvalidProof` otherwise (any length, encoding, norm or transcript mismatch).

    ``c1_digest``, if given, is what the transcript binds for ``c1`` in place of
    :func:`words_digest` of it, the same for the prover: a collision-resistant digest that
    determines this very ``c1`` (e.g. of the bytes it was parsed from, which a caller has
    hashed already). A digest of anything else makes the check one of a different statement."""
    p = params or proof_parameters(statement.n)
    chunks = _check_batch(statement, c1)
    seed, z_u, z_e = _decode(p, proof)
    _check_responses(p, z_u, z_e)
    w = challenge_matrix(seed, p.rows, chunks)
    commitments = _combine_mod(w, c1, statement.primes, _commit(z_u, z_e, statement))
    expected = _seed(_prefix(statement, c1, p.rows, c1_digest), commitments)
    if not hmac.compare_digest(expected, seed):
        raise InvalidProof("proof: the transcript does not match (wrong statement or forged)")
