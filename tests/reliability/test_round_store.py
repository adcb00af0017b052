"""The aggregator's SQLite store: resume, refusals of foreign or damaged stores, the audit log."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import weighted_mean

from fhe_agg import (
    Aggregator,
    CorruptStore,
    DuplicateUpdate,
    FederationConfig,
    InvalidSignature,
    KeyHolder,
    Layout,
    LayoutMismatch,
    ParameterMismatch,
    Rejected,
    RoundMismatch,
    StoreError,
    generate_single_key,
)
from fhe_agg.identity import AuditLog, Suite, SuiteSigningKey, verify_log


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "fhe_agg_state" / "aggregator-round-1.sqlite"


@pytest.fixture
def open_agg(config, keypair, roster, layout, store):
    opened: list[Aggregator] = []

    def make(**changes: object) -> Aggregator:
        args = {
            "config": config,
            "roster": roster,
            "public_key": keypair[0],
            "round_id": 1,
            "layout": layout,
            "store": store,
            **changes,
        }
        agg = Aggregator(**args)  # type: ignore[arg-type]
        opened.append(agg)
        return agg

    yield make
    for agg in opened:
        agg.close()


@pytest.fixture
def two_stored(open_agg, updates):
    """A store holding alpha's and bravo's updates, closed as by a crash-free restart."""
    agg = open_agg()
    agg.add(updates["alpha"].to_bytes())
    agg.add(updates["bravo"].to_bytes())
    snapshot = agg.running_sum()
    agg.close()
    return snapshot


def test_resume_restores_clients_sum_and_evidence(
    two_stored, open_agg, make_aggregator, updates, holder, layout, vectors
) -> None:
    agg = open_agg()
    assert agg.accepted_clients == ("alpha", "bravo")
    assert np.array_equal(agg.running_sum(), two_stored)
    agg.add(updates["charlie"])
    aggregate = agg.finalize()
    memory = make_aggregator()  # the same round without a store
    for cid in ("alpha", "bravo", "charlie"):
        memory.add(updates[cid])
    assert aggregate.to_bytes() == memory.finalize().to_bytes()
    evidence = agg.evidence(holder.challenge(aggregate))  # chunks read back from the store
    mean = holder.decrypt(aggregate, evidence, layout=layout)
    np.testing.assert_allclose(
        mean, weighted_mean(vectors, ("alpha", "bravo", "charlie")), atol=1e-6
    )


def test_duplicate_after_restart_is_refused_and_changes_nothing(
    two_stored, open_agg, updates, clients, vectors
) -> None:
    agg = open_agg()
    with pytest.raises(DuplicateUpdate, match="this exact update is counted"):
        agg.add(updates["alpha"].to_bytes())
    other = clients["bravo"].encrypt_update(vectors["bravo"] * 0.5, round_id=1, weight=11.0)
    with pytest.raises(DuplicateUpdate, match="another update is counted"):
        agg.add(other)
    assert np.array_equal(agg.running_sum(), two_stored)
    agg.close()
    assert open_agg().accepted_clients == ("alpha", "bravo")


def test_finalized_flag_is_persisted(open_agg, updates) -> None:
    agg = open_agg()
    for cid in ("alpha", "bravo", "charlie"):
        agg.add(updates[cid])
    first = agg.finalize().to_bytes()
    agg.close()
    resumed = open_agg()
    with pytest.raises(Rejected, match="finalized"):
        resumed.add(updates["delta"])
    assert resumed.finalize().to_bytes() == first


def test_a_second_live_aggregator_is_refused(two_stored, open_agg) -> None:
    first = open_agg()
    with pytest.raises(StoreError, match="in use"):
        open_agg()
    first.close()
    assert open_agg().accepted_clients == ("alpha", "bravo")


def test_store_of_another_round_config_key_or_layout_is_refused(
    two_stored, open_agg, config
) -> None:
    with pytest.raises(RoundMismatch, match="another round: 1"):
        open_agg(round_id=2)
    other = FederationConfig(min_clients=3, max_clients=8, max_weight=50.0, value_bound=4.0)
    with pytest.raises(ParameterMismatch, match="params_id"):
        open_agg(config=other)
    with pytest.raises(ParameterMismatch, match="public key"):
        open_agg(public_key=generate_single_key(config.preset)[0])
    with pytest.raises(LayoutMismatch, match="layout"):
        open_agg(layout=Layout.for_vector(1000))
    assert open_agg().accepted_clients == ("alpha", "bravo")  # refusals changed nothing


def test_a_key_holder_store_is_not_an_aggregator_store(open_agg, config, keypair, roster, store):
    public_key, share = keypair
    args = {"config": config, "public_key": public_key, "key_share": share, "roster": roster}
    KeyHolder(holder_id="h", store=store, **args).close()
    with pytest.raises(StoreError, match="'keyholder' store"):
        open_agg()


def _sql(store: Path, *statements: str) -> None:
    conn = sqlite3.connect(store, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("UPDATE running_sum SET data = zeroblob(length(data)) WHERE idx = 1", "digest"),
        ("DELETE FROM running_sum WHERE idx = 0", "not numbered"),
        ("INSERT INTO running_sum SELECT idx + 100, data, digest FROM running_sum", "not numbered"),
        ("DELETE FROM updates WHERE slot = 1", "state says 2 updates, 1"),
        ("UPDATE state SET accepted = 1", "state says 1 updates, 2"),
        ("DELETE FROM chunks WHERE id = 4", "chunk rows"),
        ("UPDATE updates SET leaves = substr(leaves, 1, 64) WHERE slot = 0", "inconsistent"),
        ("UPDATE updates SET statement = x'00' WHERE slot = 0", "does not decode"),
        ("UPDATE meta SET value = 2 WHERE key = 'version'", "version 2"),
        ("DROP TABLE meta", "not an fhe_agg store"),
    ],
)
def test_edited_store_is_refused(two_stored, open_agg, store, damage, match) -> None:
    _sql(store, damage)
    with pytest.raises(CorruptStore, match=match):
        open_agg()


def test_edited_signature_is_refused(two_stored, open_agg, store) -> None:
    _sql(store, "UPDATE updates SET signature = zeroblob(length(signature)) WHERE slot = 1")
    with pytest.raises(InvalidSignature) as refused:
        open_agg()
    assert any("while resuming" in note for note in refused.value.__notes__)


@pytest.mark.parametrize("keep", [0, 50, 4096, -1])
def test_truncated_or_garbage_file_is_refused(two_stored, open_agg, store, keep) -> None:
    data = store.read_bytes()
    store.write_bytes(data[:keep] if keep >= 0 else b"\x07" * len(data))
    with pytest.raises(CorruptStore):
        open_agg()


def test_store_deleted_without_its_log_is_refused(open_agg, store, updates) -> None:
    agg = open_agg()
    agg.add(updates["alpha"])  # committed to the -wal file, not yet checkpointed
    wal = Path(f"{store}-wal")
    assert wal.stat().st_size > 0
    saved = wal.read_bytes()
    agg.close()
    store.unlink()
    wal.write_bytes(saved)
    with pytest.raises(CorruptStore, match="without its log"):
        open_agg()


def test_altered_chunk_is_caught_when_read_as_evidence(two_stored, open_agg, store) -> None:
    _sql(store, "UPDATE chunks SET data = zeroblob(length(data)) WHERE id = 2")
    agg = open_agg()
    agg.evidence([1])  # other chunks are fine
    with pytest.raises(CorruptStore, match="chunk 2 of update 0"):
        agg.evidence([2])


def test_spool_dir_and_store_are_exclusive(open_agg, tmp_path) -> None:
    with pytest.raises(ValueError, match="spool_dir"):
        open_agg(spool_dir=tmp_path / "spool")


def test_audit_log_has_one_accepted_entry_per_update_across_restarts(
    open_agg, updates, tmp_path
) -> None:
    key = SuiteSigningKey.generate(Suite.PQ_ONLY)
    path = tmp_path / "audit.jsonl"
    agg = open_agg(audit=AuditLog(path, key=key, actor="agg"))
    agg.add(updates["alpha"])
    agg.add(updates["bravo"])
    agg.close()
    agg = open_agg(audit=AuditLog(path, key=key, actor="agg"))
    for cid in ("alpha", "bravo", "charlie"):  # the driver re-sends everything
        with contextlib.suppress(DuplicateUpdate):
            agg.add(updates[cid])
    agg.finalize()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    accepted = Counter(e["payload"]["client"] for e in entries if e["event"] == "update.accepted")
    assert accepted == {"alpha": 1, "bravo": 1, "charlie": 1}
    resumed = [e["payload"] for e in entries if e["event"] == "round.resumed"]
    assert resumed == [{"round": 1, "clients": ["alpha", "bravo"], "finalized": False}]
    assert [e["event"] for e in entries].count("update.rejected") == 2
    assert verify_log(path, {"agg": key.verify_key}) == len(entries)


def test_resume_reads_one_model_not_every_clients_chunks(open_agg, updates) -> None:
    agg = open_agg()
    for update in updates.values():
        agg.add(update)
    sum_bytes = agg.running_sum().nbytes
    all_chunks = sum(len(c) for u in updates.values() for c in u.chunks)
    agg.close()
    tracemalloc.start()
    try:
        resumed = open_agg()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(resumed.accepted_clients) == 4
    assert peak < 2 * sum_bytes < all_chunks  # the sum and a row, not the 12 stored chunks
