"""A key holder's checks that an aggregate is the exact sum of a round's signed updates.

Pure functions of the aggregate, the evidence the aggregator sent for the challenged chunks, and
the round's :class:`~fhe_agg.protocol._context.RoundContext` (roster, config, public key, layout, round):
no holder state. See :class:`~fhe_agg.KeyHolder` for
what is checked and why.
"""

from __future__ import annotations

import numpy as np

from fhe_agg._errors import FheAggError
from fhe_agg.errors import (
    AggregateMismatch,
    ChunkCountMismatch,
    DuplicateUpdate,
    InvalidProof,
    InvalidSignature,
    RoundMismatch,
    ThresholdNotMet,
)
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._merkle import leaf_hash, verify_path
from fhe_agg.protocol._messages import EncryptedAggregate, UpdateStatement
from fhe_agg.protocol._wellformed import (
    BatchItem,
    check_proof_set,
    chunks_binding,
    proof_batches,
    signed_proof_id,
    verify_batches,
)

__all__ = ["verify_aggregate"]


def verify_aggregate(
    aggregate: EncryptedAggregate,
    evidence: AggregateEvidence,
    *,
    context: RoundContext,
    wanted: tuple[int, ...],
    workers: int = 1,
    subtree: bool = False,
) -> U64:
    """Check the manifest (``min_clients..max_clients`` distinct roster members, valid statements
    for this round and layout), the chunk count, every chunk's scale, that each chunk in
    ``wanted`` is the sum of the clients' signed chunks in ``evidence``, and every client's
    well-formedness proof of every chunk (so ``wanted`` must be every chunk, else
    :class:`InvalidProof`); return the parsed chunks. Raises the typed error of the first check
    that fails (the same for any ``workers``; the proofs are verified on ``workers`` threads):
    client by client, its proof set, its chunks' Merkle paths and its proofs; the sums last.
    ``context`` is the round the aggregate must be of (:class:`RoundMismatch`). ``subtree``: a
    child of a tree of aggregators (:mod:`fhe_agg.server._tree`), checked by its parent, may hold fewer
    than ``min_clients`` clients; everything else is checked the same."""
    round_id, config = context.round_id, context.config
    if aggregate.round_id != round_id:
        raise RoundMismatch(
            f"an aggregate of round {aggregate.round_id}, this is round {round_id}",
            round_id=round_id,
        )
    clients = [s.statement.client_id for s in aggregate.manifest]
    if len(set(clients)) != len(clients):
        raise DuplicateUpdate("manifest lists a client twice")
    if len(clients) > config.max_clients:  # the scale leaves room for max_clients updates only
        raise AggregateMismatch(
            f"aggregate of round {round_id} lists {len(clients)} clients, max_clients is "
            f"{config.max_clients}: its sum may wrap around the modulus"
        )
    if len(clients) < config.min_clients and not (subtree and clients):
        raise ThresholdNotMet(
            f"aggregate of round {round_id} has {len(clients)} clients, min_clients is {config.min_clients}"
        )
    for signed in aggregate.manifest:
        check_statement(signed, context)
    if len(aggregate.chunks) != context.chunk_count:
        raise ChunkCountMismatch(
            f"aggregate has {len(aggregate.chunks)} chunks, layout needs {context.chunk_count}"
        )
    b = context.backend
    mean_scale = config.scale * aggregate.total_weight
    parsed = []
    for i, blob in enumerate(aggregate.chunks):
        raw = b.parse(blob, what=f"aggregate chunk {i}")
        if raw.scale != mean_scale:
            raise AggregateMismatch(
                f"aggregate chunk {i}: scale does not match the manifest's total weight"
            )
        parsed.append(raw.data)
    sums = np.stack(parsed)
    _check_evidence(aggregate, evidence, sums, wanted, context, workers)
    return sums


def _check_evidence(
    aggregate: EncryptedAggregate,
    evidence: AggregateEvidence,
    sums: U64,
    wanted: tuple[int, ...],
    context: RoundContext,
    workers: int,
) -> None:
    """Each chunk in ``wanted``: every client's evidence chunk is the one its Merkle root
    signed, and their modular sum equals the aggregate's chunk; every client's proofs verify
    against its chunks' ``c1``. With every chunk wanted (a partial), one pass per client and
    batch parses each evidence chunk once, for its sum and its proof (memory: the running sums
    and ``workers`` batches); the sums are compared after the last client."""
    if evidence.round_id != aggregate.round_id or not set(wanted) <= set(evidence.chunks):
        raise AggregateMismatch("evidence does not cover the requested chunks of this round")
    statements = [s.statement for s in aggregate.manifest]
    for index in wanted:
        if [e.client_id for e in evidence.chunks[index]] != [s.client_id for s in statements]:
            raise AggregateMismatch(f"chunk {index}: evidence clients differ from the manifest")
    missing = set(range(len(aggregate.chunks))) - set(wanted)
    if missing:
        _check_sums(evidence, statements, sums, wanted, context)
        raise InvalidProof(
            f"the proofs of chunks {sorted(missing)[:8]} cannot be verified: the evidence lacks "
            "them (a key holder verifies every chunk's proof before a partial)"
        )
    totals = _check_proofs(aggregate, evidence, context, workers)
    for indices, total in zip(proof_batches(len(aggregate.chunks)), totals, strict=True):
        same = np.all(total == sums[indices.start : indices.stop].swapaxes(0, 1), axis=(0, 2, 3))
        if not same.all():
            index = indices.start + int(np.argmin(same))
            raise AggregateMismatch(
                f"chunk {index} is not the sum of the manifest's signed updates"
            )


def _signed_chunk(index: int, item: ChunkEvidence, stmt: UpdateStatement) -> bytes:
    """``item``'s chunk, if its Merkle path leads to the root ``stmt`` signed."""
    _signed_leaf(index, item, stmt)
    return item.chunk


def _signed_leaf(index: int, item: ChunkEvidence, stmt: UpdateStatement) -> bytes:
    """``item``'s Merkle leaf, if its path leads to the root ``stmt`` signed."""
    leaf = leaf_hash(index, item.chunk)
    if not verify_path(leaf, index, stmt.chunk_count, list(item.path), stmt.merkle_root):
        raise InvalidSignature(
            f"chunk {index} of {stmt.client_id!r} is not the one the client signed"
        )
    return leaf


def _check_sums(
    evidence: AggregateEvidence,
    statements: list[UpdateStatement],
    sums: U64,
    wanted: tuple[int, ...],
    context: RoundContext,
) -> None:
    """Each chunk in ``wanted`` is the sum of the clients' signed chunks (no proofs)."""
    b = context.backend
    for index in wanted:
        total: U64 | None = None
        for stmt, item in zip(statements, evidence.chunks[index], strict=True):
            blob = _signed_chunk(index, item, stmt)
            raw = b.parse(blob, what=f"evidence chunk {index} of {stmt.client_id!r}")
            total = raw.data if total is None else add_polys(total, raw.data, b.data_primes)
        if total is None or not np.array_equal(total, sums[index]):
            raise AggregateMismatch(
                f"chunk {index} is not the sum of the manifest's signed updates"
            )


def _check_proofs(
    aggregate: EncryptedAggregate,
    evidence: AggregateEvidence,
    context: RoundContext,
    workers: int,
) -> list[U64]:
    """Every manifest client's every batch proof, against its evidence chunks, each checked
    against its signed Merkle root and parsed once (:class:`InvalidProof` for a proof that does
    not verify); the sums of the clients' chunks, per batch (``(2, V, L, N)``)."""
    run = _EvidencePass(context, len(aggregate.chunks), workers)
    for slot, signed in enumerate(aggregate.manifest):
        try:
            run.client(slot, signed.statement, evidence)
        except FheAggError:
            # the batches listed before this refusal are checked first, as in the serial order
            # (with one worker they were verified before this client's chunks were read)
            run.verify_pending()
            raise
    run.verify_pending()
    return run.totals


class _EvidencePass:
    """Client by client, batch by batch: each evidence chunk's Merkle path checked, its bytes
    parsed once into a buffer, added into the running sums (``totals``) and its batch's ``c1``
    queued for its proof (verified once ``workers`` batches wait). ``workers`` buffers per batch
    size, reused from client to client (fresh 33 MB arrays per batch cost more in page faults
    than parsing each chunk twice did); a pending batch's buffer is never written again."""

    def __init__(self, context: RoundContext, count: int, workers: int) -> None:
        self.context, self.count, self.workers = context, count, workers
        self.batches = proof_batches(count)
        self.totals: list[U64] = []
        self.pending: list[BatchItem] = []
        self._buffers: dict[tuple[int, int], U64] = {}

    def client(self, slot: int, stmt: UpdateStatement, evidence: AggregateEvidence) -> None:
        b = self.context.backend
        proofs = evidence.proofs.get(stmt.client_id, ())
        check_proof_set(
            proofs,
            chunk_count=self.count,
            signed_digest=stmt.proofs_digest,
            bound=self.context.bounds.proof_bytes,
            who=f"client {stmt.client_id!r}",
        )
        for k, (proof, indices) in enumerate(zip(proofs, self.batches, strict=True)):
            batch = self._buffer(len(indices))
            leaves = []
            for j, index in enumerate(indices):
                item = evidence.chunks[index][slot]
                leaves.append(_signed_leaf(index, item, stmt))
                what = f"evidence chunk {index} of {stmt.client_id!r}"
                b.parse(item.chunk, what=what, out=batch[:, j])
            if slot == 0:
                self.totals.append(batch.copy())
            else:
                add_polys(self.totals[k], batch, b.data_primes, out=self.totals[k])
            self.pending.append(
                BatchItem(
                    stmt.client_id,
                    indices,
                    batch[1],
                    proof,
                    chunks_binding(leaves),
                    signed_proof_id(stmt.proofs_digest, k),
                )
            )
            if len(self.pending) >= self.workers:  # memory: ``workers`` batches of c1
                self.verify_pending()

    def _buffer(self, size: int) -> U64:
        key = (len(self.pending), size)
        if key not in self._buffers:
            b = self.context.backend
            self._buffers[key] = np.empty((2, size, len(b.data_primes), b.n), np.uint64)
        return self._buffers[key]

    def verify_pending(self) -> None:
        _verify(self.pending, self.context, self.workers)
        self.pending.clear()


def _verify(items: list[BatchItem], context: RoundContext, workers: int) -> None:
    verify_batches(
        items,
        public_key=context.public_key,
        config=context.config,
        round_id=context.round_id,
        workers=workers,
    )
