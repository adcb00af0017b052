"""A tree of aggregators: sub-aggregators forward partial sums, a parent merges them.

Sums are associative, and a key holder's check is end to end: it recomputes every chunk of the
aggregate from the *clients'* signed chunks in the evidence and verifies every client's proofs
(:func:`~fhe_agg.holder._aggregate_check.verify_aggregate`). So a tree needs no new message and no new
trust: a node forwards what a root aggregator hands the key holders, an
:class:`~fhe_agg.EncryptedAggregate` (its sum at scale ``scale * its total weight``, the signed
statements of its clients) and its :class:`~fhe_agg.AggregateEvidence` (every chunk of every
client with its Merkle path, every client's proofs), as :class:`PartialAggregate`. The parent
adds the sums and concatenates manifests and evidence (:func:`merge_partials`); the result is
again a :class:`PartialAggregate`, so trees of any depth are built the same way.

What a dishonest node can do, and what stops it: a sum that is not the sum of its clients' signed,
proven chunks (anything unproven added, a chunk dropped or altered) fails every holder's
recomputation (:class:`~fhe_agg.AggregateMismatch`) before any partial exists; a client counted
in two subtrees is a manifest listing it twice (:class:`~fhe_agg.DuplicateUpdate`); a statement of
another round, key or layout, or not in the roster, fails its check; a wrong scale fails the scale
check. A parent cannot tell *which* child lied unless it checks each child itself
(``check_children=True``: the holders' check, per child, minus the size bounds). What a tree does
not change: each key holder still downloads and checks every client's chunks and proofs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fhe_agg._errors import AggregateMismatch, DuplicateUpdate
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, total_weight
from fhe_agg.protocol._signing import VerifyKey

__all__ = ["PartialAggregate", "merge_partials"]


@dataclass(frozen=True, eq=False)
class PartialAggregate:
    """What a node of the tree forwards: its encrypted sum with the signed statements of the
    clients in it, and the evidence of every chunk of theirs (both with their own wire
    format: ``aggregate.to_bytes()``, ``evidence.to_bytes()``)."""

    aggregate: EncryptedAggregate
    evidence: AggregateEvidence


def merge_partials(
    parts: Sequence[PartialAggregate],
    *,
    config: FederationConfig,
    public_key: PublicKey,
    roster: Mapping[str, VerifyKey],
    layout: Layout,
    round_id: int,
    check_children: bool = False,
) -> PartialAggregate:
    """Add the children's sums; concatenate their manifests and evidence in order.

    Refuses children of another round (:class:`~fhe_agg.RoundMismatch` via the statement checks
    with ``check_children``, else :class:`~fhe_agg.AggregateMismatch`), a client in two
    children (:class:`~fhe_agg.DuplicateUpdate`), more than ``max_clients`` in all
    (:class:`~fhe_agg.AggregateMismatch`), a chunk count or scale that does not match its
    child's manifest, and evidence that does not cover every chunk of every child's clients.
    With ``check_children`` each child is verified as a key holder would (signatures, sums,
    proofs) before anything is added, so a lying child is named. The merged sum is decrypted
    only after the key holders' own full check; this function never makes it acceptable.
    """
    from fhe_agg.holder._aggregate_check import verify_aggregate
    from fhe_agg.protocol._context import RoundContext

    if not parts:
        raise ValueError("parts: nothing to merge")
    chunk_count = layout.chunk_count(config.preset.reals_per_ciphertext)
    clients: set[str] = set()
    for k, part in enumerate(parts):
        agg, ev = part.aggregate, part.evidence
        if agg.round_id != round_id or ev.round_id != round_id:
            raise AggregateMismatch(f"child {k}: of round {agg.round_id}, merging round {round_id}")
        ids = [s.statement.client_id for s in agg.manifest]
        if not ids or len(set(ids)) != len(ids) or clients & set(ids):
            raise DuplicateUpdate(f"child {k}: a client already counted (or none at all)")
        clients |= set(ids)
        if len(agg.chunks) != chunk_count or set(ev.chunks) != set(range(chunk_count)):
            raise AggregateMismatch(f"child {k}: needs {chunk_count} chunks and their evidence")
        if check_children:
            context = RoundContext(
                config=config,
                public_key=public_key,
                roster=roster,
                layout=layout,
                round_id=round_id,
            )
            verify_aggregate(
                agg, ev, context=context, wanted=tuple(range(chunk_count)), subtree=True
            )
    if len(clients) > config.max_clients:
        raise AggregateMismatch(
            f"{len(clients)} clients in all, max_clients is {config.max_clients}"
        )
    return _merge(parts, config, chunk_count)


def _merge(
    parts: Sequence[PartialAggregate], config: FederationConfig, chunk_count: int
) -> PartialAggregate:
    b = backend_for(config.preset)
    total = None
    for k, part in enumerate(parts):
        scale = config.scale * part.aggregate.total_weight
        data = []
        for i, blob in enumerate(part.aggregate.chunks):
            raw = b.parse(blob, what=f"child {k} chunk {i}")
            if raw.scale != scale:
                raise AggregateMismatch(f"child {k} chunk {i}: scale does not match its manifest")
            data.append(raw.data)
        stacked = np.stack(data)
        total = stacked if total is None else add_polys(total, stacked, b.data_primes)
    assert total is not None
    manifest = tuple(s for part in parts for s in part.aggregate.manifest)
    mean_scale = config.scale * total_weight(manifest)
    chunks = tuple(b.pack(RawCiphertext(b.data_parms_id, mean_scale, c)) for c in total)
    round_id = parts[0].aggregate.round_id
    evidence: dict[int, tuple[ChunkEvidence, ...]] = {
        i: tuple(e for part in parts for e in part.evidence.chunks[i]) for i in range(chunk_count)
    }
    proofs = {c: p for part in parts for c, p in part.evidence.proofs.items()}
    return PartialAggregate(
        EncryptedAggregate(round_id=round_id, chunks=chunks, manifest=manifest),
        AggregateEvidence(round_id=round_id, chunks=evidence, proofs=proofs),
    )
