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

from fhe_agg._errors import DuplicateUpdate, FheAggError, ThresholdNotMet, locate
from fhe_agg._parallel import check_workers, run_ordered
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.errors import MalformedMessage, Rejected
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._merkle import merkle_path
from fhe_agg.protocol._messages import (
    EncryptedAggregate,
    EncryptedUpdate,
    SignedStatement,
    total_weight,
)
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.server._spool import Spool
from fhe_agg.server._store import AggregatorStore
from fhe_agg.server._tree import PartialAggregate
from fhe_agg.server._update_check import CheckedUpdate, Precheck, check_content, precheck

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

    ``workers`` > 1 uses that many threads: for the proof batches of one update in :meth:`add`,
    and in :meth:`add_many` (what :class:`~fhe_agg.IngestQueue` calls) for ``workers`` updates'
    whole checks at a time (decode, statement, Merkle root, parse, proofs), admitted in order;
    accepted updates, sums and refusals are the same.
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
        self._admit(self._prechecks([update], inner=self.workers)[0])

    def add_many(self, updates: Sequence[EncryptedUpdate | bytes]) -> list[FheAggError | None]:
        """:meth:`add` each of ``updates`` in order; for each, ``None`` (accepted) or the
        :class:`~fhe_agg.Rejected` / :class:`~fhe_agg.MalformedMessage` refusal. With
        ``workers`` > 1, ``workers`` updates at a time are decoded, parsed and their proofs
        verified on the pool's threads (one update of up to 128 chunks is one proof batch, so
        this is where an aggregator's work splits), then admitted in order: the checks of the
        aggregator's state, the refusals and the sums are those of :meth:`add`."""
        items = list(updates)
        out: list[FheAggError | None] = []
        for start in range(0, len(items), self.workers):
            window = items[start : start + self.workers]
            inner = self.workers if len(window) == 1 else 1  # a lone update splits its batches
            for pre in self._prechecks(window, inner=inner):
                try:
                    self._admit(pre)
                except (MalformedMessage, Rejected) as exc:
                    out.append(exc)
                else:
                    out.append(None)
        return out

    def _prechecks(
        self, window: Sequence[EncryptedUpdate | bytes], *, inner: int
    ) -> list[Precheck | None]:
        """The checks of ``window`` that read no state of this aggregator (:func:`precheck`),
        on the pool's threads (inline for one update; its proofs on ``inner`` threads); ``None``
        for each once the round is finalized (refused unread). The content of a client already
        counted, or of any update once ``max_clients`` are, is not checked: it is refused
        whatever it holds."""
        if self._finalized:
            return [None] * len(window)
        full = len(self._accepted) >= self.config.max_clients
        refused = None if full else frozenset(self._seen)
        tasks = [(u, self.context, inner, refused) for u in window]
        return list(run_ordered(precheck, tasks, workers=self.workers, threads=True))

    def _admit(self, pre: Precheck | None) -> None:
        """The checks of :meth:`add`, in order, taking from ``pre`` those already made: the round
        still open, the message, its statement, this aggregator's state, its content; then the
        update counts. A refusal is recorded and raised, nothing changed."""
        claimed = None if pre is None or pre.update is None else pre.update.statement.client_id
        try:
            if self._finalized or pre is None:
                raise Rejected(f"round {self.round_id} is finalized; no more updates are accepted")
            if pre.statement_error is not None:
                raise pre.statement_error
            assert pre.update is not None  # decoded: no error of its decoding or statement
            self._check_state(pre.update)
            if isinstance(pre.content, FheAggError):
                raise pre.content
            # unchecked only for a client refused above: the state never forgets a client
            checked = pre.content or check_content(pre.update, self.context, workers=self.workers)
        except FheAggError as exc:
            self._record("update.rejected", claimed_client=claimed, error=exc.code, reason=str(exc))
            raise locate(exc, round_id=self.round_id, party=claimed)  # noqa: B904 (the same error)
        self._count(checked)

    def _count(self, checked: CheckedUpdate) -> None:
        """Add a fully checked update: audit record, running sum, store or spool, slot."""
        update, leaves, parsed = checked.update, checked.leaves, checked.parsed
        stmt = update.statement
        self._record(
            "update.accepted",
            client=stmt.client_id,
            weight=stmt.weight,
            merkle_root=stmt.merkle_root.hex(),
        )
        primes = self._backend.data_primes
        if self._store is not None:  # the new sum commits with the update, or neither does
            new_sum = parsed if self._sum is None else add_polys(self._sum, parsed, primes)
            self._store.append(update.signed, update.chunks, leaves, new_sum, update.proofs)
            self._sum = new_sum
        else:
            assert self._spool is not None
            self._spool.write(update.chunks, update.proofs)  # may raise: the sum is untouched
            if self._sum is None:
                self._sum = parsed
            else:  # in place: no fresh pages for a new sum per update
                add_polys(self._sum, parsed, primes, out=self._sum)
        self._remember(update.signed, leaves)

    def _remember(self, signed: SignedStatement, leaves: list[bytes]) -> None:
        """Count an accepted (stored or spooled) update; its slot is its position."""
        self._accepted.append(signed)
        self._leaves.append(leaves)
        self._seen.add(signed.statement.client_id)

    def _check_state(self, update: EncryptedUpdate) -> None:
        """The checks that read this aggregator's state: a client counted once, ``max_clients``."""
        stmt = update.statement
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

    def _check_statement(self, signed: SignedStatement) -> None:
        check_statement(signed, self.context)

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
