"""The key holder's decryption log in SQLite: refusals and budget survive a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fhe_agg import (
    Aggregator,
    AlreadyDecrypted,
    BudgetExhausted,
    Client,
    CorruptStore,
    FederationConfig,
    FloodingPolicy,
    KeyHolder,
    Layout,
    ParameterMismatch,
    RoundAborted,
    RoundMismatch,
    SeededRandom,
    SigningKey,
    generate_single_key,
)

IDS = ("alpha", "bravo", "charlie")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "fhe_agg_state" / "keyholder-holder.sqlite"


@pytest.fixture
def open_holder(config, keypair, roster, store):
    opened: list[KeyHolder] = []

    def make(**changes: object) -> KeyHolder:
        args = {
            "holder_id": "holder",
            "config": config,
            "public_key": keypair[0],
            "key_share": keypair[1],
            "roster": roster,
            "store": store,
            "rng": SeededRandom(5),
            **changes,
        }
        holder = KeyHolder(**args)  # type: ignore[arg-type]
        opened.append(holder)
        return holder

    yield make
    for holder in opened:
        holder.close()


@pytest.fixture
def rounds(make_aggregator, updates, clients, vectors):
    """Finished aggregators of rounds 1 and 2 (new updates: a client never sends one twice)."""
    out = {}
    for round_id in (1, 2):
        agg = make_aggregator(round_id)
        for cid, weight in zip(IDS, (3.0, 11.0, 7.5), strict=True):
            data = vectors[cid] / round_id
            agg.add(clients[cid].encrypt_update(data, round_id=round_id, weight=weight))
        out[round_id] = (agg, agg.finalize())
    return out


def _partial(holder: KeyHolder, agg, aggregate, layout):
    return holder.partial_decrypt(
        aggregate, agg.evidence(holder.challenge(aggregate)), layout=layout
    )


def test_restarted_holder_refuses_a_second_partial_and_keeps_its_budget(
    open_holder, rounds, layout, config
) -> None:
    agg, aggregate = rounds[2]
    first = open_holder()
    _partial(first, agg, aggregate, layout)
    used = len(aggregate.chunks)
    assert first.budget_left == config.decryption_budget - used
    first.close()
    restarted = open_holder()
    assert restarted.budget_left == config.decryption_budget - used
    with pytest.raises(AlreadyDecrypted, match="round 2"):
        _partial(restarted, agg, aggregate, layout)
    old_agg, old = rounds[1]
    with pytest.raises(RoundMismatch, match="older"):
        _partial(restarted, old_agg, old, layout)
    assert restarted.budget_left == config.decryption_budget - used


def test_the_log_decides_between_two_live_holder_objects(open_holder, rounds, layout) -> None:
    agg, aggregate = rounds[1]
    one, two = open_holder(), open_holder()  # two's memory never sees one's partial
    _partial(one, agg, aggregate, layout)
    with pytest.raises(AlreadyDecrypted, match="logged in"):
        _partial(two, agg, aggregate, layout)


def test_budget_exhaustion_survives_restarts(signing_keys, roster, tmp_path, store) -> None:
    config = FederationConfig(
        min_clients=3,
        max_clients=8,
        max_weight=100.0,
        value_bound=4.0,
        flooding=FloodingPolicy(budget=2),
    )
    public_key, share = generate_single_key(config.preset, rng=SeededRandom(3))
    layout = Layout.for_vector(100)  # one ciphertext per aggregate
    common = {"config": config, "roster": roster, "public_key": public_key}
    rng = np.random.default_rng(8)
    for round_id in (1, 2, 3):
        spool = tmp_path / f"spool-{round_id}"
        agg = Aggregator(round_id=round_id, layout=layout, spool_dir=spool, **common)
        for cid in IDS:
            client = Client(
                client_id=cid, signing_key=signing_keys[cid], config=config, public_key=public_key
            )
            agg.add(client.encrypt_update(rng.uniform(-1, 1, 100), round_id=round_id, weight=1.0))
        aggregate = agg.finalize()
        restarted = KeyHolder(holder_id="holder", key_share=share, store=store, **common)
        assert restarted.budget_left == 2 - (round_id - 1)
        if round_id < 3:
            _partial(restarted, agg, aggregate, layout)
        else:
            with pytest.raises(BudgetExhausted, match="0 left"):
                _partial(restarted, agg, aggregate, layout)
        restarted.close()
        agg.close()


def test_store_of_another_holder_or_key_is_refused(open_holder, config, keypair) -> None:
    open_holder().close()
    with pytest.raises(ParameterMismatch, match="another key holder"):
        open_holder(holder_id="someone-else")
    other_pk, other_share = generate_single_key(config.preset)
    with pytest.raises(ParameterMismatch, match="another key epoch"):
        open_holder(public_key=other_pk, key_share=other_share)


def test_edited_log_is_refused(open_holder, rounds, layout, store) -> None:
    agg, aggregate = rounds[1]
    holder = open_holder()
    _partial(holder, agg, aggregate, layout)
    holder.close()
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("UPDATE state SET budget_used = 0")  # an attempt to win back the budget
    conn.close()
    with pytest.raises(CorruptStore, match="budget used 0 disagrees"):
        open_holder()


def test_truncated_log_is_refused(open_holder, store) -> None:
    open_holder().close()
    store.write_bytes(store.read_bytes()[:1000])
    with pytest.raises(CorruptStore, match="truncated"):
        open_holder()


def test_a_store_from_before_abort_votes_opens_and_records_them(
    open_holder, store, rounds, layout
) -> None:
    open_holder().close()
    with sqlite3.connect(store) as conn:  # the schema of the first release
        conn.execute("DROP TABLE aborted")
    conn.close()
    holder = open_holder(signing_key=SigningKey.generate())
    assert holder.aborted_rounds == ()
    holder.vote_abort(2)
    holder.close()
    again = open_holder()
    assert again.aborted_rounds == (2,)
    agg, aggregate = rounds[2]
    with pytest.raises(RoundAborted):
        _partial(again, agg, aggregate, layout)
    assert again.decrypted_rounds == () and again.budget_left == again.config.decryption_budget
