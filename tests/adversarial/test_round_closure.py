"""Abort certificates: what a client accepts as proof that a round is closed, and what a holder's
vow to abort a round survives.

A certificate needs votes of ``holders - threshold + 1`` (here 3) distinct holders for its round,
each signed under that holder's identity key and bound to this key epoch's public key. Anything
less is refused with a typed error, and the client then still refuses to re-send its update.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fhe_agg import (
    AbortCertificate,
    AbortVote,
    AlreadyDecrypted,
    Client,
    FheAggError,
    InvalidSignature,
    KeyHolder,
    MalformedMessage,
    NotInRoster,
    ParameterMismatch,
    RoundAborted,
    RoundMismatch,
    RoundNotClosed,
    ThresholdNotMet,
)

from .conftest import CLIENTS, WEIGHTS, Consortium, assert_refused, partial, state_of

ROUND = 50


def _vote(fed: Consortium, j: int, round_id: int = ROUND, **change: object) -> AbortVote:
    """Holder ``j``'s genuine vote (or one with a field forged, signed by ``j``'s key)."""
    fields: dict[str, object] = {
        "round_id": round_id,
        "holder_index": j,
        "public_key_fingerprint": fed.public_key.fingerprint,
    }
    fields.update(change)
    return AbortVote.sign(fed.holder_signing[j], **fields)  # type: ignore[arg-type]


def _forged_signature(fed: Consortium) -> AbortVote:
    genuine = _vote(fed, 5)
    flipped = bytes([genuine.signature[0] ^ 1]) + genuine.signature[1:]
    return AbortVote(ROUND, 5, genuine.public_key_fingerprint, flipped)


def _signed_by_another(fed: Consortium) -> AbortVote:
    """Holder 4 signs a vote that names holder 5."""
    statement = _vote(fed, 5)
    other = AbortVote.sign(
        fed.holder_signing[4],
        round_id=ROUND,
        holder_index=5,
        public_key_fingerprint=fed.public_key.fingerprint,
    )
    return AbortVote(ROUND, 5, statement.public_key_fingerprint, other.signature)


BAD: dict[str, tuple[Callable[[Consortium], tuple[AbortVote, ...]], type[FheAggError]]] = {
    "too few votes": (lambda f: (_vote(f, 3), _vote(f, 4)), ThresholdNotMet),
    "a voter twice": (lambda f: (_vote(f, 3), _vote(f, 4), _vote(f, 4)), ThresholdNotMet),
    "a vote for another round": (
        lambda f: (_vote(f, 3), _vote(f, 4), _vote(f, 5, ROUND + 1)),
        RoundMismatch,
    ),
    "a vote under another public key": (
        lambda f: (_vote(f, 3), _vote(f, 4), _vote(f, 5, public_key_fingerprint=bytes(32))),
        ParameterMismatch,
    ),
    "a forged signature": (
        lambda f: (_vote(f, 3), _vote(f, 4), _forged_signature(f)),
        InvalidSignature,
    ),
    "signed by another holder": (
        lambda f: (_vote(f, 3), _vote(f, 4), _signed_by_another(f)),
        InvalidSignature,
    ),
    "an unknown holder": (
        lambda f: (_vote(f, 3), _vote(f, 4), _vote(f, 5, holder_index=6)),
        NotInRoster,
    ),
}


def _sent(fed: Consortium, cid: str = "ana") -> Client:
    client = fed.client(cid)
    client.encrypt_update(fed.data[cid], round_id=ROUND, weight=WEIGHTS[cid])
    return client


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_certificate_is_refused_and_the_client_still_refuses(
    plain: Consortium, case: str
) -> None:
    make, error = BAD[case]
    certificate = AbortCertificate(ROUND, make(plain))
    with pytest.raises(error) as caught:
        certificate.verify(plain.holder_keys, config=plain.config, public_key=plain.public_key)
    assert type(caught.value) is error
    client = _sent(plain)
    with pytest.raises(error):
        client.accept_abort(certificate)
    with pytest.raises(RoundNotClosed):
        client.encrypt_update(plain.data["ana"], round_id=ROUND + 1, weight=WEIGHTS["ana"])


def test_a_valid_certificate_opens_exactly_its_round(plain: Consortium) -> None:
    certificate = AbortCertificate(ROUND, tuple(_vote(plain, j) for j in (5, 1, 3)))
    certificate.verify(plain.holder_keys, config=plain.config, public_key=plain.public_key)
    client = _sent(plain)
    client.accept_abort(certificate)
    # the same update may now go to round 51; from then on round 51 is the one to close
    client.encrypt_update(plain.data["ana"], round_id=ROUND + 1, weight=WEIGHTS["ana"])
    client.encrypt_update(plain.data["ana"], round_id=ROUND + 1, weight=WEIGHTS["ana"])  # retry
    with pytest.raises(RoundNotClosed, match=f"round {ROUND + 1}"):
        client.encrypt_update(plain.data["ana"], round_id=ROUND + 2, weight=WEIGHTS["ana"])
    # the same update at another weight is the same vector: still refused
    with pytest.raises(RoundNotClosed, match=f"round {ROUND + 1}"):
        client.encrypt_update(plain.data["ana"], round_id=ROUND + 2, weight=2 * WEIGHTS["ana"])
    # another update is a different vector
    client.encrypt_update(plain.data["ana"] * 0.5, round_id=ROUND + 2, weight=WEIGHTS["ana"])


def test_a_client_without_holder_keys_cannot_accept_a_certificate(plain: Consortium) -> None:
    client = Client(
        client_id="ana",
        signing_key=plain.signing["ana"],
        config=plain.config,
        public_key=plain.public_key,
    )
    certificate = AbortCertificate(ROUND, tuple(_vote(plain, j) for j in (3, 4, 5)))
    with pytest.raises(ValueError, match="holder_keys"):
        client.accept_abort(certificate)


def test_certificate_bytes_round_trip_and_refuse_garbage(plain: Consortium) -> None:
    certificate = AbortCertificate(ROUND, tuple(_vote(plain, j) for j in (3, 4, 5)))
    wire = certificate.to_bytes()
    back = AbortCertificate.from_bytes(wire, config=plain.config)
    assert back == certificate and back.voters == (3, 4, 5)
    vote = certificate.votes[0]
    assert AbortVote.from_bytes(vote.to_bytes(), config=plain.config) == vote
    twice = AbortCertificate(ROUND, (*certificate.votes, certificate.votes[0])).to_bytes()
    for bad in (
        wire[:-1],
        wire + b"\0",
        b"",
        twice,
        wire.replace(b"abort-certificate", b"abort-certificatf"),
    ):
        with pytest.raises(MalformedMessage):
            AbortCertificate.from_bytes(bad, config=plain.config)


def _holder(fed: Consortium, j: int, store: Path) -> KeyHolder:
    return KeyHolder(
        holder_id=f"holder-{j}",
        config=fed.config,
        public_key=fed.public_key,
        key_share=fed.shares[j],
        roster=fed.roster,
        store=store,
        signing_key=fed.holder_signing[j],
    )


def test_a_vote_survives_a_restart_of_a_store_backed_holder(
    plain: Consortium, tmp_path: Path
) -> None:
    store = tmp_path / "holder-3.sqlite"
    holder = _holder(plain, 3, store)
    agg, aggregate = plain.collect(ROUND)
    vote = holder.vote_abort(ROUND)
    assert holder.vote_abort(ROUND).round_id == vote.round_id  # idempotent
    holder.close()  # killed right after the vote left
    restarted = _holder(plain, 3, store)
    assert restarted.aborted_rounds == (ROUND,)
    assert_refused(
        lambda: partial(restarted, aggregate, agg.evidence),
        RoundAborted,
        state=state_of(holders=[restarted]),
    )
    restarted.close()
    # and the other way round: a holder that issued cannot vote, after a restart too
    store4 = tmp_path / "holder-4.sqlite"
    issued = _holder(plain, 4, store4)
    partial(issued, aggregate, agg.evidence, (1, 2, 4))
    issued.close()
    again = _holder(plain, 4, store4)
    assert_refused(
        lambda: again.vote_abort(ROUND), AlreadyDecrypted, state=state_of(holders=[again])
    )
    again.close()


def test_a_holder_without_its_identity_key_cannot_vote(plain: Consortium) -> None:
    holder = KeyHolder(
        holder_id="holder-3",
        config=plain.config,
        public_key=plain.public_key,
        key_share=plain.shares[3],
        roster=plain.roster,
    )
    with pytest.raises(ValueError, match="signing_key"):
        holder.vote_abort(ROUND)
    assert holder.aborted_rounds == ()


def _stateful(fed: Consortium, cid: str, state: Path) -> Client:
    return Client(
        client_id=cid,
        signing_key=fed.signing[cid],
        config=fed.config,
        public_key=fed.public_key,
        holder_keys=fed.holder_keys,
        state=state,
    )


def test_a_reweighted_resend_is_refused_and_the_refusal_survives_a_restart(
    plain: Consortium, tmp_path: Path
) -> None:
    """The attack: round 60 of {ana, ben, cy} stalls after holder 1's partial; round 61 has ana
    and ben send their same vectors at double weight, then the holder that never voted completes
    round 60, and ``2 * mean60 * W60 - mean61 * W61`` is cy's update. The clients' memory covers
    the unweighted vector, in a file, so the re-weighted re-send is refused, after a restart too."""
    holders = plain.key_holders()
    clients = {c: _stateful(plain, c, tmp_path / f"client-{c}.sqlite") for c in CLIENTS}
    agg = plain.aggregator(60)
    for cid in ("ana", "ben", "cy"):
        update = clients[cid].encrypt_update(plain.data[cid], round_id=60, weight=WEIGHTS[cid])
        agg.add(update.to_bytes())
    aggregate = agg.finalize()
    partial(holders[1], aggregate, agg.evidence)  # then the round stalls
    for cid in ("ana", "ben"):
        with pytest.raises(RoundNotClosed, match="round 60"):
            clients[cid].encrypt_update(plain.data[cid], round_id=61, weight=2 * WEIGHTS[cid])
        with pytest.raises(RoundNotClosed, match="round 60"):  # any weight, pre-weighted path too
            clients[cid].encrypt_chunks(plain.data[cid], round_id=61, weight=0.5)
        clients[cid].close()
        restarted = _stateful(plain, cid, tmp_path / f"client-{cid}.sqlite")
        with pytest.raises(RoundNotClosed, match="round 60"):
            restarted.encrypt_update(plain.data[cid], round_id=61, weight=2 * WEIGHTS[cid])
        # a lost upload may still be re-encrypted for round 60 itself
        restarted.encrypt_update(plain.data[cid], round_id=60, weight=WEIGHTS[cid])
        restarted.close()
    # a certificate accepted before a restart still opens round 60 after it
    votes = tuple(holders[j].vote_abort(60) for j in (3, 4, 5))
    ana = _stateful(plain, "ana", tmp_path / "client-ana.sqlite")
    ana.accept_abort(AbortCertificate(60, votes))
    ana.close()
    again = _stateful(plain, "ana", tmp_path / "client-ana.sqlite")
    again.encrypt_update(plain.data["ana"], round_id=61, weight=2 * WEIGHTS["ana"])
    with pytest.raises(RoundNotClosed, match="round 61"):
        again.encrypt_update(plain.data["ana"], round_id=62, weight=WEIGHTS["ana"])
    again.close()


def test_a_client_state_file_of_another_client_or_key_is_refused(
    plain: Consortium, tmp_path: Path
) -> None:
    state = tmp_path / "client.sqlite"
    _stateful(plain, "ana", state).close()
    with pytest.raises(ParameterMismatch, match="client"):
        _stateful(plain, "ben", state)
