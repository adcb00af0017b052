"""The checks of one update that read nothing but the update and its round.

Decoding, the signed statement, the chunk count, the Merkle root, the strict parse and every
batch proof depend only on the update and the :class:`~fhe_agg.protocol._context.RoundContext`,
so the aggregator runs them through :func:`precheck`: inline for :meth:`~fhe_agg.Aggregator.add`,
for several updates at once on pool threads in :meth:`~fhe_agg.Aggregator.add_many`. What
depends on the aggregator's state (finalized, a client already counted, ``max_clients``) stays
with the aggregator, checked in arrival order; the order of the checks, and so the error an
update gets, is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fhe_agg._errors import FheAggError, InvalidSignature
from fhe_agg.errors import ChunkCountMismatch, ParameterMismatch
from fhe_agg.hazmat.rns import U64
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._merkle import leaf_hash, merkle_root
from fhe_agg.protocol._messages import EncryptedUpdate
from fhe_agg.protocol._wellformed import check_update_proofs

__all__ = ["CheckedUpdate", "Precheck", "check_content", "precheck"]


@dataclass(frozen=True, eq=False)
class CheckedUpdate:
    """An update whose content passed every check: its Merkle leaves and its chunks parsed into
    one ``[chunk, poly, prime, coeff]`` array (the running sum's layout)."""

    update: EncryptedUpdate
    leaves: list[bytes]
    parsed: U64


@dataclass(frozen=True, eq=False)
class Precheck:
    """One update's checks run ahead of the aggregator's: ``update`` (``None`` if it did not
    decode), the refusal of its decoding or statement, else its content's outcome."""

    update: EncryptedUpdate | None
    statement_error: FheAggError | None = None
    content: CheckedUpdate | FheAggError | None = None


def _decode(
    update: EncryptedUpdate | bytes | bytearray | memoryview, context: RoundContext
) -> EncryptedUpdate:
    """``update`` as a message (bytes are parsed within the round's bounds)."""
    if isinstance(update, bytes | bytearray | memoryview):
        update = EncryptedUpdate.from_bytes(bytes(update), context.bounds)
    if not isinstance(update, EncryptedUpdate):
        raise TypeError(f"update: expected EncryptedUpdate or bytes, got {type(update).__name__}")
    return update


def check_content(update: EncryptedUpdate, context: RoundContext, *, workers: int) -> CheckedUpdate:
    """Chunk count, Merkle root, strict parse (scale included) and every batch proof (on
    ``workers`` threads) of an update whose statement checked out."""
    stmt = update.statement
    if len(update.chunks) != stmt.chunk_count:
        raise ChunkCountMismatch(
            f"client {stmt.client_id!r}: {len(update.chunks)} chunks sent, {stmt.chunk_count} signed"
        )
    leaves = [leaf_hash(i, c) for i, c in enumerate(update.chunks)]
    if merkle_root(leaves) != stmt.merkle_root:
        raise InvalidSignature(
            f"client {stmt.client_id!r}: chunks do not match the signed Merkle root"
        )
    parsed = parse_chunks(update.chunks, stmt.client_id, context)
    check_update_proofs(
        parsed[:, 1],
        update.proofs,
        leaves=leaves,
        public_key=context.public_key,
        config=context.config,
        round_id=context.round_id,
        client_id=stmt.client_id,
        chunk_count=stmt.chunk_count,
        signed_digest=stmt.proofs_digest,
        workers=workers,
    )
    return CheckedUpdate(update, leaves, parsed)


def parse_chunks(chunks: Sequence[bytes], client_id: str, context: RoundContext) -> U64:
    """Every chunk parsed straight into one ``[chunk, poly, prime, coeff]`` array (no
    per-chunk arrays to stack); :class:`ParameterMismatch` for another scale."""
    backend = context.backend
    out = np.empty((len(chunks), 2, len(backend.data_primes), backend.n), dtype=np.uint64)
    for i, blob in enumerate(chunks):
        raw = backend.parse(
            blob,
            max_bytes=context.bounds.chunk_bytes,
            what=f"client {client_id!r} chunk {i}",
            out=out[i],
        )
        if raw.scale != context.config.scale:
            raise ParameterMismatch(
                f"client {client_id!r} chunk {i}: scale differs from the federation's"
            )
    return out


def precheck(
    update: EncryptedUpdate | bytes,
    context: RoundContext,
    workers: int,
    refused: frozenset[str] | None,
) -> Precheck:
    """Every check of ``update`` that reads no aggregator state, its refusals kept, not raised
    (a pool task: the aggregator raises them in its turn, in arrival order). ``refused``: the
    clients the aggregator already counted (``None``: it is full), whose updates it refuses
    whatever their content: theirs is not checked (a replayed update costs no proof check)."""
    try:
        decoded = _decode(update, context)
    except FheAggError as exc:
        return Precheck(None, statement_error=exc)
    try:
        check_statement(decoded.signed, context)
    except FheAggError as exc:
        return Precheck(decoded, statement_error=exc)
    if refused is None or decoded.statement.client_id in refused:
        return Precheck(decoded)
    try:
        return Precheck(decoded, content=check_content(decoded, context, workers=workers))
    except FheAggError as exc:
        return Precheck(decoded, content=exc)
