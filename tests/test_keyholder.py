"""Decryption of verified aggregates only: the key holder's refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import PARAMS, weighted_mean

from fhe_agg import (
    AggregateEvidence,
    AggregateMismatch,
    AlreadyDecrypted,
    DuplicateUpdate,
    EncryptedAggregate,
    InvalidSignature,
    KeyHolder,
    RoundMismatch,
    ThresholdNotMet,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.seal_format import RawCiphertext

IDS = ("alpha", "bravo", "charlie")


@pytest.fixture
def finished(make_aggregator, updates):
    agg = make_aggregator()
    for cid in IDS:
        agg.add(updates[cid].to_bytes())
    return agg, agg.finalize()


def test_decrypts_the_weighted_mean_with_distinct_weights(
    finished, holder, layout, vectors
) -> None:
    agg, aggregate = finished
    mean = holder.decrypt(aggregate, agg.evidence(holder.challenge(aggregate)), layout=layout)
    assert mean.shape == (PARAMS,)
    np.testing.assert_allclose(mean, weighted_mean(vectors, IDS), rtol=0, atol=1e-6)
    # averaging identical clients proves nothing; the uniform mean must be clearly different
    assert np.max(np.abs(mean - np.mean([vectors[c] for c in IDS], axis=0))) > 0.01


def test_aggregate_survives_the_wire(finished, holder, layout, vectors) -> None:
    agg, aggregate = finished
    received = EncryptedAggregate.from_bytes(aggregate.to_bytes(), agg.bounds)
    mean = holder.decrypt(received, agg.evidence(holder.challenge(received)), layout=layout)
    np.testing.assert_allclose(mean, weighted_mean(vectors, IDS), atol=1e-6)


def _with_chunks(aggregate: EncryptedAggregate, chunks: tuple[bytes, ...]) -> EncryptedAggregate:
    return dataclasses.replace(aggregate, chunks=chunks)


def test_refuses_a_single_clients_ciphertext_presented_as_the_aggregate(
    finished, holder, layout, updates, config
) -> None:
    agg, aggregate = finished
    b = backend_for(config.preset)
    # dressed up: the scale is set to what the manifest implies, so only the sum check can see it
    dressed = tuple(
        b.pack(
            RawCiphertext(
                b.data_parms_id,
                config.scale * aggregate.total_weight,
                b.parse(c, what="chunk").data,
            )
        )
        for c in updates["alpha"].chunks
    )
    fake = _with_chunks(aggregate, dressed)
    with pytest.raises(AggregateMismatch, match="not the sum"):
        holder.partial_decrypt(fake, agg.evidence(holder.challenge(fake)), layout=layout)
    plain = _with_chunks(aggregate, updates["alpha"].chunks)
    with pytest.raises(AggregateMismatch, match="scale"):
        holder.partial_decrypt(plain, agg.evidence(holder.challenge(plain)), layout=layout)


def test_refuses_a_crafted_polynomial_added_to_one_chunk(finished, holder, layout, config) -> None:
    agg, aggregate = finished
    b = backend_for(config.preset)
    raw = b.parse(aggregate.chunks[1], what="chunk")
    data = raw.data.copy()
    data[0, 0, :10] = (data[0, 0, :10] + np.uint64(12345)) % np.uint64(b.data_primes[0])
    crafted = list(aggregate.chunks)
    crafted[1] = b.pack(RawCiphertext(raw.parms_id, raw.scale, data))
    fake = _with_chunks(aggregate, tuple(crafted))
    with pytest.raises(AggregateMismatch):
        holder.partial_decrypt(fake, agg.evidence(holder.challenge(fake)), layout=layout)


def test_refuses_a_second_decryption_of_the_same_round(finished, holder, layout) -> None:
    agg, aggregate = finished
    evidence = agg.evidence(holder.challenge(aggregate))
    holder.partial_decrypt(aggregate, evidence, layout=layout)
    with pytest.raises(AlreadyDecrypted):
        holder.partial_decrypt(aggregate, evidence, layout=layout)


def test_refuses_an_aggregate_below_min_clients(finished, holder, layout) -> None:
    agg, aggregate = finished
    short = dataclasses.replace(aggregate, manifest=aggregate.manifest[:2])
    with pytest.raises(ThresholdNotMet):
        holder.partial_decrypt(short, agg.evidence(holder.challenge(short)), layout=layout)


def test_refuses_a_manifest_listing_a_client_twice(finished, holder, layout) -> None:
    agg, aggregate = finished
    doubled = dataclasses.replace(
        aggregate, manifest=(*aggregate.manifest[:2], aggregate.manifest[0])
    )
    with pytest.raises(DuplicateUpdate):
        holder.partial_decrypt(doubled, agg.evidence(holder.challenge(doubled)), layout=layout)


def test_refuses_a_replayed_older_round(
    make_aggregator, clients, vectors, holder, layout, updates
) -> None:
    old = make_aggregator(1)
    for cid in IDS:
        old.add(updates[cid])
    old_aggregate = old.finalize()
    new = make_aggregator(2)
    for cid, w in zip(IDS, (1.0, 2.0, 3.0), strict=True):
        new.add(clients[cid].encrypt_update(vectors[cid], round_id=2, weight=w))
    new_aggregate = new.finalize()
    holder.partial_decrypt(
        new_aggregate, new.evidence(holder.challenge(new_aggregate)), layout=layout
    )
    with pytest.raises(RoundMismatch, match="older"):
        holder.partial_decrypt(
            old_aggregate, old.evidence(holder.challenge(old_aggregate)), layout=layout
        )


def test_refuses_evidence_that_does_not_match(finished, holder, layout, updates) -> None:
    agg, aggregate = finished
    wanted = holder.challenge(aggregate)
    evidence = agg.evidence(wanted)
    with pytest.raises(AggregateMismatch, match="cover"):
        holder.partial_decrypt(aggregate, AggregateEvidence(aggregate.round_id, {}), layout=layout)
    swapped = {
        i: tuple(
            dataclasses.replace(e, chunk=updates["delta"].chunks[i])
            if e.client_id == "bravo"
            else e
            for e in items
        )
        for i, items in evidence.chunks.items()
    }
    with pytest.raises(InvalidSignature):  # alpha's chunks and proof pass, bravo's chunk not
        holder.partial_decrypt(
            aggregate,
            AggregateEvidence(aggregate.round_id, swapped, evidence.proofs),
            layout=layout,
        )


def test_a_spot_checking_holder_still_asks_for_every_chunk_for_the_proofs(
    finished, config, keypair, roster, layout, vectors
) -> None:
    """One unverified chunk's proof can leak the key, so ``spot_check`` no longer thins the
    evidence: the challenge is every chunk, and evidence of fewer chunks is refused."""
    agg, aggregate = finished
    spot = KeyHolder(
        holder_id="s",
        config=config,
        public_key=keypair[0],
        key_share=keypair[1],
        roster=roster,
        spot_check=1,
    )
    wanted = spot.challenge(aggregate)
    assert wanted == tuple(range(len(aggregate.chunks))) and spot.challenge(aggregate) == wanted
    with pytest.raises(AggregateMismatch, match="cover"):
        spot.verify(aggregate, agg.evidence(wanted[:1]), layout=layout)
    mean = spot.decrypt(aggregate, agg.evidence(wanted), layout=layout)
    np.testing.assert_allclose(mean, weighted_mean(vectors, IDS), atol=1e-6)


def test_secrets_never_appear_in_reprs(holder, keypair, signing_keys) -> None:
    _, share = keypair
    operand = share.data_level()
    secret_words = {str(int(v)) for v in operand.value.ravel()[:50]}
    texts = [repr(holder), repr(share), str(share), repr(operand), repr(signing_keys["alpha"])]
    seed_hex = signing_keys["alpha"]._key.private_bytes_raw().hex()
    for text in texts:
        assert "<secret>" in text
        assert not any(word in text for word in secret_words if len(word) > 6)
        assert seed_hex not in text


def test_weights_whose_naive_sum_rounds_differently_still_decrypt(
    make_aggregator, clients, vectors, holder, layout
) -> None:
    weights = (1.1, 1.2, 1.3)  # at least min_weight = 1 sample each
    assert sum(weights) != 3.6  # 3.5999999999999996: aggregator and holder must use one sum
    agg = make_aggregator()
    for cid, w in zip(IDS, weights, strict=True):
        agg.add(clients[cid].encrypt_update(vectors[cid], round_id=1, weight=w))
    aggregate = agg.finalize()
    mean = holder.decrypt(aggregate, agg.evidence(holder.challenge(aggregate)), layout=layout)
    expected = np.average(np.stack([vectors[c] for c in IDS]), axis=0, weights=weights)
    np.testing.assert_allclose(mean, expected, atol=1e-6)


def test_detection_probability_of_spot_checks(config, keypair, roster) -> None:
    public_key, share = keypair
    sampled = KeyHolder(
        holder_id="h",
        config=config,
        public_key=public_key,
        key_share=share,
        roster=roster,
        spot_check=10,
    )
    assert sampled.detection_probability(123, tampered=1) == pytest.approx(10 / 123)
    assert sampled.detection_probability(123, tampered=123) == 1.0
    assert 0.58 < sampled.detection_probability(123, tampered=10) < 0.59  # 1 - C(113,10)/C(123,10)
    full = KeyHolder(
        holder_id="h", config=config, public_key=public_key, key_share=share, roster=roster
    )
    assert full.detection_probability(123) == 1.0
    with pytest.raises(ValueError, match="tampered"):
        full.detection_probability(5, tampered=0)


def test_the_audit_log_records_issued_and_refused_decryptions(
    finished, config, keypair, roster, layout, tmp_path
) -> None:
    import json

    from fhe_agg import SeededRandom
    from fhe_agg.identity import AuditLog, Suite, SuiteSigningKey, verify_log

    key = SuiteSigningKey.generate(Suite.PQ_ONLY, random=SeededRandom(5))
    log = AuditLog(tmp_path / "holder.jsonl", key=key, actor="kh-1")
    public_key, share = keypair
    common = {"config": config, "public_key": public_key, "key_share": share, "roster": roster}
    holder = KeyHolder(holder_id="kh-1", audit=log, **common)
    agg, aggregate = finished
    evidence = agg.evidence(holder.challenge(aggregate))
    holder.decrypt(aggregate, evidence, layout=layout)
    with pytest.raises(AlreadyDecrypted):
        holder.decrypt(aggregate, evidence, layout=layout)
    assert verify_log(log.path, {"kh-1": key.verify_key}, expected_head=log.head) == 2
    issued, refused = (json.loads(line) for line in log.path.read_text().splitlines())
    assert issued["event"] == "partial.issued" and refused["event"] == "partial.refused"
    assert issued["payload"]["decrypting_set"] == [1] and issued["payload"]["round"] == 1
    assert issued["payload"]["budget_used"] == len(aggregate.chunks)
    assert refused["payload"]["error"] == "AlreadyDecrypted"
    text = log.path.read_text()
    assert not any(str(int(v)) in text for v in share.data_level().value.ravel()[:50] if v > 10**6)
    with pytest.raises(TypeError, match="audit"):
        KeyHolder(holder_id="kh-1", audit="audit.jsonl", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audit"):
        KeyHolder(holder_id="kh-1", audit=AuditLog(tmp_path / "unbound.jsonl"), **common)
