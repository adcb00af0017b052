"""Limits a key holder enforces itself: the weight range (``min_weight``), ``max_clients``, the
decrypting set's types and the step of the round id. Each is refused before any partial exists,
with a typed error and no change of state, and the round stays decryptable afterwards."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fhe_agg import (
    AggregateEvidence,
    AggregateMismatch,
    Client,
    DecryptionSession,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    InvalidInput,
    InvalidWeight,
    KeyHolder,
    Rejected,
    RoundMismatch,
)

from .conftest import (
    SET,
    WEIGHTS,
    Consortium,
    add_chunks,
    assert_refused,
    pack,
    partial,
    release,
    state_of,
)


def _client(fed: Consortium, cid: str, config: FederationConfig) -> Client:
    return Client(
        client_id=cid, signing_key=fed.signing[cid], config=config, public_key=fed.public_key
    )


def _holders(fed: Consortium, config: FederationConfig) -> dict[int, KeyHolder]:
    return {
        j: KeyHolder(
            holder_id=f"holder-{j}",
            config=config,
            public_key=fed.public_key,
            key_share=share,
            roster=fed.roster,
        )
        for j, share in fed.shares.items()
    }


def _signed(fed: Consortium, config: FederationConfig, cid: str, round_id: int, weight: float):
    """``cid``'s genuine update signed at ``weight`` (the low-level path checks no range)."""
    client = _client(fed, cid, config)
    chunks = client.encrypt_chunks(fed.data[cid], round_id=round_id, weight=weight)
    return client.sign_update(chunks, layout=fed.layout, round_id=round_id, weight=weight)


def _by_hand(config: FederationConfig, round_id: int, updates: list[EncryptedUpdate]):
    """The aggregate a malicious aggregator builds from ``updates``: their exact sum, at the
    scale of their total weight, with their signed statements."""
    total = sum(u.statement.weight for u in updates)
    data = add_chunks(config, *(u.chunks for u in updates))
    chunks = pack(config, data, config.scale * total)
    return EncryptedAggregate(round_id, chunks, tuple(u.signed for u in updates))


def _no_evidence(round_id: int):
    return lambda _indices: AggregateEvidence(round_id, {})


def test_min_weight_is_part_of_the_parameters_and_checked() -> None:
    base = FederationConfig(max_weight=100.0)
    assert base.min_weight == 1.0
    assert replace(base, min_weight=20.0).params_id != base.params_id
    with pytest.raises(ValueError, match="min_weight"):
        replace(base, min_weight=200.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="min_weight"):
            replace(base, min_weight=bad)


def test_an_update_below_min_weight_is_refused_by_client_aggregator_and_holders(
    plain: Consortium,
) -> None:
    config = replace(plain.config, min_weight=3.0)  # ana's weight is 2
    assert WEIGHTS["ana"] < config.min_weight <= min(WEIGHTS["ben"], WEIGHTS["cy"])
    with pytest.raises(InvalidInput, match="min_weight"):
        _client(plain, "ana", config).encrypt_update(plain.data["ana"], round_id=80, weight=2.0)
    low = _signed(plain, config, "ana", 80, 2.0)
    fair = [_signed(plain, config, c, 80, WEIGHTS[c]) for c in ("ben", "cy", "dee")]
    agg = plain.aggregator(80)
    agg = type(agg)(
        config=config,
        roster=plain.roster,
        public_key=plain.public_key,
        round_id=80,
        layout=plain.layout,
    )
    assert_refused(lambda: agg.add(low.to_bytes()), InvalidWeight, state=state_of(aggregator=agg))
    # a malicious aggregator counts it anyway: every holder checks the signed weight itself
    holders = _holders(plain, config)
    aggregate = _by_hand(config, 80, [low, *fair[:2]])
    assert_refused(
        lambda: partial(holders[1], aggregate, _no_evidence(80)),
        InvalidWeight,
        state=state_of(holders=holders.values()),
        match="min_weight",
    )
    # the honest round of the others still decrypts
    for update in fair:
        agg.add(update.to_bytes())
    honest = agg.finalize()
    mean = release(plain, agg, holders)
    expected = plain.expected(("ben", "cy", "dee"))
    assert np.max(np.abs(mean - expected)) < plain.tolerance(honest.total_weight)


def test_a_holder_refuses_an_aggregate_of_more_than_max_clients(plain: Consortium) -> None:
    config = replace(plain.config, max_clients=3)
    updates = [_signed(plain, config, c, 81, WEIGHTS[c]) for c in ("ana", "ben", "cy", "dee")]
    agg = type(plain.aggregator(81))(
        config=config,
        roster=plain.roster,
        public_key=plain.public_key,
        round_id=81,
        layout=plain.layout,
    )
    for update in updates[:3]:
        agg.add(update.to_bytes())
    with pytest.raises(Rejected, match="max_clients"):
        agg.add(updates[3].to_bytes())
    holders = _holders(plain, config)
    assert_refused(
        lambda: partial(holders[1], _by_hand(config, 81, updates), _no_evidence(81)),
        AggregateMismatch,
        state=state_of(holders=holders.values()),
        match="max_clients",
    )


@pytest.mark.parametrize("members", [(1.0, 2.0, 3.0), (True, 2, 3), (1, 2.0, 3), "123"])
def test_a_decrypting_set_of_floats_or_bools_is_refused_before_anything(
    plain: Consortium, members: object
) -> None:
    agg, aggregate = plain.collect(82)
    holders = plain.key_holders()
    with pytest.raises(TypeError, match="decrypting_set"):
        DecryptionSession(
            aggregate, config=plain.config, layout=plain.layout, decrypting_set=members
        )
    for j in SET:
        with pytest.raises(TypeError, match="decrypting_set"):
            partial(holders[j], aggregate, agg.evidence, members)  # type: ignore[arg-type]
        assert holders[j].decrypted_rounds == ()
    # the round was not spent: the proper set decrypts it (numpy ints are fine)
    mean = release(plain, agg, holders, tuple(np.array(SET)))
    assert np.max(np.abs(mean - plain.expected(plain.data))) < plain.tolerance(
        aggregate.total_weight
    )


def test_a_jump_of_the_round_id_is_refused_and_does_not_lock_holders_out(
    plain: Consortium,
) -> None:
    holders = plain.key_holders()
    far = 2**63 - 2
    agg_far, far_round = plain.collect(far)
    assert_refused(
        lambda: partial(holders[1], far_round, agg_far.evidence),
        RoundMismatch,
        state=state_of(holders=holders.values()),
        match="max_round_step",
    )
    agg, aggregate = plain.collect(83)
    release(plain, agg, holders)
    assert holders[1].decrypted_rounds == (83,)
    # and the next normal round after it still decrypts
    agg, aggregate = plain.collect(84)
    release(plain, agg, holders)
    # lifting the bound deliberately brings the lock-out back: a later normal round is "older"
    unbounded = KeyHolder(
        holder_id="holder-1",
        config=plain.config,
        public_key=plain.public_key,
        key_share=plain.shares[1],
        roster=plain.roster,
        max_round_step=None,
    )
    partial(unbounded, far_round, agg_far.evidence)
    with pytest.raises(RoundMismatch, match="older"):
        partial(unbounded, aggregate, agg.evidence)
