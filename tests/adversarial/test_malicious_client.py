"""A malicious client (a roster member, or someone holding only the network) against the aggregator.

Its tools: its own signing key, every ciphertext it can observe, the public key and parameters,
and arbitrary bytes. Each refused update raises a typed error, leaves the running sum and the
accepted clients bit for bit as they were, and is recorded (``update.rejected``) in the
aggregator's signed audit log; the round then completes with exactly the honest updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from fhe_agg import (
    Aggregator,
    ChunkCountMismatch,
    Client,
    DecryptionFailed,
    DuplicateUpdate,
    EncryptedUpdate,
    FheAggError,
    InvalidInput,
    InvalidProof,
    InvalidSignature,
    InvalidWeight,
    LayoutMismatch,
    MalformedMessage,
    MessageTooLarge,
    NotInRoster,
    ParameterMismatch,
    RoundMismatch,
    SigningKey,
    generate_single_key,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.protocol._messages import MessageBounds

from .conftest import (
    PARAMS,
    WEIGHTS,
    AuditTrail,
    Consortium,
    add_chunks,
    assert_refused,
    config_for,
    pack,
    polys,
    release,
    resign,
    state_of,
)

ROUND = 5
Payload = EncryptedUpdate | bytes


@dataclass
class Open:
    """Round 5 with ana's update accepted, logged by the aggregator."""

    fed: Consortium
    agg: Aggregator
    trail: AuditTrail


@pytest.fixture
def round5(plain: Consortium, trail: AuditTrail) -> Open:
    agg = plain.aggregator(ROUND, audit=trail.log("aggregator"))
    agg.add(plain.update("ana", ROUND).to_bytes())
    return Open(plain, agg, trail)


def _ben(fed: Consortium) -> EncryptedUpdate:
    return fed.update("ben", ROUND)


def _as(cid: str, fed: Consortium, **changes: object) -> EncryptedUpdate:
    """Ben's update with its statement changed and signed by ``cid``'s key."""
    return resign(_ben(fed), fed.signing[cid], **changes)


def _rescaled(fed: Consortium, scale: float) -> EncryptedUpdate:
    chunks = pack(fed.config, polys(fed.config, _ben(fed).chunks), scale)
    return fed.client("ben").sign_update(chunks, layout=fed.layout, round_id=ROUND, weight=5.0)


def _other_params(fed: Consortium) -> EncryptedUpdate:
    config = config_for("compact", max_weight=20.0)
    client = Client(
        client_id="ben", signing_key=fed.signing["ben"], config=config, public_key=fed.public_key
    )
    return client.encrypt_update(fed.data["ben"], round_id=ROUND, weight=5.0)


def _other_public_key(fed: Consortium) -> EncryptedUpdate:
    other, _ = generate_single_key(fed.config.preset)
    client = Client(
        client_id="ben", signing_key=fed.signing["ben"], config=fed.config, public_key=other
    )
    return client.encrypt_update(fed.data["ben"], round_id=ROUND, weight=5.0)


def _update_bound(fed: Consortium) -> int:
    return MessageBounds.for_round(fed.config, fed.layout).update_bytes


def _oversized_chunk(fed: Consortium) -> bytes:
    ben = _ben(fed)
    return EncryptedUpdate(
        ben.signed, (ben.chunks[0] + b"\x00", ben.chunks[1]), ben.proofs
    ).to_bytes()


A = Callable[[Consortium], Payload]
INF, NAN = float("inf"), float("nan")
ATTACKS: dict[str, tuple[A, type[FheAggError], str]] = {
    "an update replayed from an old round": (
        lambda f: f.update("ben", ROUND - 1).to_bytes(),
        RoundMismatch,
        "round 4",
    ),
    "the accepted update sent again": (
        lambda f: f.update("ana", ROUND).to_bytes(),
        DuplicateUpdate,
        "already contributed",
    ),
    "a second, fresh update under an accepted id": (
        lambda f: f.client("ana").encrypt_update(np.zeros(PARAMS), round_id=ROUND, weight=1.0),
        DuplicateUpdate,
        "already contributed",
    ),
    "a statement claiming another member's id": (
        lambda f: _as("ben", f, client_id="dee"),
        InvalidSignature,
        "does not verify",
    ),
    "another member's valid signature on the statement": (
        lambda f: _as("cy", f),
        InvalidSignature,
        "does not verify",
    ),
    "a key outside the roster": (
        lambda f: resign(_ben(f), SigningKey.generate(), client_id="mallory"),
        NotInRoster,
        "mallory",
    ),
    "a weight above max_weight": (lambda f: _as("ben", f, weight=1e9), InvalidWeight, "outside"),
    "an infinite weight on the wire": (
        lambda f: _as("ben", f, weight=INF).to_bytes(),
        MalformedMessage,
        "finite",
    ),
    "a NaN weight on the wire": (
        lambda f: _as("ben", f, weight=NAN).to_bytes(),
        MalformedMessage,
        "finite",
    ),
    "a NaN weight handed over as an object": (
        lambda f: _as("ben", f, weight=NAN),
        InvalidWeight,
        "nan",
    ),
    "a zero weight on the wire": (
        lambda f: _as("ben", f, weight=0.0).to_bytes(),
        MalformedMessage,
        "positive",
    ),
    "a negative weight handed over as an object": (
        lambda f: _as("ben", f, weight=-5.0),
        InvalidWeight,
        "outside",
    ),
    "a zero weight handed over as an object": (
        lambda f: _as("ben", f, weight=0.0),
        InvalidWeight,
        "outside",
    ),
    "a NaN ciphertext scale": (lambda f: _rescaled(f, NAN).to_bytes(), MalformedMessage, "scale"),
    "an infinite ciphertext scale": (
        lambda f: _rescaled(f, INF).to_bytes(),
        MalformedMessage,
        "scale",
    ),
    "a ciphertext at another scale": (
        lambda f: _rescaled(f, 2 * f.config.scale).to_bytes(),
        ParameterMismatch,
        "scale",
    ),
    "another layout of the same size": (
        lambda f: f.client("ben").encrypt_update(
            {"w": f.data["ben"].reshape(100, 100)}, round_id=ROUND, weight=5.0
        ),
        LayoutMismatch,
        "layout",
    ),
    "a vector of another size": (
        lambda f: f.client("ben").encrypt_update(np.zeros(PARAMS + 1), round_id=ROUND, weight=5.0),
        LayoutMismatch,
        "layout",
    ),
    "fewer chunks signed": (
        lambda f: f.client("ben").sign_update(
            _ben(f).chunks[:1], layout=f.layout, round_id=ROUND, weight=5.0
        ),
        ChunkCountMismatch,
        "1 chunks signed",
    ),
    "a chunk dropped after signing": (
        lambda f: EncryptedUpdate(_ben(f).signed, _ben(f).chunks[:1], _ben(f).proofs).to_bytes(),
        ChunkCountMismatch,
        "1 chunks sent",
    ),
    "a chunk added after signing": (
        lambda f: EncryptedUpdate(
            _ben(f).signed, (*_ben(f).chunks, _ben(f).chunks[0]), _ben(f).proofs
        ).to_bytes(),
        MessageTooLarge,
        "exceeds",
    ),
    "chunks reordered after signing": (
        lambda f: EncryptedUpdate(_ben(f).signed, _ben(f).chunks[::-1], _ben(f).proofs).to_bytes(),
        InvalidSignature,
        "Merkle",
    ),
    "an oversized message": (
        lambda f: b"\x00" * (_update_bound(f) + 1),
        MessageTooLarge,
        "exceeds",
    ),
    # a chunk one byte over its bound: the proofs' larger bins make this the field check's
    # refusal rather than msgpack's
    "an oversized chunk": (_oversized_chunk, MalformedMessage, "chunk exceeds"),
    "other CKKS parameters (params_id)": (_other_params, ParameterMismatch, "parameters"),
    "another public key": (_other_public_key, ParameterMismatch, "public key"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_malicious_update_is_refused_and_changes_nothing(round5: Open, name: str) -> None:
    build, error, match = ATTACKS[name]
    payload = build(round5.fed)
    assert_refused(
        lambda: round5.agg.add(payload),
        error,
        state=state_of(aggregator=round5.agg),
        trail=round5.trail,
        actor="aggregator",
        event="update.rejected",
        match=match,
    )


def test_after_every_attack_the_round_yields_exactly_the_honest_mean(round5: Open) -> None:
    fed, agg = round5.fed, round5.agg
    for build, error, _ in ATTACKS.values():
        with pytest.raises(error):
            agg.add(build(fed))
    for cid in ("ben", "cy"):
        agg.add(fed.update(cid, ROUND).to_bytes())
    aggregate = agg.finalize()
    mean = release(fed, agg, fed.key_holders())
    expected = fed.expected(("ana", "ben", "cy"))
    assert np.max(np.abs(mean - expected)) < fed.tolerance(aggregate.total_weight)
    events = [e["event"] for e in round5.trail.entries("aggregator")]
    assert events.count("update.rejected") == len(ATTACKS)
    assert events.count("update.accepted") == 3 and events[-1] == "aggregate.finalized"


@pytest.mark.parametrize(
    ("values", "weight"),
    [
        (np.full(PARAMS, np.nan), 1.0),
        (np.full(PARAMS, np.inf), 1.0),
        (np.full(PARAMS, -np.inf), 1.0),
        (np.full(PARAMS, 2.0), 1.0),  # beyond value_bound
        (np.zeros(PARAMS), float("nan")),
        (np.zeros(PARAMS), float("inf")),
        (np.zeros(PARAMS), 0.0),
        (np.zeros(PARAMS), -1.0),
        (np.zeros(PARAMS), 11.0),  # above max_weight
    ],
)
def test_the_client_refuses_to_encrypt_what_no_aggregator_would_accept(
    plain: Consortium, values: np.ndarray, weight: float
) -> None:
    with pytest.raises(InvalidInput):
        plain.client("ben").encrypt_update(values, round_id=ROUND, weight=weight)


def test_an_unclipped_update_fails_the_release_loudly(plain: Consortium) -> None:
    """Ciphertexts carry no range proof, so the aggregator accepts a client that skips its own
    range check; a mean beyond what honest clients can produce then fails to release instead of
    being averaged in (a poisoning that stays within value_bound is not detected)."""
    agg = plain.aggregator(ROUND)
    for cid in ("ana", "cy"):
        agg.add(plain.update(cid, ROUND))
    rogue = plain.client("ben")
    chunks = rogue.encrypt_chunks(
        np.full(PARAMS, 10.0) * WEIGHTS["ben"], round_id=ROUND
    )  # 10x value_bound
    agg.add(rogue.sign_update(chunks, layout=plain.layout, round_id=ROUND, weight=WEIGHTS["ben"]))
    agg.finalize()
    with pytest.raises(DecryptionFailed, match="value_bound"):
        release(plain, agg, plain.key_holders())


def test_a_rerandomised_copy_of_another_members_ciphertext_is_refused(round5: Open) -> None:
    """The copier knows neither the victim's ``u`` nor its ``e1``: whichever proofs it signs
    (its own for the re-randomising zero, or the victim's), none verifies for the copy."""
    fed = round5.fed
    victim = fed.update("ana", ROUND)
    zero = fed.client("dee").encrypt_chunks(np.zeros(PARAMS), round_id=ROUND)
    scale = backend_for(fed.config.preset).parse(victim.chunks[0], what="chunk").scale
    copy = pack(fed.config, add_chunks(fed.config, victim.chunks, zero.chunks), scale)
    for proofs in (zero.proofs, victim.proofs):
        stolen = fed.client("dee").sign_update(
            copy, layout=fed.layout, round_id=ROUND, weight=2.0, proofs=proofs
        )
        assert_refused(
            lambda s=stolen: round5.agg.add(s.to_bytes()),
            InvalidProof,
            state=state_of(aggregator=round5.agg),
            trail=round5.trail,
            actor="aggregator",
            event="update.rejected",
            match="does not verify",
        )
