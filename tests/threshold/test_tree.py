"""A two-level tree of aggregators: sub-aggregators forward partial sums with their manifests and
evidence, a parent merges them, and 3 of 5 key holders accept and decrypt the merged aggregate;
a node that injects, drops or double-counts anything is refused before any partial exists."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fhe_agg import (
    AggregateMismatch,
    Aggregator,
    DecryptionSession,
    DuplicateUpdate,
    EncryptedAggregate,
    InvalidSignature,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.server._tree import PartialAggregate, merge_partials

from .conftest import CLIENTS, PARAMS, WEIGHTS, Federation

MEMBERS = (1, 3, 5)
GROUPS = (("ana", "ben"), ("cy",))  # one child below min_clients on its own


def _children(fed: Federation, round_id: int) -> tuple[list[PartialAggregate], np.ndarray]:
    rng = np.random.default_rng(round_id)
    vectors = {c: rng.uniform(-1, 1, PARAMS) for c in CLIENTS}
    weights = dict(zip(CLIENTS, WEIGHTS, strict=True))
    parts = []
    for group in GROUPS:
        with Aggregator(
            config=fed.config,
            roster=fed.roster,  # type: ignore[arg-type]
            public_key=fed.public_key,
            round_id=round_id,
            layout=fed.layout,
        ) as node:
            for c in group:
                update = fed.clients[c].encrypt_update(
                    vectors[c], round_id=round_id, weight=weights[c]
                )
                node.add(update.to_bytes())
            part = node.forward()
            assert node.finalized
        # what travels to the parent: the two existing wire formats
        bounds = MessageBounds.for_round(fed.config, fed.layout)
        parts.append(
            PartialAggregate(
                EncryptedAggregate.from_bytes(part.aggregate.to_bytes(), bounds),
                AggregateEvidence.from_bytes(
                    part.evidence.to_bytes(), config=fed.config, layout=fed.layout
                ),
            )
        )
    expected = np.average([vectors[c] for c in CLIENTS], axis=0, weights=WEIGHTS)
    return parts, expected


def _merge(fed: Federation, parts, round_id: int, **kw) -> PartialAggregate:
    return merge_partials(
        parts,
        config=fed.config,
        public_key=fed.public_key,
        roster=fed.roster,  # type: ignore[arg-type]
        layout=fed.layout,
        round_id=round_id,
        **kw,
    )


def _release(fed: Federation, merged: PartialAggregate) -> np.ndarray:
    holders = fed.key_holders()
    session = DecryptionSession(
        merged.aggregate, config=fed.config, layout=fed.layout, decrypting_set=MEMBERS
    )
    for j in MEMBERS:
        session.add(fed.partial(holders[j], merged.aggregate, lambda _i: merged.evidence, MEMBERS))
    return session.release()


@pytest.mark.parametrize("check_children", [False, True])
def test_two_level_aggregation_is_accepted_and_decrypted(fed: Federation, check_children) -> None:
    round_id = 700 + check_children
    parts, expected = _children(fed, round_id)
    merged = _merge(fed, parts, round_id, check_children=check_children)
    assert [s.statement.client_id for s in merged.aggregate.manifest] == list(CLIENTS)
    mean = _release(fed, merged)
    np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-6)
    # a tree of any depth: merging the merged node with nothing else changes nothing
    again = _merge(fed, [merged], round_id)
    assert again.aggregate.chunks == merged.aggregate.chunks


def _tamper_sum(
    part: PartialAggregate, fed: Federation, other: PartialAggregate
) -> PartialAggregate:
    """A child adds a ciphertext nobody proved (the other child's sum: real, but not its own
    clients') into its forwarded sum, keeping its own manifest and scale."""
    b = backend_for(fed.config.preset)
    mine = b.parse(part.aggregate.chunks[0], what="mine")
    extra = b.parse(other.aggregate.chunks[0], what="extra")
    data = add_polys(mine.data, extra.data, b.data_primes)
    chunks = (b.pack(RawCiphertext(b.data_parms_id, mine.scale, data)),)
    return dataclasses.replace(part, aggregate=dataclasses.replace(part.aggregate, chunks=chunks))


def test_a_child_injecting_an_unproven_term_is_refused(fed: Federation) -> None:
    round_id = 710
    parts, _ = _children(fed, round_id)
    bad = [_tamper_sum(parts[0], fed, parts[1]), parts[1]]
    merged = _merge(fed, bad, round_id)  # the parent adds blindly ...
    holder = fed.key_holders()[1]
    with pytest.raises(AggregateMismatch, match="not the sum"):  # ... every holder refuses
        fed.partial(holder, merged.aggregate, lambda _i: merged.evidence, MEMBERS)
    assert holder.decrypted_rounds == ()
    with pytest.raises(AggregateMismatch, match="not the sum"):  # a checking parent names it
        _merge(fed, bad, round_id, check_children=True)


def test_a_client_counted_twice_or_another_round_is_refused(fed: Federation) -> None:
    round_id = 720
    parts, _ = _children(fed, round_id)
    with pytest.raises(DuplicateUpdate):
        _merge(fed, [parts[0], parts[0]], round_id)
    with pytest.raises(AggregateMismatch, match="round"):
        _merge(fed, parts, round_id + 1)
    # a parent that double-counts anyway is refused by the holders
    merged = _merge(fed, parts, round_id)
    doubled = dataclasses.replace(
        merged.aggregate, manifest=merged.aggregate.manifest + parts[1].aggregate.manifest
    )
    with pytest.raises(DuplicateUpdate):
        fed.partial(fed.key_holders()[1], doubled, lambda _i: merged.evidence, MEMBERS)


def test_a_child_altering_a_clients_chunk_in_its_evidence_is_refused(fed: Federation) -> None:
    round_id = 730
    parts, _ = _children(fed, round_id)
    ev = parts[1].evidence
    item = ev.chunks[0][0]
    forged = ChunkEvidence(
        client_id=item.client_id,
        chunk=item.chunk[:-1] + bytes([item.chunk[-1] ^ 1]),
        path=item.path,
    )
    bad_ev = dataclasses.replace(ev, chunks={0: (forged,)})
    merged = _merge(fed, [parts[0], dataclasses.replace(parts[1], evidence=bad_ev)], round_id)
    with pytest.raises(InvalidSignature):
        fed.partial(fed.key_holders()[3], merged.aggregate, lambda _i: merged.evidence, MEMBERS)
