"""Well-formedness proofs in transit: signed with the update, checked on ingest and by holders.

A client (or the server relaying its update) that sends a chunk whose proof is absent, truncated,
made for another round or client, or swapped with another client's, is refused with
:class:`~fhe_agg.InvalidProof` by the aggregator, before the running sum moves, and by every key
holder, before any partial exists; each refusal is in the refusing party's signed audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

import fhe_agg.client._batches
import fhe_agg.server._update_check
from fhe_agg import (
    AggregateEvidence,
    Aggregator,
    EncryptedUpdate,
    InvalidProof,
    MalformedMessage,
)
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.protocol._wellformed import proof_batches, proofs_digest

from .conftest import SET, AuditTrail, Consortium, assert_refused, partial, state_of

ROUND = 31
Forge = Callable[[Consortium], EncryptedUpdate]


def _truncated(proofs: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return (proofs[0][: len(proofs[0]) // 2], *proofs[1:])


def _signed_by_ben(fed: Consortium, source: EncryptedUpdate, **kw: object) -> EncryptedUpdate:
    """Ben signs ``source``'s chunks with the given (or ``source``'s) proofs for ROUND."""
    proofs = kw.pop("proofs", source.proofs)
    return fed.client("ben").sign_update(
        source.chunks,
        layout=fed.layout,
        round_id=ROUND,
        weight=5.0,
        proofs=proofs,  # type: ignore[arg-type]
    )


def _bound_to_c1_words(fed: Consortium) -> EncryptedUpdate:
    """Ben's own update whose proofs' transcripts bind the digest of ``c1``'s words (protocol
    version 3), not the chunks' Merkle leaves (version 4)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fhe_agg.client._batches, "chunks_binding", lambda leaves: None)
        return fed.client("ben").encrypt_update(fed.data["ben"], round_id=ROUND, weight=5.0)


# What a malicious client signs itself (the statement commits to these proofs).
SIGNED: dict[str, Forge] = {
    "no proof": lambda f: _signed_by_ben(f, f.update("ben", ROUND), proofs=()),
    "a truncated proof": lambda f: _signed_by_ben(
        f, f.update("ben", ROUND), proofs=_truncated(f.update("ben", ROUND).proofs)
    ),
    "proofs made for another round": lambda f: _signed_by_ben(f, f.update("ben", ROUND - 1)),
    "proofs made for another client": lambda f: _signed_by_ben(f, f.update("cy", ROUND)),
    "another client's proofs with its own chunks": lambda f: _signed_by_ben(
        f, f.update("ben", ROUND), proofs=f.update("cy", ROUND).proofs
    ),
    "proofs binding c1's words (protocol version 3)": _bound_to_c1_words,
}

# What a server does to an honest signed update on its way (the signed digest no longer matches).
RELAYED: dict[str, Forge] = {
    "proofs stripped": lambda f: replace(f.update("ben", ROUND), proofs=()),
    "a proof truncated": lambda f: replace(
        f.update("ben", ROUND), proofs=_truncated(f.update("ben", ROUND).proofs)
    ),
    "proofs swapped with another client's": lambda f: replace(
        f.update("ben", ROUND), proofs=f.update("cy", ROUND).proofs
    ),
}


@pytest.mark.parametrize("name", [*SIGNED, *RELAYED])
def test_the_aggregator_refuses_an_update_without_its_proofs(
    plain: Consortium, trail: AuditTrail, name: str
) -> None:
    agg = plain.aggregator(ROUND, audit=trail.log("aggregator"))
    agg.add(plain.update("ana", ROUND).to_bytes())
    forged = {**SIGNED, **RELAYED}[name](plain)
    assert_refused(
        lambda: agg.add(forged.to_bytes()),
        InvalidProof,
        state=state_of(aggregator=agg),
        trail=trail,
        actor="aggregator",
        event="update.rejected",
    )
    agg.add(plain.update("ben", ROUND).to_bytes())  # the genuine update is still welcome
    assert agg.accepted_clients == ("ana", "ben")


def _lax_round(plain: Consortium, monkeypatch: pytest.MonkeyPatch, forged: EncryptedUpdate):
    """A malicious server: it skips the proof check and counts ``forged`` with ana and cy."""
    with monkeypatch.context() as patch:
        patch.setattr(fhe_agg.server._update_check, "check_update_proofs", lambda *a, **k: None)
        agg = plain.aggregator(ROUND)
        for update in (plain.update("ana", ROUND), forged, plain.update("cy", ROUND)):
            agg.add(update)
    return agg, agg.finalize()


@pytest.mark.parametrize("name", list(SIGNED))
def test_every_holder_refuses_a_sum_with_an_unproven_update(
    plain: Consortium, trail: AuditTrail, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    agg, aggregate = _lax_round(plain, monkeypatch, SIGNED[name](plain))
    holders = plain.key_holders(trail.holder_logs())
    for j, holder in holders.items():
        assert_refused(
            lambda h=holder, j=j: partial(h, aggregate, agg.evidence, _set_with(j)),
            InvalidProof,
            state=state_of(holders=holders.values()),
            trail=trail,
            actor=f"holder-{j}",
            event="partial.refused",
            match="ben",
        )


def _set_with(j: int) -> tuple[int, ...]:
    """A decrypting set of the threshold's size that includes holder ``j``."""
    return tuple(sorted({j, *SET} - ({SET[-1]} if j not in SET else set())))


def _tampered(agg: Aggregator, change: Callable[[dict[str, tuple[bytes, ...]]], None]):
    def evidence(indices: tuple[int, ...]) -> AggregateEvidence:
        full = agg.evidence(indices)
        proofs = dict(full.proofs)
        change(proofs)
        return AggregateEvidence(full.round_id, full.chunks, proofs)

    return evidence


EVIDENCE: dict[str, Callable[[dict[str, tuple[bytes, ...]]], None]] = {
    "ben's proofs left out": lambda p: p.pop("ben"),
    "ben's proof truncated": lambda p: p.update(ben=_truncated(p["ben"])),
    "ben's and cy's proofs swapped": lambda p: p.update(ben=p["cy"], cy=p["ben"]),
    "an extra proof for ben": lambda p: p.update(ben=(*p["ben"], p["ben"][0])),
}


@pytest.mark.parametrize("name", list(EVIDENCE))
def test_every_holder_refuses_evidence_whose_proofs_are_not_the_signed_ones(
    plain: Consortium, trail: AuditTrail, name: str
) -> None:
    agg, aggregate = plain.collect(ROUND + 1, ("ana", "ben", "cy"))
    evidence = _tampered(agg, EVIDENCE[name])
    holders = plain.key_holders(trail.holder_logs())
    for j, holder in holders.items():
        assert_refused(
            lambda h=holder, j=j: partial(h, aggregate, evidence, _set_with(j)),
            InvalidProof,
            state=state_of(holders=holders.values()),
            trail=trail,
            actor=f"holder-{j}",
            event="partial.refused",
            match="ben",
        )
    # the genuine evidence still decrypts with the same holders
    for j in SET:
        partial(holders[j], aggregate, agg.evidence, SET)


def test_the_update_parser_bounds_the_proofs(plain: Consortium) -> None:
    bounds = MessageBounds.for_round(plain.config, plain.layout)
    ben = plain.update("ben", ROUND)
    assert bounds.proof_count == len(proof_batches(bounds.chunk_count)) == len(ben.proofs)
    assert all(0 < len(p) <= bounds.proof_bytes for p in ben.proofs)
    assert ben.statement.proofs_digest == proofs_digest(ben.proofs)
    parsed = EncryptedUpdate.from_bytes(ben.to_bytes(), bounds)
    assert parsed.proofs == ben.proofs and parsed.chunks == ben.chunks
    extra = replace(ben, proofs=(*ben.proofs, ben.proofs[0]))
    with pytest.raises(MalformedMessage, match=r"proofs|exceeds"):
        EncryptedUpdate.from_bytes(extra.to_bytes(), bounds)
    roomy = replace(bounds, proof_count=bounds.proof_count + 1, proof_bytes=bounds.proof_bytes)
    assert len(EncryptedUpdate.from_bytes(extra.to_bytes(), roomy).proofs) == 2
    small = replace(bounds, proof_bytes=len(ben.proofs[0]) - 1)
    with pytest.raises(MalformedMessage):
        EncryptedUpdate.from_bytes(ben.to_bytes(), small)
