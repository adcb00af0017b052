"""A malicious aggregator (or coordinator) trying to get more than the round's mean decrypted.

Its tools: every client's signed ciphertexts of every round, the aggregates it finalized, the
released means, and the freedom to send the key holders any aggregate, manifest, evidence or
decrypting set. Every honest holder recomputes the sum from the clients' signed chunks and keeps
a log of what it decrypted, so each attempt is refused with a typed error, moves no budget, log
or accountant, and lands in the holder's signed audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest

from fhe_agg import (
    AggregateMismatch,
    Aggregator,
    AlreadyDecrypted,
    DecryptionAborted,
    DecryptionRefused,
    DecryptionSession,
    DuplicateUpdate,
    EncryptedAggregate,
    EncryptedUpdate,
    FheAggError,
    InvalidSignature,
    KeyHolder,
    MalformedMessage,
    PrivacyAccountant,
    RoundMismatch,
    SignedStatement,
    ThresholdNotMet,
    UnsupportedParameters,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.protocol._evidence import AggregateEvidence

from .conftest import (
    SET,
    WEIGHTS,
    AuditTrail,
    Consortium,
    add_chunks,
    assert_refused,
    config_for,
    evidence_for,
    pack,
    partial,
    polys,
    release,
    state_of,
)

Evidence = Callable[[tuple[int, ...]], AggregateEvidence]


@dataclass
class Rounds:
    """What the attacker holds: round 7 (released) and round 8 (finalized), all signed chunks."""

    old: EncryptedAggregate  # round 7: ana, ben, cy
    old_agg: Aggregator
    new: EncryptedAggregate  # round 8: all four clients
    new_agg: Aggregator
    ana_old: EncryptedUpdate
    ana: EncryptedUpdate  # ana's round-8 update


@pytest.fixture(scope="module")
def rounds(noisy: Consortium) -> Rounds:
    old_agg, old = noisy.collect(7, ("ana", "ben", "cy"))
    new_agg, new = noisy.collect(8)
    return Rounds(old, old_agg, new, new_agg, noisy.update("ana", 7), noisy.update("ana", 8))


@dataclass
class Scene:
    fed: Consortium
    rounds: Rounds
    holders: dict[int, KeyHolder]
    accountant: PrivacyAccountant
    trail: AuditTrail

    def state(self) -> Callable[[], tuple[object, ...]]:
        return state_of(holders=self.holders.values(), accountant=self.accountant)

    def request(self, aggregate: EncryptedAggregate, evidence: Evidence) -> Callable[[], object]:
        """Ask holder 1 for its partial of ``aggregate`` for the set (1, 2, 3)."""
        return lambda: partial(self.holders[1], aggregate, evidence, SET)


@pytest.fixture
def scene(noisy: Consortium, rounds: Rounds, trail: AuditTrail) -> Scene:
    """Fresh holders with audit logs that have already released round 7 with the set (1, 2, 3)."""
    holders = noisy.key_holders(trail.holder_logs())
    accountant = noisy.accountant()
    assert accountant is not None
    release(noisy, rounds.old_agg, holders, SET, accountant)
    assert accountant.rounds == 1
    return Scene(noisy, rounds, holders, accountant, trail)


def _with_manifest_entry(
    aggregate: EncryptedAggregate, entry: SignedStatement
) -> EncryptedAggregate:
    return replace(aggregate, manifest=(entry, *aggregate.manifest[1:]))


def _flip(signature: bytes) -> bytes:
    flipped = bytearray(signature)
    flipped[17] ^= 0x01
    return bytes(flipped)


def _crafted(fed: Consortium, aggregate: EncryptedAggregate, how: str) -> EncryptedAggregate:
    """``aggregate`` with its chunk 1 changed: a polynomial added to c0, c1 zeroed, or c1 = 1."""
    b = backend_for(fed.config.preset)
    data = polys(fed.config, aggregate.chunks).copy()
    q = np.uint64(b.data_primes[0])
    if how == "plus":
        data[1, 0, 0, :64] = (data[1, 0, 0, :64] + np.arange(1, 65, dtype=np.uint64)) % q
    elif how == "c1-zero":
        data[1, 1] = 0
    else:  # c1 = 1 in NTT form: a partial would be lambda_j * s_j + noise, the key share itself
        data[1, 1] = 1
    scale = b.parse(aggregate.chunks[0], what="chunk").scale
    return replace(aggregate, chunks=pack(fed.config, data, scale))


Fake = tuple[EncryptedAggregate, Evidence]
Build = Callable[[Consortium, Rounds], Fake]


def _attacks() -> dict[str, tuple[Build, type[FheAggError], str]]:
    """name -> (build (aggregate, evidence) from what the attacker holds, error, message)."""

    def scale(fed: Consortium, weight: float) -> float:
        return fed.config.scale * weight

    def alone(fed: Consortium, r: Rounds) -> Fake:
        return replace(r.new, chunks=r.ana.chunks), r.new_agg.evidence

    def alone_rescaled(fed: Consortium, r: Rounds) -> Fake:
        dressed = pack(fed.config, polys(fed.config, r.ana.chunks), scale(fed, r.new.total_weight))
        return replace(r.new, chunks=dressed), r.new_agg.evidence

    def alone_in_manifest(fed: Consortium, r: Rounds) -> Fake:
        chunks = pack(fed.config, polys(fed.config, r.ana.chunks), scale(fed, WEIGHTS["ana"]))
        fake = EncryptedAggregate(round_id=8, chunks=chunks, manifest=(r.ana.signed,))
        return fake, evidence_for(r.new_agg, ["ana"])

    def listed_thrice(fed: Consortium, r: Rounds) -> Fake:
        data = add_chunks(fed.config, r.ana.chunks, r.ana.chunks, r.ana.chunks)
        chunks = pack(fed.config, data, scale(fed, 3 * WEIGHTS["ana"]))
        fake = EncryptedAggregate(round_id=8, chunks=chunks, manifest=(r.ana.signed,) * 3)
        return fake, evidence_for(r.new_agg, ["ana"])

    def rescaled_to_one_weight(fed: Consortium, r: Rounds) -> Fake:
        data = polys(fed.config, r.new.chunks)
        return replace(
            r.new, chunks=pack(fed.config, data, scale(fed, WEIGHTS["ana"]))
        ), r.new_agg.evidence

    def weight_edited(fed: Consortium, r: Rounds) -> Fake:
        ana = r.new.manifest[0]
        heavier = replace(ana, statement=replace(ana.statement, weight=10.0))
        return _with_manifest_entry(r.new, heavier), r.new_agg.evidence

    def on_old_aggregate(fed: Consortium, r: Rounds) -> Fake:
        data = add_chunks(fed.config, r.old.chunks, r.ana.chunks)
        return replace(
            r.new, chunks=pack(fed.config, data, scale(fed, r.new.total_weight))
        ), r.new_agg.evidence

    def old_replayed(fed: Consortium, r: Rounds) -> Fake:
        return r.old, r.old_agg.evidence

    def crafted(how: str) -> Build:
        return lambda fed, r: (_crafted(fed, r.new, how), r.new_agg.evidence)

    def below_min_clients(fed: Consortium, r: Rounds) -> Fake:
        pair = [u.signed for u in (r.ana, fed.update("ben", 8))]
        data = add_chunks(fed.config, r.ana.chunks, fed.update("ben", 8).chunks)
        weight = WEIGHTS["ana"] + WEIGHTS["ben"]
        fake = EncryptedAggregate(
            round_id=8, chunks=pack(fed.config, data, scale(fed, weight)), manifest=tuple(pair)
        )
        return fake, evidence_for(r.new_agg, ["ana", "ben"])

    def missing_from_sum(fed: Consortium, r: Rounds) -> Fake:
        three = [fed.update(c, 8).chunks for c in ("ana", "ben", "cy")]
        data = add_chunks(fed.config, *three)
        return replace(
            r.new, chunks=pack(fed.config, data, scale(fed, r.new.total_weight))
        ), r.new_agg.evidence

    def old_manifest(fed: Consortium, r: Rounds) -> Fake:
        return replace(r.new, manifest=r.old.manifest), r.old_agg.evidence

    def forged_signature(fed: Consortium, r: Rounds) -> Fake:
        ana = r.new.manifest[0]
        return _with_manifest_entry(
            r.new, replace(ana, signature=_flip(ana.signature))
        ), r.new_agg.evidence

    def omitted_signature(fed: Consortium, r: Rounds) -> Fake:
        return _with_manifest_entry(r.new, replace(r.new.manifest[0], signature=b"")), (
            r.new_agg.evidence
        )

    def moved_signature(fed: Consortium, r: Rounds) -> Fake:
        moved = replace(r.new.manifest[0], signature=r.ana_old.signed.signature)
        return _with_manifest_entry(r.new, moved), r.new_agg.evidence

    T = AggregateMismatch, ThresholdNotMet, InvalidSignature
    return {
        "one client's ciphertext as the aggregate": (alone, T[0], "scale"),
        "one client's ciphertext rescaled to the manifest": (alone_rescaled, T[0], "not the sum"),
        "one client alone in the manifest": (alone_in_manifest, T[1], "min_clients"),
        "one client listed min_clients times": (listed_thrice, DuplicateUpdate, "twice"),
        "aggregate rescaled to one client's weight": (rescaled_to_one_weight, T[0], "scale"),
        "a client's signed weight edited": (weight_edited, T[2], "does not verify"),
        "one ciphertext added to an old released aggregate": (on_old_aggregate, T[0], "not the"),
        "an already released aggregate replayed": (old_replayed, AlreadyDecrypted, "round 7"),
        "a crafted polynomial added to one chunk": (crafted("plus"), T[0], "chunk 1 is not"),
        "c1 of one chunk zeroed": (crafted("c1-zero"), MalformedMessage, "transparent"),
        "c1 of one chunk set to 1 to extract the key share": (crafted("c1-one"), T[0], "chunk 1"),
        "a subset below min_clients": (below_min_clients, T[1], "min_clients"),
        "a manifest client whose chunks are not in the sum": (missing_from_sum, T[0], "not the"),
        "an old round's signed statements as the manifest": (old_manifest, RoundMismatch, "7"),
        "a forged manifest signature": (forged_signature, T[2], "does not verify"),
        "an omitted manifest signature": (omitted_signature, T[2], "3309 bytes"),
        "a signature moved from the client's old-round statement": (
            moved_signature,
            T[2],
            "verify",
        ),
    }


ATTACKS = _attacks()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_crafted_aggregate_is_refused_and_changes_nothing(scene: Scene, name: str) -> None:
    build, error, match = ATTACKS[name]
    aggregate, evidence = build(scene.fed, scene.rounds)
    assert_refused(
        scene.request(aggregate, evidence),
        error,
        state=scene.state(),
        trail=scene.trail,
        actor="holder-1",
        event="partial.refused",
        match=match,
    )
    # nothing was spent: the honest round still releases with the same set and accountant
    r = scene.rounds
    mean = release(scene.fed, r.new_agg, scene.holders, SET, scene.accountant)
    assert mean.shape == (scene.fed.layout.length,) and scene.accountant.rounds == 2
    issued = [e for e in scene.trail.entries("holder-1") if e["event"] == "partial.issued"]
    assert [e["payload"]["round"] for e in issued] == [7, 8]


def test_a_second_request_for_the_same_aggregate_is_refused(scene: Scene) -> None:
    r, holders = scene.rounds, scene.holders
    release(scene.fed, r.new_agg, holders, SET, scene.accountant)
    for members in (SET, (1, 2, 4)):
        assert_refused(
            lambda m=members: partial(holders[1], r.new, r.new_agg.evidence, m),
            AlreadyDecrypted,
            state=scene.state(),
            trail=scene.trail,
            actor="holder-1",
            event="partial.refused",
        )
    issued = [e for e in scene.trail.entries("holder-1") if e["event"] == "partial.issued"][-1]
    assert issued["payload"]["decrypting_set"] == list(SET)
    assert issued["payload"]["budget_used"] == 2 * len(r.new.chunks)
    recorded = json.dumps(scene.trail.entries("holder-1"))
    assert "operand" not in recorded and "<secret>" not in recorded


def test_another_subset_of_a_released_round_finds_a_holder_who_refuses(scene: Scene) -> None:
    """Differencing (all four, then three of them) needs two decryptions of one round; with
    threshold > n/2 every two decrypting sets share a holder, and that holder refuses."""
    fed, r, holders = scene.fed, scene.rounds, scene.holders
    release(fed, r.new_agg, holders, SET, scene.accountant)
    agg3, three = fed.collect(8, ("ana", "ben", "cy"))
    other = (3, 4, 5)
    session = DecryptionSession(
        three,
        config=fed.config,
        layout=fed.layout,
        decrypting_set=other,
        accountant=scene.accountant,
    )
    assert_refused(
        lambda: partial(holders[3], three, agg3.evidence, other),
        AlreadyDecrypted,
        state=scene.state(),
        trail=scene.trail,
        actor="holder-3",
        event="partial.refused",
    )
    for j in (4, 5):
        session.add(partial(holders[j], three, agg3.evidence, other))
    with pytest.raises(DecryptionAborted):
        session.release()
    assert scene.accountant.rounds == 2  # rounds 7 and 8, nothing more


@pytest.mark.parametrize(("holders", "threshold"), [(2, 1), (4, 2), (5, 2), (6, 3)])
def test_a_threshold_that_allows_disjoint_decrypting_sets_is_refused(
    holders: int, threshold: int
) -> None:
    with pytest.raises(UnsupportedParameters, match="disjoint"):
        config_for("compact", holders=holders, threshold=threshold)


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ((2, 3, 4), DecryptionRefused),  # a set the holder is not in
        ((1, 2, 9), DecryptionRefused),  # a holder that does not exist
        ((1, 2), ThresholdNotMet),  # too few to decrypt
        ((1, 1, 2), ThresholdNotMet),  # one holder twice
    ],
)
def test_a_request_naming_a_bad_decrypting_set_is_refused(
    scene: Scene, members: tuple[int, ...], error: type[FheAggError]
) -> None:
    r = scene.rounds
    assert_refused(
        lambda: partial(scene.holders[1], r.new, r.new_agg.evidence, members),
        error,
        state=scene.state(),
        trail=scene.trail,
        actor="holder-1",
        event="partial.refused",
        match="decrypting_set",
    )
