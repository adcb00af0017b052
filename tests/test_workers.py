"""``workers=``: the same bytes, sums, partials and refusals on a pool (processes for the client,
threads for proof checks) as on one core."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import CLIENT_IDS, PARAMS, WEIGHTS

import fhe_agg.server._update_check
from fhe_agg import (
    AggregateEvidence,
    Aggregator,
    Client,
    DuplicateUpdate,
    InvalidProof,
    KeyHolder,
    SeededRandom,
)
from fhe_agg._parallel import DerivedRandom, run_ordered, split
from fhe_agg.hazmat.encrypt import _OPERAND_CACHE, fixed_operand
from fhe_agg.hazmat.rlwe import FixedOperand
from fhe_agg.protocol._wellformed import data_level_key, forget_verified
from fhe_agg.server._ingest import IngestQueue


def _client(cid, signing_keys, config, keypair, workers: int) -> Client:
    return Client(
        client_id=cid,
        signing_key=signing_keys[cid],
        config=config,
        public_key=keypair[0],
        rng=SeededRandom(f"client-{cid}".encode()),
        workers=workers,
    )


def _updates(signing_keys, config, keypair, vectors, layout, workers: int) -> list:
    out = []
    for cid, weight in zip(CLIENT_IDS[:3], WEIGHTS, strict=False):
        client = _client(cid, signing_keys, config, keypair, workers)
        out.append(client.encrypt_update(vectors[cid], round_id=1, weight=weight))
    return out


@pytest.fixture(scope="module")
def both(signing_keys, config, keypair, vectors, layout) -> tuple[list, list]:
    """The same three updates made with one worker and with two (seeded sources)."""
    return (
        _updates(signing_keys, config, keypair, vectors, layout, 1),
        _updates(signing_keys, config, keypair, vectors, layout, 2),
    )


def test_workers_must_be_a_positive_int(signing_keys, config, keypair) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            _client("alpha", signing_keys, config, keypair, bad)  # type: ignore[arg-type]


def test_split_and_derived_randomness() -> None:
    assert split(10, 3) == [range(0, 3), range(3, 6), range(6, 10)]
    assert split(2, 4) == [range(0, 1), range(1, 2)]
    seed = bytes(range(32))
    assert DerivedRandom(seed, "chunk", 1).bytes(16) == DerivedRandom(seed, "chunk", 1).bytes(16)
    assert DerivedRandom(seed, "chunk", 1).bytes(16) != DerivedRandom(seed, "chunk", 2).bytes(16)
    assert DerivedRandom(seed, "chunk", 1).bytes(16) != DerivedRandom(seed, "proof").bytes(16)


def test_client_bytes_do_not_depend_on_workers(both) -> None:
    """One proof batch, two workers: the chunks are split, the witnesses redrawn, the proof
    made in the caller; the update is the same byte for byte."""
    one, two = both
    for a, b in zip(one, two, strict=True):
        assert a.chunks == b.chunks and a.proofs == b.proofs
        assert a.statement == b.statement
    # and distinct clients got distinct randomness
    assert one[0].chunks[0] != one[1].chunks[0]


def test_client_bytes_with_several_proof_batches(signing_keys, config, keypair) -> None:
    """129 chunks = two proof batches, one task per batch on two workers."""
    size = 128 * config.preset.reals_per_ciphertext + 10
    vector = np.random.default_rng(5).uniform(-1, 1, size)
    made = [
        _client("delta", signing_keys, config, keypair, w).encrypt_chunks(vector, round_id=4)
        for w in (1, 2)
    ]
    assert len(made[0].proofs) == 2
    assert made[0].chunks == made[1].chunks and made[0].proofs == made[1].proofs


def _holder(config, keypair, roster, workers: int) -> KeyHolder:
    """A key holder of ``keypair``'s share with a seeded noise source (the same partials for any
    ``workers``)."""
    public_key, share = keypair
    return KeyHolder(
        holder_id="h",
        config=config,
        public_key=public_key,
        key_share=share,
        roster=roster,
        rng=SeededRandom(11),
        workers=workers,
    )


def _spooled(config, roster, keypair, layout, spool_dir, workers: int) -> Aggregator:
    """An aggregator of round 1 on ``workers`` threads, its updates spooled in ``spool_dir``."""
    return Aggregator(
        config=config,
        roster=roster,
        public_key=keypair[0],
        round_id=1,
        layout=layout,
        spool_dir=spool_dir,
        workers=workers,
    )


def _aggregate(updates, workers, config, roster, keypair, layout, tmp_path, *, many: bool):
    forget_verified()  # each aggregator verifies every proof itself
    agg = _spooled(config, roster, keypair, layout, tmp_path / f"spool-{workers}-{many}", workers)
    if many:
        assert agg.add_many([u.to_bytes() for u in updates]) == [None] * len(updates)
    else:
        for u in updates:
            agg.add(u.to_bytes())
    return agg


def test_aggregator_and_holder_agree_across_workers(
    both, config, roster, keypair, layout, tmp_path, vectors
) -> None:
    updates = both[0]
    results = []
    for workers, many in ((1, False), (2, True), (2, False)):
        agg = _aggregate(updates, workers, config, roster, keypair, layout, tmp_path, many=many)
        aggregate = agg.finalize()
        holder = _holder(config, keypair, roster, workers)
        forget_verified()
        mean = holder.decrypt(aggregate, agg.evidence(holder.challenge(aggregate)), layout=layout)
        results.append((agg.running_sum(), aggregate.chunks, mean))
        agg.close()
    for running, chunks, mean in results[1:]:
        assert np.array_equal(running, results[0][0])
        assert chunks == results[0][1]
        assert np.array_equal(mean, results[0][2])
    weights = dict(zip(CLIENT_IDS, WEIGHTS, strict=True))
    ids = CLIENT_IDS[:3]
    expected = np.average([vectors[c] for c in ids], axis=0, weights=[weights[c] for c in ids])
    np.testing.assert_allclose(results[0][2], expected, atol=1e-6)
    assert results[0][2].shape == (PARAMS,)


def _bad_proof_update(signing_keys, config, keypair, vectors, layout):
    """A member's update whose signed proof does not verify (one response byte flipped)."""
    client = _client("delta", signing_keys, config, keypair, 1)
    made = client.encrypt_chunks(vectors["delta"], round_id=1)
    proof = bytearray(made.proofs[0])
    proof[-5] ^= 0x10
    return client.sign_update(
        made.chunks, proofs=(bytes(proof),), layout=layout, round_id=1, weight=2.0
    )


def test_refusals_are_the_same_across_workers(
    both, signing_keys, config, roster, keypair, vectors, layout, tmp_path
) -> None:
    bad = _bad_proof_update(signing_keys, config, keypair, vectors, layout)
    messages = []
    for workers in (1, 2):
        forget_verified()
        agg = _spooled(config, roster, keypair, layout, tmp_path / f"refuse-{workers}", workers)
        before = agg.running_sum()
        with pytest.raises(InvalidProof) as info:
            agg.add(bad.to_bytes())
        assert agg.running_sum() is None and before is None
        messages.append(str(info.value))
        # in a group: the bad one refused, the good ones around it accepted, in order
        forget_verified()
        outcome = agg.add_many([both[0][0].to_bytes(), bad.to_bytes(), both[0][1].to_bytes()])
        assert outcome[0] is None and outcome[2] is None
        assert isinstance(outcome[1], InvalidProof) and str(outcome[1]) == messages[-1]
        assert agg.accepted_clients == (CLIENT_IDS[0], CLIENT_IDS[1])
        agg.close()
    assert messages[0] == messages[1]


def test_a_holder_refuses_with_the_first_error_in_order_for_any_workers(
    both, signing_keys, config, roster, keypair, vectors, layout, tmp_path, monkeypatch
) -> None:
    """A lax server counts a signed update whose proof fails, first in its manifest, and the
    evidence swaps a chunk of the next client: with one worker the proof is verified (and
    refused) before that chunk is read, and with two it must be too, not the swapped chunk's
    Merkle path first."""
    bad = _bad_proof_update(signing_keys, config, keypair, vectors, layout)
    with monkeypatch.context() as patch:
        patch.setattr(fhe_agg.server._update_check, "check_update_proofs", lambda *a, **k: None)
        agg = _spooled(config, roster, keypair, layout, tmp_path / "lax", 1)
        for update in (bad, both[0][0], both[0][1]):
            agg.add(update.to_bytes())
    with agg:
        aggregate = agg.finalize()
        evidence = agg.evidence(range(len(aggregate.chunks)))
    items = evidence.chunks[0]
    swapped = (items[0], dataclasses.replace(items[1], chunk=items[2].chunk), items[2])
    forged = AggregateEvidence(evidence.round_id, {**evidence.chunks, 0: swapped}, evidence.proofs)
    for workers in (1, 2):
        forget_verified()
        with pytest.raises(InvalidProof, match="'delta'"):
            _holder(config, keypair, roster, workers).verify(aggregate, forged, layout=layout)


def test_a_replayed_update_costs_the_pool_no_proof_check(
    both, config, roster, keypair, layout, tmp_path, monkeypatch
) -> None:
    """``add_many`` checks ``workers`` updates at once, but not the content of a client it
    already counted: a replay is refused as a duplicate without verifying its proof again."""
    checked: list[str] = []
    real = fhe_agg.server._update_check.check_update_proofs

    def counting(*args, **kwargs) -> None:
        checked.append(kwargs["client_id"])
        real(*args, **kwargs)

    monkeypatch.setattr(fhe_agg.server._update_check, "check_update_proofs", counting)
    first, second = both[0][0], both[0][1]
    forget_verified()
    with _spooled(config, roster, keypair, layout, tmp_path / "replay", 2) as agg:
        agg.add(first.to_bytes())
        outcome = agg.add_many([second.to_bytes(), second.to_bytes(), first.to_bytes()])
        assert outcome[0] is None
        for refused in outcome[1:]:
            assert isinstance(refused, DuplicateUpdate) and "this exact update" in str(refused)
        assert agg.accepted_clients == (CLIENT_IDS[0], CLIENT_IDS[1])
    # ``second`` twice in one window of two: both checked (it was not counted when the window
    # began); ``first`` in the next window: refused unchecked
    assert checked == [CLIENT_IDS[0], CLIENT_IDS[1], CLIENT_IDS[1]]


def test_ingest_queue_uses_the_pool(both, config, roster, keypair, layout, tmp_path) -> None:
    forget_verified()
    with _spooled(config, roster, keypair, layout, tmp_path / "queue", 2) as agg:
        queue = IngestQueue(agg, max_pending_bytes=1 << 30, max_pending=8)
        tickets = [queue.submit(u.to_bytes()) for u in both[1]]
        tickets.append(queue.submit(both[1][0].to_bytes()))  # a duplicate
        queue.close()
        assert queue.accepted == 3
        assert [t for t, _ in queue.rejected] == [tickets[-1]]


def _slow_square(k: int, delay: float, ran: list[int]) -> int:
    time.sleep(delay)
    ran.append(k)
    if k in (1, 3):
        raise ValueError(f"task {k}")
    return k * k


def test_thread_pool_keeps_order_and_the_first_failure() -> None:
    """Later tasks finish first; results come in task order, and task 1's error is raised
    (not task 3's, which failed earlier in time) once every task has run."""
    delays = [0.2, 0.15, 0.1, 0.0]
    ran: list[int] = []
    ok = [(k, d, ran) for k, d in zip((0, 2, 4, 5), delays, strict=True)]
    assert run_ordered(_slow_square, ok, workers=2, threads=True) == [0, 4, 16, 25]
    ran.clear()
    with pytest.raises(ValueError, match="task 1"):
        run_ordered(
            _slow_square, [(k, d, ran) for k, d in enumerate(delays)], workers=2, threads=True
        )
    assert sorted(ran) == [0, 1, 2, 3]


def _nested(k: int) -> list[int]:
    return run_ordered(abs, [(-k,), (-k - 1,)], workers=2, threads=True)


def test_nested_tasks_on_the_thread_pool_run_inline() -> None:
    """Two tasks that each run tasks of their own on the same 2-thread pool: inline, no wait
    for a thread they occupy."""
    out: list[list[list[int]]] = []
    runner = threading.Thread(
        target=lambda: out.append(run_ordered(_nested, [(0,), (5,)], workers=2, threads=True)),
        daemon=True,
    )
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive() and out == [[[0, 1], [5, 6]]]


def test_operand_cache_under_concurrent_threads(keypair) -> None:
    """More distinct operands than the cache holds, each asked for by many threads at once:
    every answer equals the operand made alone."""
    key = data_level_key(keypair[0])
    values = [np.roll(key.pk0_ntt, k, axis=1) for k in range(_OPERAND_CACHE + 4)]
    expected = [FixedOperand.of(v.copy(), key.primes) for v in values]
    with ThreadPoolExecutor(8) as pool:
        got = list(
            pool.map(
                lambda k: (k, fixed_operand(values[k], key.primes)), list(range(len(values))) * 6
            )
        )
    for k, operand in got:
        assert np.array_equal(operand.value, expected[k].value)
        assert np.array_equal(operand.quotient, expected[k].quotient)


def test_concurrent_holders_on_the_thread_pool(
    both, config, roster, keypair, layout, tmp_path
) -> None:
    """Three holders in three threads of the caller check the same aggregate at once with
    ``workers=2`` (one shared pool, memo and operand cache): each gets the mean of one worker."""
    agg = _aggregate(both[0], 1, config, roster, keypair, layout, tmp_path, many=False)
    aggregate = agg.finalize()
    evidence = agg.evidence(range(len(aggregate.chunks)))

    def mean(workers: int) -> np.ndarray:
        holder = _holder(config, keypair, roster, workers)
        return holder.decrypt(aggregate, evidence, layout=layout)

    forget_verified()
    alone = mean(1)
    forget_verified()
    with ThreadPoolExecutor(3) as callers:
        together = list(callers.map(mean, [2, 2, 2]))
    agg.close()
    assert len(together) == 3
    for got in together:
        assert np.array_equal(got, alone)
