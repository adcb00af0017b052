"""RoundContext: the five things that fix a round, checked together, frozen, derived once."""

from __future__ import annotations

import dataclasses

import pytest

from fhe_agg import (
    PRESETS,
    Aggregator,
    Layout,
    ParameterMismatch,
    RoundMismatch,
    generate_single_key,
)
from fhe_agg.holder._aggregate_check import verify_aggregate
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._messages import MessageBounds


@pytest.fixture
def context(config, keypair, roster, layout) -> RoundContext:
    return RoundContext(
        config=config, public_key=keypair[0], roster=roster, layout=layout, round_id=1
    )


def test_the_five_are_checked_together(config, keypair, roster, layout) -> None:
    args = {"config": config, "public_key": keypair[0], "roster": roster, "layout": layout}
    for bad in (-1, True, 1.0, "1"):
        with pytest.raises(ValueError, match="round_id"):
            RoundContext(**args, round_id=bad)  # type: ignore[arg-type]
    other = generate_single_key(PRESETS["compact"])[0]
    assert other.preset != config.preset
    with pytest.raises(ParameterMismatch, match="another preset"):
        RoundContext(**{**args, "public_key": other}, round_id=1)
    with pytest.raises(TypeError, match="roster"):
        RoundContext(**{**args, "roster": {"alpha": b"not a key"}}, round_id=1)
    with pytest.raises(TypeError, match="layout"):
        RoundContext(**{**args, "layout": None}, round_id=1)  # type: ignore[arg-type]


def test_the_roster_is_a_frozen_copy(context: RoundContext, roster) -> None:
    extra = dict(roster)
    own = RoundContext(
        config=context.config,
        public_key=context.public_key,
        roster=extra,
        layout=context.layout,
        round_id=1,
    )
    extra["mallory"] = next(iter(roster.values()))
    assert "mallory" not in own.roster  # the caller's dict no longer reaches the round
    with pytest.raises(TypeError):
        own.roster["mallory"] = extra["mallory"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        own.round_id = 2  # type: ignore[misc]


def test_derived_values_are_the_round_s_and_cached(context: RoundContext) -> None:
    assert context.bounds == MessageBounds.for_round(context.config, context.layout)
    assert context.bounds is context.bounds and context.backend is context.backend
    assert context.chunk_count == context.layout.chunk_count(
        context.config.preset.reals_per_ciphertext
    )
    assert context.params_id == context.config.params_id
    assert context.key_fingerprint == context.public_key.fingerprint
    assert context.layout_digest == context.layout.digest
    later = context.for_round(5)
    assert (later.round_id, later.roster) == (5, context.roster)
    other = context.with_layout(Layout.for_vector(10))
    assert other.chunk_count == 1 and other.round_id == context.round_id
    assert "round=1" in repr(context)


def test_checks_take_the_context(context: RoundContext, updates, make_aggregator) -> None:
    signed = updates["alpha"].signed
    check_statement(signed, context)
    with pytest.raises(RoundMismatch) as caught:
        check_statement(signed, context.for_round(2))
    assert (caught.value.round_id, caught.value.party) == (2, "alpha")
    aggregator = make_aggregator()
    assert aggregator.context.round_id == 1 and aggregator.bounds == context.bounds
    for u in updates.values():
        aggregator.add(u.to_bytes())
    aggregate = aggregator.finalize()
    evidence = aggregator.evidence(range(context.chunk_count))
    sums = verify_aggregate(aggregate, evidence, context=context, wanted=tuple(range(3)))
    assert sums.shape[0] == context.chunk_count
    with pytest.raises(RoundMismatch, match="an aggregate of round 1, this is round 3"):
        verify_aggregate(aggregate, evidence, context=context.for_round(3), wanted=tuple(range(3)))


def test_the_aggregator_keeps_its_keyword_arguments(config, keypair, roster, layout) -> None:
    """The public constructor still takes the five as keywords; its context checks them."""
    args = {"config": config, "roster": roster, "public_key": keypair[0], "layout": layout}
    with pytest.raises(ValueError, match="round_id"):
        Aggregator(**args, round_id=-1)
    other = generate_single_key(PRESETS["compact"])[0]
    with pytest.raises(ParameterMismatch, match="another preset"):
        Aggregator(**{**args, "public_key": other}, round_id=1)
