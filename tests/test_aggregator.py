"""Every way an update can be wrong raises its own typed error and leaves the sum unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fhe_agg import (
    Aggregator,
    ChunkCountMismatch,
    Client,
    DuplicateUpdate,
    EncryptedUpdate,
    FederationConfig,
    InvalidSignature,
    InvalidWeight,
    LayoutMismatch,
    MalformedMessage,
    MessageTooLarge,
    NotInRoster,
    ParameterMismatch,
    Rejected,
    RoundMismatch,
    SignedStatement,
    SigningKey,
    ThresholdNotMet,
    flatten,
    generate_single_key,
)
from fhe_agg.protocol._messages import UPDATE_CONTEXT


@pytest.fixture
def started(make_aggregator, updates):
    """An aggregator that already accepted alpha's update, and a snapshot of its state."""
    agg = make_aggregator()
    agg.add(updates["alpha"].to_bytes())
    return agg, agg.running_sum(), agg.accepted_clients


def _assert_unchanged(started) -> None:
    agg, before, accepted = started
    after = agg.running_sum()
    assert after is not None and before is not None
    assert after.dtype == before.dtype and np.array_equal(after, before)  # bit for bit
    assert agg.accepted_clients == accepted


def _resign(update: EncryptedUpdate, key: SigningKey, **changes: object) -> EncryptedUpdate:
    statement = dataclasses.replace(update.statement, **changes)
    return EncryptedUpdate(
        SignedStatement(statement, key.sign(statement.encode(), context=UPDATE_CONTEXT)),
        update.chunks,
    )


def test_forged_signature(started, updates) -> None:
    good = updates["bravo"]
    forged = bytearray(good.signed.signature)
    forged[100] ^= 1
    bad = EncryptedUpdate(SignedStatement(good.statement, bytes(forged)), good.chunks)
    with pytest.raises(InvalidSignature):
        started[0].add(bad.to_bytes())
    _assert_unchanged(started)


def test_signature_by_another_members_key(started, updates, signing_keys) -> None:
    bad = _resign(updates["bravo"], signing_keys["charlie"])
    with pytest.raises(InvalidSignature):
        started[0].add(bad)
    _assert_unchanged(started)


def test_signature_by_a_non_roster_key(started, updates) -> None:
    bad = _resign(updates["bravo"], SigningKey.generate(), client_id="mallory")
    with pytest.raises(NotInRoster) as caught:
        started[0].add(bad)
    assert (caught.value.party, caught.value.round_id) == ("mallory", 1)
    _assert_unchanged(started)


def test_wrong_round(started, clients, vectors) -> None:
    # (another update: a client never sends the same one for two rounds)
    stale = clients["bravo"].encrypt_update(vectors["bravo"] / 2, round_id=2, weight=11.0)
    with pytest.raises(RoundMismatch) as caught:
        started[0].add(stale.to_bytes())
    assert (caught.value.party, caught.value.round_id) == ("bravo", 1)  # this round, the sender
    _assert_unchanged(started)


def test_duplicate_client(started, updates, clients, vectors) -> None:
    with pytest.raises(DuplicateUpdate):
        started[0].add(updates["alpha"].to_bytes())
    again = clients["alpha"].encrypt_update(vectors["alpha"] * 0, round_id=1, weight=3.0)
    with pytest.raises(DuplicateUpdate):
        started[0].add(again)
    _assert_unchanged(started)


def test_wrong_parameter_fingerprint(started, signing_keys, keypair, vectors) -> None:
    other = FederationConfig(min_clients=3, max_clients=8, max_weight=50.0, value_bound=4.0)
    client = Client(
        client_id="bravo", signing_key=signing_keys["bravo"], config=other, public_key=keypair[0]
    )
    with pytest.raises(ParameterMismatch, match="parameters"):
        started[0].add(client.encrypt_update(vectors["bravo"], round_id=1, weight=11.0).to_bytes())
    _assert_unchanged(started)


def test_wrong_public_key(started, signing_keys, config, vectors) -> None:
    other_pk, _ = generate_single_key(config.preset)
    client = Client(
        client_id="bravo", signing_key=signing_keys["bravo"], config=config, public_key=other_pk
    )
    with pytest.raises(ParameterMismatch, match="public key"):
        started[0].add(client.encrypt_update(vectors["bravo"], round_id=1, weight=11.0))
    _assert_unchanged(started)


def test_wrong_layout(started, clients, vectors) -> None:
    reshaped = {"w": vectors["bravo"].reshape(100, 200)}  # same length, other structure
    with pytest.raises(LayoutMismatch):
        started[0].add(clients["bravo"].encrypt_update(reshaped, round_id=1, weight=11.0))
    _assert_unchanged(started)


def test_wrong_chunk_count_signed_and_sent(started, clients, updates, layout) -> None:
    short = clients["bravo"].sign_update(
        updates["bravo"].chunks[:2], layout=layout, round_id=1, weight=11.0
    )
    with pytest.raises(ChunkCountMismatch):
        started[0].add(short.to_bytes())
    dropped = EncryptedUpdate(updates["bravo"].signed, updates["bravo"].chunks[:2])
    with pytest.raises(ChunkCountMismatch):
        started[0].add(dropped.to_bytes())
    _assert_unchanged(started)


def test_reordered_chunks_fail_the_signed_merkle_root(started, updates) -> None:
    good = updates["bravo"]
    swapped = EncryptedUpdate(good.signed, (good.chunks[1], good.chunks[0], good.chunks[2]))
    with pytest.raises(InvalidSignature, match="Merkle"):
        started[0].add(swapped.to_bytes())
    _assert_unchanged(started)


def test_protocol_version_2_updates_are_refused(started, updates, signing_keys) -> None:
    """Version 3 hashes the chunks with SHA-256: an update signed as version 2, or signing the
    version-2 Merkle root (SHA3-256, RFC 6962 prefixes) of the same chunks, is refused."""
    import hashlib
    import struct

    from fhe_agg.protocol._merkle import _split

    good, key = updates["bravo"], signing_keys["bravo"]
    with pytest.raises(ParameterMismatch, match="protocol version 2"):
        started[0].add(_resign(good, key, protocol_version=2))

    def root(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = _split(len(leaves))
        return hashlib.sha3_256(b"\x01" + root(leaves[:k]) + root(leaves[k:])).digest()

    v2 = root(
        [
            hashlib.sha3_256(b"\x00" + struct.pack("<I", i) + c).digest()
            for i, c in enumerate(good.chunks)
        ]
    )
    assert v2 != good.statement.merkle_root
    with pytest.raises(InvalidSignature, match="Merkle"):
        started[0].add(_resign(good, key, merkle_root=v2))
    _assert_unchanged(started)


def test_weight_above_the_public_bound(started, clients, updates, layout) -> None:
    heavy = clients["bravo"].sign_update(
        updates["bravo"].chunks, layout=layout, round_id=1, weight=1e9
    )
    with pytest.raises(InvalidWeight):
        started[0].add(heavy.to_bytes())
    _assert_unchanged(started)


@pytest.mark.parametrize("cut", [1, 100, 5000, -1])
def test_truncated_bytes(started, updates, cut: int) -> None:
    wire = updates["bravo"].to_bytes()
    with pytest.raises(MalformedMessage):
        started[0].add(wire[:cut])
    _assert_unchanged(started)


def test_random_bytes(started) -> None:
    rng = np.random.default_rng(11)
    for size in (0, 1, 10, 1000, 200_000):
        with pytest.raises(MalformedMessage):
            started[0].add(rng.bytes(size))
    _assert_unchanged(started)


def test_oversized_payload(started) -> None:
    agg = started[0]
    with pytest.raises(MessageTooLarge):
        agg.add(b"\x00" * (agg.bounds.update_bytes + 1))
    _assert_unchanged(started)


def test_wrong_python_type_raises_type_error(started) -> None:
    with pytest.raises(TypeError, match="update"):
        started[0].add("not an update")  # type: ignore[arg-type]
    _assert_unchanged(started)


def test_finalize_below_min_clients_keeps_round_open(started, updates) -> None:
    agg = started[0]
    with pytest.raises(ThresholdNotMet):
        agg.finalize()
    agg.add(updates["bravo"])
    agg.add(updates["charlie"])
    aggregate = agg.finalize()
    assert [s.statement.client_id for s in aggregate.manifest] == ["alpha", "bravo", "charlie"]
    with pytest.raises(Rejected, match="finalized"):
        agg.add(updates["delta"])


def test_round_capacity_is_enforced(
    keypair, signing_keys, roster, layout, vectors, tmp_path
) -> None:
    small = FederationConfig(min_clients=2, max_clients=3, max_weight=100.0, value_bound=4.0)
    agg = Aggregator(
        config=small,
        roster=roster,
        public_key=keypair[0],
        round_id=1,
        layout=layout,
        spool_dir=tmp_path,
    )
    for cid in ("alpha", "bravo", "charlie", "delta"):
        client = Client(
            client_id=cid, signing_key=signing_keys[cid], config=small, public_key=keypair[0]
        )
        update = client.encrypt_update(vectors[cid], round_id=1, weight=1.0)
        if cid == "delta":
            with pytest.raises(Rejected, match="max_clients"):
                agg.add(update)
        else:
            agg.add(update)
    assert agg.accepted_clients == ("alpha", "bravo", "charlie")


def test_client_refuses_values_outside_the_safe_range_and_bad_weights(clients, vectors) -> None:
    from fhe_agg import InvalidInput

    with pytest.raises(InvalidInput, match="safe range"):
        clients["alpha"].encrypt_update(vectors["alpha"] * 10, round_id=1, weight=1.0)
    with pytest.raises(InvalidInput, match="NaN"):
        clients["alpha"].encrypt_update(np.array([np.nan]), round_id=1, weight=1.0)
    for weight in (0.0, -1.0, float("nan"), 101.0):
        with pytest.raises(InvalidInput, match="weight"):
            clients["alpha"].encrypt_update(vectors["alpha"], round_id=1, weight=weight)
    clipped = clients["alpha"].prepare(vectors["alpha"] * 10, clip=1.0)[0]
    assert np.linalg.norm(clipped) == pytest.approx(1.0)


def test_flatten_of_a_dict_is_accepted_by_the_client(clients) -> None:
    vector, layout = flatten({"a": np.ones(3)})
    update = clients["alpha"].encrypt_update({"a": np.ones(3)}, round_id=1, weight=1.0)
    assert update.statement.layout_hash == layout.digest and vector.size == 3
