"""Well-formedness proofs of an update's chunks: what a client proves, what verifiers check.

Every chunk's ``c1`` must be ``a*u + e1`` with short ``u, e1`` known to the client, or the key
holders' partials of a sum containing it reveal the secret key (:mod:`fhe_agg.hazmat.zkproof`,
``docs/key-safety.md``). A client encrypts each chunk itself at the data level
(:func:`~fhe_agg.hazmat.encrypt.encrypt_with_witness`) and proves the chunks in batches of
:data:`~fhe_agg.hazmat.zkproof.PROOF_BATCH` consecutive indices, one proof per batch. Each proof's
Fiat–Shamir transcript is bound (:func:`proof_context`) to the domain label, protocol version,
``params_id``, public-key fingerprint, round, client and the batch's chunk indices, so a proof
cannot be replayed in another round, for another client or at other indices; it binds the
batch's ``c1`` through the chunks' Merkle leaves (:func:`chunks_binding`). The signed
:class:`~fhe_agg.UpdateStatement` commits to the proofs (:func:`proofs_digest`), so the server can
neither drop, swap nor reorder them. The aggregator checks every proof on ingest and every key
holder every proof of every update it counts (:func:`check_update_proofs`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import msgpack
import numpy as np

from fhe_agg._parallel import run_ordered
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import InvalidProof, MalformedMessage
from fhe_agg.hazmat.encrypt import public_key_data_level
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.zkproof import (
    PROOF_BATCH,
    ProofStatement,
    proof_size_bound,
    verify,
)
from fhe_agg.protocol._config import PROTOCOL_VERSION, FederationConfig

__all__ = [
    "CHUNKS_CONTEXT",
    "PROOFS_CONTEXT",
    "WELLFORMED_CONTEXT",
    "BatchItem",
    "DataLevelKey",
    "check_proof_set",
    "check_update_proofs",
    "chunks_binding",
    "data_level_key",
    "forget_verified",
    "proof_batches",
    "proof_bytes_bound",
    "proof_context",
    "proof_statement",
    "proofs_digest",
    "signed_proof_id",
    "verify_batches",
]

#: Domain label of every well-formedness proof's transcript (the ``fhe-agg/v1/<what>`` scheme of
#: the project's signature contexts).
WELLFORMED_CONTEXT = b"fhe-agg/v1/wellformed"
#: Domain label of the digest of an update's proofs, signed in its statement (v2: SHA-256; v1
#: was SHA3-256).
PROOFS_CONTEXT = b"fhe-agg/v2/proofs"
#: Domain label of :func:`chunks_binding`, the digest through which a proof's transcript binds
#: its batch's ``c1`` (protocol version 4; the digest of ``c1``'s words before).
CHUNKS_CONTEXT = b"fhe-agg/v1/proven-chunks"


@dataclass(frozen=True, eq=False, repr=False)
class DataLevelKey:
    """The joint public key ``(pk0, a)`` reduced to the data primes, NTT form (public)."""

    pk0_ntt: U64
    a_ntt: U64
    primes: tuple[int, ...]
    n: int

    def __repr__(self) -> str:
        return f"DataLevelKey(n={self.n}, primes={len(self.primes)})"


@lru_cache(maxsize=8)
def data_level_key(public_key: PublicKey) -> DataLevelKey:
    """``public_key`` at the data level: its residues modulo the data primes (in NTT form a
    polynomial mod ``q_i`` is its own row, so dropping the special prime's rows reduces it)."""
    backend = backend_for(public_key.preset)
    pk0, a = public_key_data_level(public_key)
    pk0.setflags(write=False)
    a.setflags(write=False)
    return DataLevelKey(pk0, a, backend.data_primes, backend.n)


def proof_batches(chunk_count: int) -> tuple[range, ...]:
    """The chunk indices of each proof: consecutive runs of at most ``PROOF_BATCH``."""
    return tuple(
        range(start, min(start + PROOF_BATCH, chunk_count))
        for start in range(0, chunk_count, PROOF_BATCH)
    )


def proof_bytes_bound(config: FederationConfig) -> int:
    """The largest batch proof a verifier parses for ``config``'s preset."""
    backend = backend_for(config.preset)
    return proof_size_bound(backend.n, backend.data_primes)


def proof_context(
    *,
    params_id: bytes,
    public_key_fingerprint: bytes,
    round_id: int,
    client_id: str,
    indices: range,
) -> bytes:
    """The transcript binding of one batch proof: label, then a canonical msgpack array of
    protocol version, ``params_id``, key fingerprint, round, client and the chunk indices."""
    fields = [
        PROTOCOL_VERSION,
        params_id,
        public_key_fingerprint,
        round_id,
        client_id,
        list(indices),
    ]
    encoded: bytes = msgpack.packb(fields, use_bin_type=True)
    return WELLFORMED_CONTEXT + b"|" + encoded


def proof_statement(key: DataLevelKey, context: bytes) -> ProofStatement:
    return ProofStatement(context=context, a_ntt=key.a_ntt, primes=key.primes, n=key.n)


def proofs_digest(proofs: Sequence[bytes]) -> bytes:
    """SHA-256 over the proofs in order, each length-prefixed: what the statement signs
    (SHA-256 for SHA-NI's speed: the same 256-bit collision level as SHA3-256)."""
    h = hashlib.sha256(PROOFS_CONTEXT + b"|" + len(proofs).to_bytes(8, "little"))
    for proof in proofs:
        h.update(len(proof).to_bytes(8, "little"))
        h.update(proof)
    return h.digest()


def chunks_binding(leaves: Sequence[bytes]) -> bytes:
    """What a batch proof's transcript binds for the batch's ``c1`` (protocol version 4):
    SHA-256 of :data:`CHUNKS_CONTEXT`, the count and the batch's Merkle leaves in order (each
    :func:`~fhe_agg.protocol._merkle.leaf_hash` of a chunk's index and bytes).

    The leaves determine the chunks' bytes and these, by the strict parse, ``c1``: the binding
    holds up to a SHA-256 collision, as with the digest of ``c1``'s words it replaces
    (``docs/key-safety.md`` §"Transcript hashing"). Every verifier hashes these leaves anyway,
    for the signed Merkle root or the chunks' paths to it, so ``c1`` (16 MB per 1e6
    parameters) is not hashed a second time."""
    h = hashlib.sha256(CHUNKS_CONTEXT + b"|" + len(leaves).to_bytes(4, "little"))
    for leaf in leaves:
        h.update(leaf)
    return h.digest()


def check_proof_set(
    proofs: Sequence[bytes], *, chunk_count: int, signed_digest: bytes, bound: int, who: str
) -> None:
    """Refuse (:class:`InvalidProof`) a proof list that is not the one the client signed: a
    missing, extra, reordered, swapped or oversized proof."""
    expected = len(proof_batches(chunk_count))
    if len(proofs) != expected:
        raise InvalidProof(
            f"{who}: {len(proofs)} well-formedness proofs, {chunk_count} chunks need {expected}",
            party=who,
        )
    for k, proof in enumerate(proofs):
        if not isinstance(proof, bytes) or not 0 < len(proof) <= bound:
            raise InvalidProof(f"{who}: proof {k} is empty or longer than {bound} bytes", party=who)
    if proofs_digest(proofs) != signed_digest:
        raise InvalidProof(f"{who}: the proofs are not the ones the client signed", party=who)


def _batch_statement(
    public_key: PublicKey, config: FederationConfig, round_id: int, client_id: str, indices: range
) -> ProofStatement:
    context = proof_context(
        params_id=config.params_id,
        public_key_fingerprint=public_key.fingerprint,
        round_id=round_id,
        client_id=client_id,
        indices=indices,
    )
    return proof_statement(data_level_key(public_key), context)


def _verify_raw(
    statement: ProofStatement, c1: U64, proof: bytes, client_id: str, indices: range, binding: bytes
) -> None:
    """``verify`` with the caller's error message (a pure function: runs in a pool worker);
    ``binding``: the batch's :func:`chunks_binding`, which the transcript binds for ``c1``."""
    try:
        verify(statement, c1, proof, c1_digest=binding)
    except (InvalidProof, MalformedMessage) as exc:
        raise InvalidProof(
            f"client {client_id!r}: the well-formedness proof of chunks "
            f"{indices.start}..{indices.stop - 1} does not verify ({exc})"
        ) from None


def _remember(memo: bytes) -> None:
    with _VERIFIED_LOCK:
        _VERIFIED[memo] = None
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)


class BatchItem(NamedTuple):
    """One batch to verify."""

    client_id: str
    indices: range
    #: ``(V, L, N)``, NTT form, parsed from the chunks ``binding`` covers
    c1: U64
    proof: bytes
    #: :func:`chunks_binding` of the batch's chunks (the caller hashed their leaves)
    binding: bytes
    #: the proof's identity for the memo: :func:`signed_proof_id` (the caller checked the proofs
    #: against the digest their client signed)
    proof_id: bytes


#: The arguments of :func:`_verify_raw` for one batch.
_Task = tuple[ProofStatement, U64, bytes, str, range, bytes]


def verify_batches(
    items: Sequence[BatchItem],
    *,
    public_key: PublicKey,
    config: FederationConfig,
    round_id: int,
    workers: int,
) -> None:
    """Verify every batch of ``items`` (on ``workers`` threads when > 1); raise the
    :class:`InvalidProof` of the first that fails, in the order given (every batch is checked
    with ``workers > 1``, only those before it with one). The memo of verified proofs lives in
    this process: hits are skipped, and a batch verified by a pool thread is remembered."""
    pending = _unverified(items, public_key, config, round_id)
    if workers == 1:  # in order: the first failure raises, those before it are remembered
        for memo, task in pending:
            _verify_raw(*task)
            _remember(memo)
        return
    if not pending:
        return
    run_ordered(_verify_raw, [task for _, task in pending], workers=workers, threads=True)
    for memo, _ in pending:
        _remember(memo)


def _unverified(
    items: Sequence[BatchItem], public_key: PublicKey, config: FederationConfig, round_id: int
) -> list[tuple[bytes, _Task]]:
    """The items this process has not verified yet, each with its memo key and the arguments of
    :func:`_verify_raw`, in order; a memo hit is marked as recently used."""
    pending: list[tuple[bytes, _Task]] = []
    for client_id, indices, c1, proof, binding, proof_id in items:
        statement = _batch_statement(public_key, config, round_id, client_id, indices)
        memo = _memo_key(statement, c1, binding, proof_id)
        with _VERIFIED_LOCK:
            hit = memo in _VERIFIED
            if hit:
                _VERIFIED.move_to_end(memo)
        if not hit:
            pending.append((memo, (statement, c1, proof, client_id, indices, binding)))
    return pending


#: Digests of (statement, c1, proof) triples that verified in this process. ``verify`` is a
#: deterministic function of exactly these inputs, so a triple whose SHA-256 digest is here
#: verifies again: an aggregator and several key holders in one process (a simulation, a test)
#: pay for each proof once. Nothing else is kept; separate processes share nothing. Read and
#: written only by the callers of the pool (never by its tasks), under ``_VERIFIED_LOCK``: an
#: ingest thread and a holder in another thread may use it at once.
_VERIFIED: OrderedDict[bytes, None] = OrderedDict()
_VERIFIED_MAX = 4096
_VERIFIED_LOCK = threading.Lock()


def forget_verified() -> None:
    """Empty this process's memo of verified proofs (benchmarks time a holder's own checks)."""
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


def signed_proof_id(signed_digest: bytes, batch: int) -> bytes:
    """The identity of batch proof ``batch`` of an update whose proofs were checked against its
    signed :func:`proofs_digest` (:func:`check_proof_set`): that digest determines every proof
    (SHA-256 collision resistance), so the memo key need not hash the proof's 8.65 MB again."""
    return b"signed|" + signed_digest + batch.to_bytes(4, "little")


def _memo_key(statement: ProofStatement, c1: U64, binding: bytes, proof_id: bytes) -> bytes:
    """SHA-256 of the statement, ``c1`` and the proof: ``c1`` by the :func:`chunks_binding` the
    transcript binds, the proof by :func:`signed_proof_id`: a collision of the key needs one
    of SHA-256."""
    h = hashlib.sha256(b"fhe-agg/v4/verified-proof|")
    for part in (statement.context, proof_id):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    h.update(repr((statement.n, statement.primes, c1.shape)).encode() + b"|")
    h.update(np.ascontiguousarray(statement.a_ntt, dtype="<u8").data)
    h.update(binding)
    return h.digest()


def check_update_proofs(
    c1_of: U64,
    proofs: Sequence[bytes],
    *,
    leaves: Sequence[bytes],
    public_key: PublicKey,
    config: FederationConfig,
    round_id: int,
    client_id: str,
    chunk_count: int,
    signed_digest: bytes,
    workers: int = 1,
) -> None:
    """Verify every batch proof of one update against its chunks' ``c1`` (``c1_of[i]``, NTT
    form ``(L, N)``, parsed from the chunks whose Merkle ``leaves`` are given), on ``workers``
    threads; :class:`InvalidProof` for the first that fails."""
    check_proof_set(
        proofs,
        chunk_count=chunk_count,
        signed_digest=signed_digest,
        bound=proof_bytes_bound(config),
        who=f"client {client_id!r}",
    )
    verify_batches(
        [
            BatchItem(
                client_id,
                indices,
                np.ascontiguousarray(c1_of[indices.start : indices.stop]),
                proof,
                chunks_binding(leaves[indices.start : indices.stop]),
                signed_proof_id(signed_digest, k),
            )
            for k, (proof, indices) in enumerate(
                zip(proofs, proof_batches(chunk_count), strict=True)
            )
        ],
        public_key=public_key,
        config=config,
        round_id=round_id,
        workers=workers,
    )
