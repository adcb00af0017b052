"""The aggregation server: verifies signed, proven updates and keeps a running homomorphic sum.

Memory stays O(one model) whatever the number of clients: each accepted update is added into
the running sum chunk by chunk and its ciphertext bytes and well-formedness proofs are spooled to
disk, where they wait as evidence for the key holders. Every batch proof of an update is verified
before the sum is touched (:class:`~fhe_agg.InvalidProof` otherwise). Every check happens before any state changes, so a rejected
update leaves the sum bit for bit as it was. With a ``store`` the round survives a crash
(:mod:`fhe_agg.server._store`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fhe_agg._errors import DuplicateUpdate, FheAggError, InvalidSignature, ThresholdNotMet, locate
from fhe_agg._parallel import check_workers
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.errors import ChunkCountMismatch, MalformedMessage, ParameterMismatch, Rejected
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._merkle import leaf_hash, merkle_path, merkle_root
from fhe_agg.protocol._messages import (
    EncryptedAggregate,
    EncryptedUpdate,
    SignedStatement,
    total_weight,
)
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.protocol._wellformed import (
    BatchItem,
    check_update_proofs,
    prefetch_batches,
    proof_batches,
)
from fhe_agg.server._spool import Spool
from fhe_agg.server._store import AggregatorStore
from fhe_agg.server._tree import PartialAggregate

if TYPE_CHECKING:
    from fhe_agg.identity._auditlog import AuditLog

__all__ = ["Aggregator"]


class Aggregator:
    """Collects one round's encrypted updates and produces the encrypted weighted mean.

    ``roster`` maps client ids to their ML-DSA public keys. ``add`` raises a
    :class:`~fhe_agg.Rejected` subclass, :class:`~fhe_agg.MalformedMessage` or
    :class:`~fhe_agg.MessageTooLarge` for an update it refuses, and then nothing has changed.

    With ``audit`` (an :class:`~fhe_agg.identity.AuditLog` opened with the aggregator's key and
    actor name), every accepted update, every refusal (error class and message) and the
    finalized aggregate are appended as signed events before the state changes.

    ``store`` (a file path; recommended for servers:
    ``./fhe_agg_state/aggregator-round-<round_id>.sqlite``, one file per round) makes the round
    crash-safe: each accepted update (statement, chunks, new running sum) and the finalized flag
    are committed to an SQLite file in one durable transaction before ``add``/``finalize``
    return. Opening an existing store resumes the round (accepted clients, running sum, Merkle
    leaves, finalized flag, all verified again); a client that re-sends an update already
    counted gets :class:`~fhe_agg.DuplicateUpdate`, so every update counts exactly once. A store
    of another round, configuration, layout or key raises :class:`~fhe_agg.RoundMismatch`,
    :class:`~fhe_agg.ParameterMismatch` or :class:`~fhe_agg.LayoutMismatch`; a damaged one
    :class:`~fhe_agg.CorruptStore`; one held by a live aggregator :class:`~fhe_agg.StoreError`.
    A resume is recorded in the audit log as ``round.resumed``; an update accepted in the log
    just before a crash may be absent from the store (and accepted again when re-sent). The
    store keeps the chunks the key holders ask for; delete it once the round is released.
    ``None`` (the default) keeps the state in memory and the chunks in ``spool_dir``.

    ``workers`` > 1 verifies proofs on that many threads: the batches of one update in
    :meth:`add`, those of several updates together in :meth:`add_many` (what
    :class:`~fhe_agg.IngestQueue` calls); accepted updates, sums and refusals are the same.
    """

    def __init__(
        self,
        *,
        config: FederationConfig,
        roster: Mapping[str, VerifyKey],
        public_key: PublicKey,
        round_id: int,
        layout: Layout,
        spool_dir: str | os.PathLike[str] | None = None,
        audit: AuditLog | None = None,
        store: str | os.PathLike[str] | None = None,
        workers: int = 1,
    ) -> None:
        self.workers = check_workers(workers)
        self.context = RoundContext(  # checks that the five fit together
            config=config, public_key=public_key, roster=roster, layout=layout, round_id=round_id
        )
        if audit is not None:
            from fhe_agg.identity._auditlog import require_recorder

            audit = require_recorder(audit)
        if store is not None and spool_dir is not None:
            raise ValueError("spool_dir: not used with store=, which keeps the chunks itself")
        self._audit = audit
        self.config = config
        self.roster = dict(roster)
        self.public_key = public_key
        self.round_id = round_id
        self.layout = layout
        self.bounds = self.context.bounds
        self._backend = self.context.backend
        self._sum: U64 | None = None
        self._accepted: list[SignedStatement] = []
        self._leaves: list[list[bytes]] = []  # per accepted update; its slot is its position
        self._seen: set[str] = set()
        self._finalized = False
        self._spool: Spool | None = None
        self._store: AggregatorStore | None = None
        if store is None:
            self._spool = Spool(Path(spool_dir) if spool_dir is not None else None)
        else:
            self._resume(store)

    def _resume(self, path: str | os.PathLike[str]) -> None:
        """Open the round's store and restore (and re-verify) what it holds."""
        self._store = AggregatorStore(path, self.context)
        state = self._store.load(self._check_statement)
        self._sum, self._finalized = state.running_sum, state.finalized
        for signed, leaves in state.accepted:
            self._remember(signed, leaves)
        if state.resumed:
            self._record(
                "round.resumed", clients=list(self.accepted_clients), finalized=self._finalized
            )

    @property
    def accepted_clients(self) -> tuple[str, ...]:
        return tuple(s.statement.client_id for s in self._accepted)

    @property
    def finalized(self) -> bool:
        """True once :meth:`finalize` succeeded (restored from the store on resume)."""
        return self._finalized

    def running_sum(self) -> U64 | None:
        """A copy of the running sum ``[chunk, poly, prime, coeff]`` (for audits and tests)."""
        return None if self._sum is None else self._sum.copy()

    def _record(self, event: str, **payload: Any) -> None:
        if self._audit is not None:
            self._audit.record(event, {"round": self.round_id, **payload})

    def add(self, update: EncryptedUpdate | bytes) -> None:
        """Verify ``update`` and add it to the running sum, or raise and change nothing."""
        claimed: str | None = None
        try:
            if self._finalized:
                raise Rejected(f"round {self.round_id} is finalized; no more updates are accepted")
            if isinstance(update, bytes | bytearray | memoryview):
                update = EncryptedUpdate.from_bytes(bytes(update), self.bounds)
            if not isinstance(update, EncryptedUpdate):
                raise TypeError(
                    f"update: expected EncryptedUpdate or bytes, got {type(update).__name__}"
                )
            claimed = update.statement.client_id
            leaves, parsed = self._check(update)
        except FheAggError as exc:
            self._record("update.rejected", claimed_client=claimed, error=exc.code, reason=str(exc))
            raise locate(exc, round_id=self.round_id, party=claimed)  # noqa: B904 (the same error)
        stmt = update.statement
        self._record(
            "update.accepted",
            client=stmt.client_id,
            weight=stmt.weight,
            merkle_root=stmt.merkle_root.hex(),
        )
        primes = self._backend.data_primes
        new_sum = parsed if self._sum is None else add_polys(self._sum, parsed, primes)
        if self._store is not None:
            self._store.append(update.signed, update.chunks, leaves, new_sum, update.proofs)
        else:
            assert self._spool is not None
            self._spool.write(update.chunks, update.proofs)
        self._sum = new_sum
        self._remember(update.signed, leaves)

    def add_many(self, updates: Sequence[EncryptedUpdate | bytes]) -> list[FheAggError | None]:
        """:meth:`add` each of ``updates`` in order; for each, ``None`` (accepted) or the
        :class:`~fhe_agg.Rejected` / :class:`~fhe_agg.MalformedMessage` refusal. With
        ``workers`` > 1 the proofs of all of them are first verified together on the pool
        (one update of up to 128 chunks is one proof batch, so this is where an aggregator's
        work splits); :meth:`add` still makes every check, in order, and finds them verified."""
        items = list(updates)
        if self.workers > 1:
            items = self._prefetch(items)
        out: list[FheAggError | None] = []
        for update in items:
            try:
                self.add(update)
            except (MalformedMessage, Rejected) as exc:
                out.append(exc)
            else:
                out.append(None)
        return out

    def _prefetch(self, updates: list[EncryptedUpdate | bytes]) -> list[EncryptedUpdate | bytes]:
        """Parse ``updates`` and verify the proofs of those whose statement checks out on the
        pool; bytes that do not parse stay bytes (``add`` refuses them)."""
        parsed: list[EncryptedUpdate | bytes] = []
        batches: list[BatchItem] = []
        for update in updates:
            try:
                if isinstance(update, bytes | bytearray | memoryview):
                    update = EncryptedUpdate.from_bytes(bytes(update), self.bounds)
                if isinstance(update, EncryptedUpdate):
                    batches.extend(self._batch_items(update))
            except FheAggError:
                pass  # add() refuses it with the right error, in its turn
            parsed.append(update)
        prefetch_batches(
            batches,
            public_key=self.public_key,
            config=self.config,
            round_id=self.round_id,
            workers=self.workers,
        )
        return parsed

    def _batch_items(self, update: EncryptedUpdate) -> list[BatchItem]:
        stmt = update.statement
        self._check_statement(update.signed)
        count = stmt.chunk_count
        if len(update.chunks) != count or len(update.proofs) != len(proof_batches(count)):
            return []
        c1 = self._parse_chunks(update.chunks, stmt.client_id)[:, 1]
        return [
            (stmt.client_id, r, np.ascontiguousarray(c1[r.start : r.stop]), proof)
            for r, proof in zip(proof_batches(count), update.proofs, strict=True)
        ]

    def _remember(self, signed: SignedStatement, leaves: list[bytes]) -> None:
        """Count an accepted (stored or spooled) update; its slot is its position."""
        self._accepted.append(signed)
        self._leaves.append(leaves)
        self._seen.add(signed.statement.client_id)

    def _check(self, update: EncryptedUpdate) -> tuple[list[bytes], U64]:
        """Every check of :meth:`add`; the Merkle leaves and parsed chunks of a valid update."""
        stmt = update.statement
        self._check_statement(update.signed)
        if stmt.client_id in self._seen:
            same = update.signed in self._accepted
            raise DuplicateUpdate(
                f"client {stmt.client_id!r} already contributed to round {self.round_id} "
                f"({'this exact update' if same else 'another update'} is counted)"
            )
        if len(self._accepted) >= self.config.max_clients:
            raise Rejected(
                f"round {self.round_id} already holds max_clients={self.config.max_clients}"
            )
        if len(update.chunks) != stmt.chunk_count:
            raise ChunkCountMismatch(
                f"client {stmt.client_id!r}: {len(update.chunks)} chunks sent, {stmt.chunk_count} signed"
            )
        leaves = [leaf_hash(i, c) for i, c in enumerate(update.chunks)]
        if merkle_root(leaves) != stmt.merkle_root:
            raise InvalidSignature(
                f"client {stmt.client_id!r}: chunks do not match the signed Merkle root"
            )
        parsed = self._parse_chunks(update.chunks, stmt.client_id)
        check_update_proofs(
            parsed[:, 1],
            update.proofs,
            public_key=self.public_key,
            config=self.config,
            round_id=self.round_id,
            client_id=stmt.client_id,
            chunk_count=stmt.chunk_count,
            signed_digest=stmt.proofs_digest,
            workers=self.workers,
        )
        return leaves, parsed

    def _check_statement(self, signed: SignedStatement) -> None:
        check_statement(signed, self.context)

    def _parse_chunks(self, chunks: Sequence[bytes], client_id: str) -> U64:
        """Every chunk parsed straight into one ``[chunk, poly, prime, coeff]`` array (the
        running sum's layout: no per-chunk arrays to stack)."""
        backend = self._backend
        out = np.empty((len(chunks), 2, len(backend.data_primes), backend.n), dtype=np.uint64)
        for i, blob in enumerate(chunks):
            raw = backend.parse(
                blob,
                max_bytes=self.bounds.chunk_bytes,
                what=f"client {client_id!r} chunk {i}",
                out=out[i],
            )
            if raw.scale != self.config.scale:
                raise ParameterMismatch(
                    f"client {client_id!r} chunk {i}: scale differs from the federation's"
                )
        return out

    def finalize(self) -> EncryptedAggregate:
        """Close the round and return the encrypted weighted mean with its manifest.

        The sum's scale is set to ``scale * total_weight``, so decoding yields the weighted mean
        without spending a ciphertext level. Raises :class:`ThresholdNotMet` below
        ``config.min_clients`` (the round stays open).
        """
        if len(self._accepted) < self.config.min_clients or self._sum is None:
            raise ThresholdNotMet(
                f"round {self.round_id}: {len(self._accepted)} updates, min_clients is {self.config.min_clients}"
            )
        return self._close()

    def forward(self) -> PartialAggregate:
        """Close the round as a node of a tree of aggregators (:mod:`fhe_agg.server._tree`): the sum
        of the updates accepted (at least one: ``min_clients`` applies to the merged aggregate
        at every key holder), their statements and the evidence of every chunk, for the parent's
        :func:`~fhe_agg.server._tree.merge_partials`."""
        if self._sum is None:
            raise ThresholdNotMet(f"round {self.round_id}: no update to forward")
        aggregate = self._close(forwarded=True)
        return PartialAggregate(aggregate, self.evidence(range(len(aggregate.chunks))))

    def _close(self, *, forwarded: bool = False) -> EncryptedAggregate:
        assert self._sum is not None
        self._record(
            "aggregate.forwarded" if forwarded else "aggregate.finalized",
            clients=list(self.accepted_clients),
        )
        if self._store is not None and not self._finalized:
            self._store.mark_finalized()
        self._finalized = True
        manifest = tuple(self._accepted)
        mean_scale = self.config.scale * total_weight(manifest)
        chunks = tuple(
            self._backend.pack(RawCiphertext(self._backend.data_parms_id, mean_scale, c))
            for c in self._sum
        )
        return EncryptedAggregate(round_id=self.round_id, chunks=chunks, manifest=manifest)

    def evidence(self, indices: Iterable[int]) -> AggregateEvidence:
        """Every accepted client's chunk at each of ``indices`` with its Merkle path, and every
        accepted client's well-formedness proofs (a key holder verifies them all)."""
        chunk_count = self.layout.chunk_count(self.config.preset.reals_per_ciphertext)
        out: dict[int, tuple[ChunkEvidence, ...]] = {}
        for index in indices:
            if not 0 <= index < chunk_count:
                raise ValueError(f"indices: {index} outside 0..{chunk_count - 1}")
            out[index] = tuple(
                ChunkEvidence(
                    client_id=signed.statement.client_id,
                    chunk=self._read_chunk(slot, index),
                    path=tuple(merkle_path(leaves, index)),
                )
                for slot, (signed, leaves) in enumerate(
                    zip(self._accepted, self._leaves, strict=True)
                )
            )
        proofs = {
            signed.statement.client_id: self._read_proofs(slot)
            for slot, signed in enumerate(self._accepted)
        }
        return AggregateEvidence(round_id=self.round_id, chunks=out, proofs=proofs)

    def _read_proofs(self, slot: int) -> tuple[bytes, ...]:
        if self._store is not None:
            return self._store.read_proofs(slot)
        assert self._spool is not None
        return self._spool.read_proofs(slot)

    def _read_chunk(self, slot: int, index: int) -> bytes:
        source = self._store if self._store is not None else self._spool
        assert source is not None
        return source.read(slot, index)

    def close(self) -> None:
        """Delete the spool (when the aggregator created it), or close the store (kept)."""
        if self._spool is not None:
            self._spool.close()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Aggregator(round={self.round_id}, accepted={len(self._accepted)}, preset={self.config.preset.name})"
