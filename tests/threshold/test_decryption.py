"""Threshold decryption: any t holders decrypt, t-1 learn nothing, each refusal is typed."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from federation import decrypt

from fhe_agg import (
    AlreadyDecrypted,
    BudgetExhausted,
    DecryptionAborted,
    DecryptionRefused,
    DecryptionSession,
    FloodingPolicy,
    RoundMismatch,
    ThresholdNotMet,
    UnsupportedParameters,
    combine,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import FixedOperand, add_polys, mul_fixed
from fhe_agg.hazmat.shamir import lagrange_coefficients, scale_share

from .conftest import Federation, make_federation, make_holders, threshold_config


def _decrypt(fed: Federation, aggregate, evidence, members, holders=None):
    holders = holders or fed.key_holders()
    session = DecryptionSession(
        aggregate, config=fed.config, layout=fed.layout, decrypting_set=members
    )
    for j in members:
        h = holders[j]
        session.add(fed.partial(h, aggregate, evidence, members))
    return session.release()


def test_every_three_of_five_subset_decrypts_a_fresh_aggregate(fed: Federation) -> None:
    holders = fed.key_holders()
    assert fed.config.flooding_security_bits >= 40
    for round_id, members in enumerate(itertools.combinations(range(1, 6), 3), start=1):
        agg, expected = fed.fresh(round_id)
        _, mean = decrypt(agg, holders, members=members)  # through the coordinator
        assert np.max(np.abs(mean - expected)) <= 1e-6, members


def test_every_two_holder_subset_learns_nothing_about_the_model(fed: Federation) -> None:
    """Two shares, however combined (their own Lagrange set), give output unrelated to the mean."""
    b = backend_for(fed.config.preset)
    primes = b.data_primes
    shares = dict(fed.shares)
    aggregate, _, expected = fed.round(100)
    c = b.parse(aggregate.chunks[0], what="aggregate")
    for pair in itertools.combinations(range(1, 6), 2):
        coefficients = lagrange_coefficients(pair, primes)
        message = c.data[0]
        for j in pair:
            key = scale_share(shares[j].data_level().value, coefficients[j], primes)
            message = add_polys(
                message, mul_fixed(c.data[1], FixedOperand.of(key, primes), primes), primes
            )
        out = b.decode(message, c.scale)[: expected.size]
        assert np.max(np.abs(out - expected)) > 1e3, pair
        assert abs(np.corrcoef(out, expected)[0, 1]) < 0.1, pair


def test_two_partials_of_a_three_holder_set_do_not_combine(fed: Federation) -> None:
    holders = fed.key_holders()
    aggregate, evidence, _ = fed.round(200)
    members = (1, 2, 3)
    partials = [fed.partial(holders[j], aggregate, evidence, members) for j in (1, 2)]
    with pytest.raises(ThresholdNotMet):
        combine(aggregate, partials, config=fed.config, layout=fed.layout)


@pytest.mark.parametrize(("n", "t"), [(3, 3), (1, 1)])
def test_n_of_n_and_one_of_one_ceremonies_decrypt(n: int, t: int) -> None:
    fed = make_federation(make_holders(n), threshold_config(holders=n, threshold=t), seed=7)
    agg, expected = fed.fresh(1)
    _, mean = decrypt(agg, fed.key_holders(), members=range(1, t + 1))
    assert np.max(np.abs(mean - expected)) <= 1e-6


def test_a_holder_outside_the_set_or_a_short_set_is_refused(fed: Federation) -> None:
    holders = fed.key_holders()
    aggregate, evidence, _ = fed.round(300)
    with pytest.raises(DecryptionRefused, match="decrypting_set") as refused:
        fed.partial(holders[4], aggregate, evidence, (1, 2, 3))
    assert (refused.value.round_id, refused.value.holder_index) == (300, 4)
    with pytest.raises(ThresholdNotMet, match="decrypting_set"):
        fed.partial(holders[1], aggregate, evidence, (1, 2))
    with pytest.raises(ThresholdNotMet):
        DecryptionSession(aggregate, config=fed.config, layout=fed.layout, decrypting_set=(1, 2))
    assert holders[1].budget_left == fed.config.decryption_budget  # nothing was spent


def test_dropout_aborts_the_round_and_no_other_set_decrypts_it(fed: Federation) -> None:
    holders = fed.key_holders()
    aggregate, evidence, _ = fed.round(400)
    session = DecryptionSession(
        aggregate, config=fed.config, layout=fed.layout, decrypting_set=(1, 2, 3)
    )
    for j in (1, 2):  # holder 3 drops
        session.add(fed.partial(holders[j], aggregate, evidence, (1, 2, 3)))
    with pytest.raises(DecryptionAborted, match="re-run"):
        session.release()
    assert session.state == "aborted"
    with pytest.raises(DecryptionAborted):
        session.release()
    # a retry with another set that keeps holders 1 and 2 is refused by the holders themselves
    for j in (1, 2):
        with pytest.raises(AlreadyDecrypted):
            fed.partial(holders[j], aggregate, evidence, (1, 2, 4))
    # the safe path: the round runs again with fresh encryptions under a new round id
    fresh, fresh_evidence, expected = fed.round(401)
    mean = _decrypt(fed, fresh, fresh_evidence, (1, 2, 4), holders)
    assert np.max(np.abs(mean - expected)) <= 1e-6


def test_a_replayed_older_aggregate_is_refused(fed: Federation) -> None:
    holders = fed.key_holders()
    old, old_evidence, _ = fed.round(500)
    new, new_evidence, _ = fed.round(501)
    _decrypt(fed, new, new_evidence, (1, 2, 3), holders)
    with pytest.raises(RoundMismatch, match="older"):
        fed.partial(holders[1], old, old_evidence, (1, 2, 3))


def test_the_same_ciphertexts_signed_again_for_a_new_round_are_refused(fed: Federation) -> None:
    """One partial per ciphertext, ever: re-signing old chunks under a new round does not help.
    Their proofs are bound to the old round, so the aggregator refuses them; a server that builds
    the new round's aggregate itself meets the holders' log."""
    from fhe_agg import Aggregator, EncryptedAggregate, InvalidProof

    holders = fed.key_holders()
    clients = fed.clients
    updates = {
        c: clients[c].encrypt_update(np.full(3000, 0.1), round_id=600, weight=1.0) for c in clients
    }

    def aggregator(round_id: int) -> Aggregator:
        return Aggregator(
            config=fed.config,
            roster=fed.roster,  # type: ignore[arg-type]
            public_key=fed.public_key,
            round_id=round_id,
            layout=fed.layout,
        )

    def signed_again(round_id: int):
        return {
            c: clients[c].sign_update(
                u.chunks, layout=fed.layout, round_id=round_id, weight=1.0, proofs=u.proofs
            )
            for c, u in updates.items()
        }

    agg = aggregator(600)
    for again in signed_again(600).values():
        agg.add(again.to_bytes())
    first, first_evidence = agg.finalize(), agg.evidence
    _decrypt(fed, first, first_evidence, (1, 2, 3), holders)
    replayed = signed_again(601)
    honest = aggregator(601)
    for again in replayed.values():
        with pytest.raises(InvalidProof, match="does not verify"):
            honest.add(again.to_bytes())
    replay = EncryptedAggregate(601, first.chunks, tuple(u.signed for u in replayed.values()))
    with pytest.raises(AlreadyDecrypted, match="ciphertext"):
        fed.partial(holders[1], replay, first_evidence, (1, 2, 3))


def test_budget_refusal_leaves_the_budget_unchanged(five_holders) -> None:
    config = threshold_config(flooding=FloodingPolicy(budget=2))
    fed = make_federation(five_holders, config, seed=3)
    fed = dataclasses.replace(fed, layout=fed.layout)
    holders = fed.key_holders()
    first, first_evidence, _ = fed.round(1)
    _decrypt(fed, first, first_evidence, (1, 2, 3), holders)
    second, second_evidence, _ = fed.round(2)
    _decrypt(fed, second, second_evidence, (1, 2, 3), holders)
    assert holders[1].budget_left == 0
    third, third_evidence, _ = fed.round(3)
    with pytest.raises(BudgetExhausted, match="new key ceremony"):
        fed.partial(holders[1], third, third_evidence, (1, 2, 3))
    assert holders[1].budget_left == 0
    # a holder whose budget is left still answers: the refusal consumed nothing of it
    assert holders[4].budget_left == 2


def test_an_unflooded_threshold_key_is_refused() -> None:
    with pytest.raises(UnsupportedParameters, match="flooding"):
        threshold_config(flooding=None)


def test_an_unflooded_single_holder_never_hands_out_a_partial() -> None:
    fed = make_federation(
        make_holders(1),
        threshold_config(1, 1, flooding=None, unsafe_exact_decryption=True),
        seed=11,
    )
    holder = fed.key_holders()[1]
    aggregate, evidence, expected = fed.round(1)
    with pytest.raises(DecryptionRefused, match="reveals the key share"):
        holder.partial_decrypt(aggregate, evidence(holder.challenge(aggregate)), layout=fed.layout)
    mean = holder.decrypt(aggregate, evidence(holder.challenge(aggregate)), layout=fed.layout)
    assert np.max(np.abs(mean - expected)) <= 1e-9
