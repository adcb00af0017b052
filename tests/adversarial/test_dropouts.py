"""Dropouts: clients and key holders that vanish, cut off or go quiet at any point of a round.

Clients: a round completes with whoever remains if at least ``min_clients`` do, and
``finalize`` raises :class:`~fhe_agg.ThresholdNotMet` (the round stays open) otherwise; a
message cut or garbled in transit is refused and changes nothing; an update whose connection
dies is counted fully or not at all, never twice.

Key holders (3 of 5 here, so up to ``n - t = 2`` may drop): a set of live holders is fixed
before any partial exists. If a member of it drops mid-way the session aborts
(:class:`~fhe_agg.DecryptionAborted`); the partials already made are never combined with
another set (each holder refuses the same ciphertexts twice), and the round is run again with
fresh encryptions under a new round id by a set without the dropped holder. With
``n - t + 1`` holders down no set exists and nothing completes. Clients send the same update
for a new round only once ``n - t + 1`` holders that never issued a partial of the old round
have voted to abort it (an abort certificate), so the old round can never be completed.
"""

from __future__ import annotations

import numpy as np
import pytest

from fhe_agg import (
    AbortCertificate,
    AlreadyDecrypted,
    DecryptionAborted,
    DecryptionSession,
    DuplicateUpdate,
    InvalidProof,
    InvalidSignature,
    MalformedMessage,
    RoundAborted,
    RoundNotClosed,
    ThresholdNotMet,
    combine,
)
from fhe_agg.protocol._messages import chunk_digests

from .conftest import (
    CLIENTS,
    SET,
    WEIGHTS,
    AuditTrail,
    Consortium,
    assert_refused,
    partial,
    release,
    state_of,
)

HOLDERS = (1, 2, 3, 4, 5)


def _live_set(fed: Consortium, down: tuple[int, ...]) -> tuple[int, ...]:
    """The decrypting set a coordinator fixes: the first ``threshold`` holders still up."""
    return tuple(j for j in HOLDERS if j not in down)[: fed.config.threshold]


def _assert_mean_of(fed: Consortium, mean: np.ndarray, who: tuple[str, ...], weight: float) -> None:
    tolerance = fed.tolerance(weight)
    assert np.max(np.abs(mean - fed.expected(who))) < tolerance
    if set(who) != set(CLIENTS):  # and it is visibly not the mean of everybody
        assert np.max(np.abs(mean - fed.expected(CLIENTS))) > 10 * tolerance


# -- clients -----------------------------------------------------------------------------------


def _cut(wire: bytes) -> bytes:
    return wire[: len(wire) // 2]


def _garbled(wire: bytes, where: float) -> bytes:
    """64 bytes zeroed at fraction ``where`` of the message: the chunks come first (after the
    signed statement), the proofs after them (most of the bytes)."""
    noisy = bytearray(wire)
    start = int(len(noisy) * where)
    noisy[start : start + 64] = bytes(64)
    return bytes(noisy)


_GARBLED_AT = {"garbled": 0.01, "garbled in a proof": 0.5}


@pytest.mark.parametrize("dropped", ["ana", "dee"])
@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("never sends", None),
        ("cut off midway", MalformedMessage),
        ("garbled", InvalidSignature),
        ("garbled in a proof", InvalidProof),
    ],
)
def test_the_round_completes_with_the_clients_that_remain(
    plain: Consortium,
    trail: AuditTrail,
    dropped: str,
    how: str,
    error: type[MalformedMessage] | None,
) -> None:
    agg = plain.aggregator(20, audit=trail.log("aggregator"))
    for cid in CLIENTS:
        wire = plain.update(cid, 20).to_bytes()
        if cid != dropped:
            agg.add(wire)
        elif error is not None:
            broken = _cut(wire) if how == "cut off midway" else _garbled(wire, _GARBLED_AT[how])
            assert_refused(
                lambda b=broken: agg.add(b),
                error,
                state=state_of(aggregator=agg),
                trail=trail,
                actor="aggregator",
                event="update.rejected",
            )
    remaining = tuple(c for c in CLIENTS if c != dropped)
    aggregate = agg.finalize()
    assert agg.accepted_clients == remaining
    mean = release(plain, agg, plain.key_holders())
    _assert_mean_of(plain, mean, remaining, aggregate.total_weight)


def test_below_min_clients_finalize_raises_and_the_round_stays_open(plain: Consortium) -> None:
    agg = plain.aggregator(21)
    for cid in ("ben", "dee"):  # ana and cy have not sent (yet)
        agg.add(plain.update(cid, 21).to_bytes())
    assert_refused(agg.finalize, ThresholdNotMet, state=state_of(aggregator=agg), match="2 updates")
    agg.add(plain.update("ana", 21).to_bytes())  # a late client arrives before the deadline
    aggregate = agg.finalize()
    mean = release(plain, agg, plain.key_holders())
    _assert_mean_of(plain, mean, ("ben", "dee", "ana"), aggregate.total_weight)


def test_an_update_whose_connection_dies_counts_fully_or_not_at_all(
    plain: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    agg = plain.aggregator(22)
    snapshot = state_of(aggregator=agg)
    # ana: the connection dies mid-transfer; the aggregator got a prefix, then ana sends again
    wire = plain.update("ana", 22).to_bytes()
    assert_refused(lambda: agg.add(wire[:70_000]), MalformedMessage, state=snapshot)
    agg.add(wire)
    # ben: delivered, but the acknowledgement was lost; ben retries, with the same bytes and
    # then with a fresh encryption of the same data; the first copy counts, once
    agg.add(plain.update("ben", 22).to_bytes())
    fresh = plain.client("ben").encrypt_update(plain.data["ben"], round_id=22, weight=5.0)
    for retry in (plain.update("ben", 22).to_bytes(), fresh.to_bytes()):
        assert_refused(lambda r=retry: agg.add(r), DuplicateUpdate, state=snapshot)
    # cy: the aggregator itself fails while storing the update (disk error): nothing counts
    spool = agg._spool

    def full_disk(*written: tuple[bytes, ...]) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(spool, "write", full_disk)
        before = snapshot()
        with pytest.raises(OSError, match="No space"):
            agg.add(plain.update("cy", 22).to_bytes())
        assert snapshot() == before
    agg.add(plain.update("cy", 22).to_bytes())  # cy retries once the disk is back
    agg.add(plain.update("dee", 22).to_bytes())
    assert agg.accepted_clients == CLIENTS
    aggregate = agg.finalize()
    mean = release(plain, agg, plain.key_holders())
    _assert_mean_of(plain, mean, CLIENTS, aggregate.total_weight)


# -- key holders -------------------------------------------------------------------------------


@pytest.mark.parametrize("down", [(), (5,), (1,), (2, 4), (1, 5)])
def test_up_to_n_minus_t_holders_down_before_decryption(
    plain: Consortium, down: tuple[int, ...]
) -> None:
    holders = plain.key_holders()
    agg, aggregate = plain.collect(30)
    members = _live_set(plain, down)
    assert not set(members) & set(down)
    mean = release(plain, agg, holders, members)
    _assert_mean_of(plain, mean, CLIENTS, aggregate.total_weight)


@pytest.mark.parametrize("gone", [(3,), (2, 3)])
def test_holders_dropping_during_decryption_abort_and_the_round_reruns(
    plain: Consortium, trail: AuditTrail, gone: tuple[int, ...]
) -> None:
    holders = plain.key_holders(trail.holder_logs())
    agg, aggregate = plain.collect(31)
    session = DecryptionSession(
        aggregate, config=plain.config, layout=plain.layout, decrypting_set=SET
    )
    delivered = [j for j in SET if j not in gone]
    for j in delivered:
        session.add(partial(holders[j], aggregate, agg.evidence))
    assert session.missing == gone
    with pytest.raises(DecryptionAborted, match="re-run"):
        session.release()
    assert session.state == "aborted"
    # the partials made cannot be completed by any other set: their holders refuse the same
    # ciphertexts again, whoever else is named
    everyone = state_of(holders=holders.values())
    for j in delivered:
        other = (j, 4, 5)  # any other set that keeps this holder
        assert_refused(
            lambda h=holders[j], m=other: partial(h, aggregate, agg.evidence, m),
            AlreadyDecrypted,
            state=everyone,
            trail=trail,
            actor=f"holder-{j}",
            event="partial.refused",
        )
    # the safe path: fresh encryptions under a new round id, a set without the dropped holders
    agg2, rerun = plain.collect(32)
    assert not set(chunk_digests(rerun.chunks)) & set(chunk_digests(aggregate.chunks))
    members = _live_set(plain, gone)
    mean = release(plain, agg2, holders, members)
    _assert_mean_of(plain, mean, CLIENTS, rerun.total_weight)
    issued = {
        j: [
            e["payload"]["round"]
            for e in trail.entries(f"holder-{j}")
            if e["event"] == "partial.issued"
        ]
        for j in HOLDERS
    }
    assert all(issued[j] == [31, 32] for j in delivered if j in members)
    assert all(31 not in issued[j] for j in gone)


def test_a_partial_lost_in_transit_is_not_issued_again(
    plain: Consortium, trail: AuditTrail
) -> None:
    holders = plain.key_holders(trail.holder_logs())
    agg, aggregate = plain.collect(33)
    session = DecryptionSession(
        aggregate, config=plain.config, layout=plain.layout, decrypting_set=SET
    )
    for j in (1, 2):
        session.add(partial(holders[j], aggregate, agg.evidence))
    partial(holders[3], aggregate, agg.evidence)  # computed, then lost on the way
    assert_refused(
        lambda: partial(holders[3], aggregate, agg.evidence),
        AlreadyDecrypted,
        state=state_of(holders=holders.values()),
        trail=trail,
        actor="holder-3",
        event="partial.refused",
    )
    with pytest.raises(DecryptionAborted):
        session.release()


def test_an_aborted_dp_round_spends_no_privacy_and_the_rerun_spends_once(
    noisy: Consortium,
) -> None:
    holders = noisy.key_holders()
    accountant = noisy.accountant()
    assert accountant is not None
    agg, aggregate = noisy.collect(34)
    session = DecryptionSession(
        aggregate,
        config=noisy.config,
        layout=noisy.layout,
        decrypting_set=SET,
        accountant=accountant,
    )
    session.add(partial(holders[1], aggregate, agg.evidence))
    with pytest.raises(DecryptionAborted):
        session.release()
    assert accountant.rounds == 0
    agg2, _rerun = noisy.collect(35)
    release(noisy, agg2, holders, (1, 4, 5), accountant)
    assert accountant.rounds == 1


def test_n_minus_t_plus_one_holders_down_cannot_complete(plain: Consortium) -> None:
    down = (3, 4, 5)
    holders = plain.key_holders()
    agg, aggregate = plain.collect(36)
    live = tuple(j for j in HOLDERS if j not in down)
    assert len(live) == plain.config.threshold - 1
    with pytest.raises(ThresholdNotMet, match="needs 3"):
        DecryptionSession(aggregate, config=plain.config, layout=plain.layout, decrypting_set=live)
    for j in live:  # no holder decrypts for a set too small
        with pytest.raises(ThresholdNotMet, match="decrypting_set"):
            partial(holders[j], aggregate, agg.evidence, live)
    # a full set must name a holder that is down: it aborts, and what the live ones made is
    # useless on its own
    session = DecryptionSession(
        aggregate, config=plain.config, layout=plain.layout, decrypting_set=SET
    )
    made = [partial(holders[j], aggregate, agg.evidence) for j in live]
    for p in made:
        session.add(p)
    with pytest.raises(DecryptionAborted):
        session.release()
    with pytest.raises(ThresholdNotMet):
        combine(aggregate, made, config=plain.config, layout=plain.layout)
    # re-running the round does not help while the holders stay down
    _, rerun = plain.collect(37)
    with pytest.raises(ThresholdNotMet):
        DecryptionSession(rerun, config=plain.config, layout=plain.layout, decrypting_set=live)


def test_an_aborted_round_cannot_be_completed_later_by_the_absent_holder(
    plain: Consortium, trail: AuditTrail
) -> None:
    """The attack: round 40 aborts with holder 3 "dropped" after 1 and 2 issued; the round is
    re-run as 41 without cy, with the others' same updates, and holder 3 is later asked for its
    partial of 40, so that ``40 - 41`` is cy's update. Clients refuse to re-send an update until
    shown an abort certificate, and the holders who vote for it never decrypt round 40."""
    holders = plain.key_holders(trail.holder_logs())
    clients = {c: plain.client(c) for c in CLIENTS}  # one client object per member, all along

    def send(cid: str, round_id: int) -> bytes:
        update = clients[cid].encrypt_update(
            plain.data[cid], round_id=round_id, weight=WEIGHTS[cid]
        )
        return update.to_bytes()

    agg = plain.aggregator(40)
    for cid in CLIENTS:
        agg.add(send(cid, 40))
    aggregate = agg.finalize()
    kept = [partial(holders[j], aggregate, agg.evidence) for j in (1, 2)]  # holder 3 "dropped"
    # (a) without a certificate, the clients will not re-send the same update for round 41
    for cid in ("ana", "ben", "dee"):
        with pytest.raises(RoundNotClosed, match="round 40"):
            send(cid, 41)
    # (b) the holders that issued a partial of round 40 cannot vow never to decrypt it
    everyone = state_of(holders=holders.values())
    for j in (1, 2):
        assert_refused(
            lambda h=holders[j]: h.vote_abort(40),
            AlreadyDecrypted,
            state=everyone,
            trail=trail,
            actor=f"holder-{j}",
            event="round.abort_refused",
        )
    # (c) n - t + 1 = 3 holders that did not issue vote; the clients check the certificate
    votes = tuple(holders[j].vote_abort(40) for j in (3, 4, 5))
    wire = AbortCertificate(40, votes).to_bytes()
    for cid in CLIENTS:
        clients[cid].accept_abort(AbortCertificate.from_bytes(wire, config=plain.config))
    agg2 = plain.aggregator(41)
    for cid in ("ana", "ben", "dee"):  # cy dropped from the re-run
        agg2.add(send(cid, 41))
    rerun = agg2.finalize()
    rerun_mean = release(plain, agg2, holders, (1, 2, 4))
    _assert_mean_of(plain, rerun_mean, ("ana", "ben", "dee"), rerun.total_weight)
    # holder 3 is back and asked for round 40: it voted, so it refuses, and nothing completes
    assert holders[3].aborted_rounds == (40,)
    assert_refused(
        lambda: partial(holders[3], aggregate, agg.evidence),
        RoundAborted,
        state=state_of(holders=holders.values()),
        trail=trail,
        actor="holder-3",
        event="partial.refused",
    )
    for j in (4, 5):  # any other set for round 40 contains a voter
        with pytest.raises(RoundAborted):
            partial(holders[j], aggregate, agg.evidence, (1, 2, j))
    with pytest.raises(ThresholdNotMet):
        combine(aggregate, kept, config=plain.config, layout=plain.layout)
    voted = [e for e in trail.entries("holder-3") if e["event"] == "round.abort_voted"]
    assert [e["payload"]["round"] for e in voted] == [40]
