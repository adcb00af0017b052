"""Property tests of abort certificates: any set of votes round-trips through the wire format;
damaged bytes are refused with :class:`MalformedMessage` or parse to a certificate that
round-trips too, and whose verification either passes with enough genuine votes or raises only
the documented refusals (``Rejected`` subclasses, ``ThresholdNotMet``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhe_agg import (
    AbortCertificate,
    AbortVote,
    FederationConfig,
    MalformedMessage,
    PublicKey,
    Rejected,
    SigningKey,
    ThresholdNotMet,
    VerifyKey,
)

from .mutations import PARSER_SETTINGS, damaged, refuse_or_parse

HOLDERS, THRESHOLD = 5, 3


@pytest.fixture(scope="module")
def cfg() -> FederationConfig:
    return FederationConfig(
        min_clients=3,
        max_clients=4,
        max_weight=10.0,
        value_bound=1.0,
        holders=HOLDERS,
        threshold=THRESHOLD,
    )


@pytest.fixture(scope="module")
def holder_keys() -> dict[int, SigningKey]:
    return {j: SigningKey.generate() for j in range(1, HOLDERS + 1)}


@pytest.fixture(scope="module")
def votes(holder_keys, keypair) -> dict[tuple[int, int], AbortVote]:
    """Genuine votes of every holder for rounds 7 and 8 (signing is the slow part)."""
    public_key: PublicKey = keypair[0]
    return {
        (r, j): AbortVote.sign(
            k, round_id=r, holder_index=j, public_key_fingerprint=public_key.fingerprint
        )
        for r in (7, 8)
        for j, k in holder_keys.items()
    }


def _verify(cert: AbortCertificate, keys: dict[int, VerifyKey], cfg, public_key) -> bool:
    try:
        cert.verify(keys, config=cfg, public_key=public_key)
    except (Rejected, ThresholdNotMet):
        return False
    return True


@PARSER_SETTINGS
@given(
    data=st.data(),
    picks=st.lists(st.tuples(st.sampled_from([7, 8]), st.integers(1, HOLDERS)), max_size=HOLDERS),
)
def test_certificates_round_trip_and_damage_is_refused(
    data, picks, votes, holder_keys, cfg, keypair
) -> None:
    public_key = keypair[0]
    keys = {j: k.verify_key for j, k in holder_keys.items()}
    chosen = tuple(votes[p] for p in dict.fromkeys(picks))  # each (round, holder) once
    cert = AbortCertificate(7, chosen)
    distinct = len({v.holder_index for v in chosen}) == len(chosen)
    wire = cert.to_bytes()
    if distinct:
        assert AbortCertificate.from_bytes(wire, config=cfg) == cert
    else:  # a holder listed twice never parses
        with pytest.raises(MalformedMessage):
            AbortCertificate.from_bytes(wire, config=cfg)
    ok = _verify(cert, keys, cfg, public_key)
    closing = {v.holder_index for v in chosen if v.round_id == 7}
    assert ok == (distinct and all(v.round_id == 7 for v in chosen) and len(closing) >= 3)
    blob = data.draw(damaged(wire, "msgpack"))
    parsed = refuse_or_parse(
        lambda b: AbortCertificate.from_bytes(b, config=cfg), blob, (MalformedMessage,)
    )
    if parsed is not None:
        assert AbortCertificate.from_bytes(parsed.to_bytes(), config=cfg) == parsed
        if _verify(parsed, keys, cfg, public_key):  # only genuine votes can make it valid
            assert len(parsed.voters) >= HOLDERS - THRESHOLD + 1
            assert all(v in votes.values() for v in parsed.votes)


@PARSER_SETTINGS
@given(blob=st.binary(max_size=200))
def test_random_bytes_are_not_a_certificate(blob, cfg) -> None:
    with pytest.raises(MalformedMessage):
        AbortCertificate.from_bytes(blob, config=cfg)
    with pytest.raises(MalformedMessage):
        AbortVote.from_bytes(blob, config=cfg)
