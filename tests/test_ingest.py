"""IngestQueue: bounded memory under a flood of producers, each accepted update counted once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fhe_agg import (
    Aggregator,
    Busy,
    Client,
    DuplicateUpdate,
    FederationConfig,
    IngestQueue,
    Layout,
    MessageTooLarge,
    Rejected,
    SeededRandom,
    SigningKey,
    StoreError,
    generate_single_key,
)

PARAMS = 8192  # one chunk per update
CLIENTS = 12
PRODUCERS = 4


@pytest.fixture(scope="module")
def federation() -> dict[str, object]:
    config = FederationConfig(min_clients=3, max_clients=CLIENTS, max_weight=20.0, value_bound=1.0)
    public_key, _ = generate_single_key(config.preset, rng=SeededRandom(3))
    keys = {f"c{i:02d}": SigningKey.generate() for i in range(CLIENTS)}
    rng = np.random.default_rng(5)
    updates = {
        cid: Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        .encrypt_update(rng.uniform(-1, 1, PARAMS), round_id=1, weight=1.0 + i)
        .to_bytes()
        for i, (cid, key) in enumerate(keys.items())
    }
    return {
        "config": config,
        "public_key": public_key,
        "roster": {cid: key.verify_key for cid, key in keys.items()},
        "updates": updates,
    }


def _aggregator(
    federation: dict[str, object], cls: type[Aggregator] = Aggregator, store: Path | None = None
) -> Aggregator:
    return cls(
        config=federation["config"],  # type: ignore[arg-type]
        roster=federation["roster"],  # type: ignore[arg-type]
        public_key=federation["public_key"],  # type: ignore[arg-type]
        round_id=1,
        layout=Layout.for_vector(PARAMS),
        store=store,
    )


class _GatedAggregator(Aggregator):
    """A real aggregator whose ``add`` waits for the test to open a gate: a slow server."""

    gate = threading.Event()

    def add(self, update: object) -> None:  # type: ignore[override]
        assert self.gate.wait(10)
        super().add(update)  # type: ignore[arg-type]


def test_flood_stays_within_bound_and_counts_each_update_once(
    federation: dict[str, object],
) -> None:
    updates: dict[str, bytes] = federation["updates"]  # type: ignore[assignment]
    size = len(next(iter(updates.values())))
    bound = int(2.5 * size)  # room for two updates, never three
    # every update is sent twice (a retrying client): the second copy must be refused
    work = [blob for blob in updates.values() for _ in range(2)]
    tickets: list[int] = []
    busy = [0]
    lock = threading.Lock()
    with _aggregator(federation) as agg:
        queue = IngestQueue(agg, max_pending_bytes=bound, max_pending=8)
        observed = [0]  # the largest pending_bytes the watcher saw (a list grew without bound)
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.0005):
                observed[0] = max(observed[0], queue.pending_bytes)

        def produce(part: list[bytes]) -> None:
            for blob in part:
                while True:
                    try:
                        ticket = queue.submit(blob, timeout=0.001)
                        break
                    except Busy:
                        with lock:
                            busy[0] += 1
                with lock:
                    tickets.append(ticket)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [
            threading.Thread(target=produce, args=(work[i::PRODUCERS],)) for i in range(PRODUCERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert queue.drain(timeout=60)
        queue.close()
        stop.set()
        watcher.join()

        assert busy[0] > 0, "the producers never met back-pressure: the test proves nothing"
        assert observed[0] <= bound
        assert size < queue.peak_pending_bytes <= bound
        assert queue.peak_pending == 2  # the byte bound binds before max_pending=8
        assert sorted(tickets) == list(range(len(work)))
        assert queue.accepted == CLIENTS
        assert sorted(agg.accepted_clients) == sorted(updates)
        assert len(queue.rejected) == CLIENTS
        assert all(isinstance(err, DuplicateUpdate) for _, err in queue.rejected)
        assert queue.pending == 0 and queue.pending_bytes == 0
        expected_weight = sum(1.0 + i for i in range(CLIENTS))
        assert agg.finalize().total_weight == expected_weight


class _DiskFullAggregator(Aggregator):
    """A real aggregator whose store can no longer be written: a server-side failure."""

    def add(self, update: object) -> None:  # type: ignore[override]
        raise StoreError("store round.sqlite: database or disk is full")


def test_worker_adds_into_a_store_opened_by_another_thread(
    federation: dict[str, object], tmp_path: Path
) -> None:
    # regression: the SQLite connection refused use from the worker thread, and every update
    # came back "rejected" with a StoreError
    blobs = list(federation["updates"].values())[:4]  # type: ignore[union-attr]
    with _aggregator(federation, store=tmp_path / "round.sqlite") as agg:
        with IngestQueue(agg, max_pending_bytes=1 << 30) as queue:
            for blob in blobs:
                queue.submit(blob)
        assert queue.rejected == () and queue.accepted == len(blobs)
        aggregate = agg.finalize()
    with _aggregator(federation, store=tmp_path / "round.sqlite") as resumed:
        assert resumed.finalize().to_bytes() == aggregate.to_bytes()


def test_a_store_failure_stops_the_worker_instead_of_rejecting_the_client(
    federation: dict[str, object],
) -> None:
    blobs = list(federation["updates"].values())  # type: ignore[union-attr]
    with _aggregator(federation, _DiskFullAggregator) as agg:
        queue = IngestQueue(agg, max_pending_bytes=1 << 30)
        queue.submit(blobs[0])
        with pytest.raises(StoreError, match="disk is full"):
            queue.close()
        assert queue.rejected == () and queue.accepted == 0
        assert queue.pending == 0 and queue.pending_bytes == 0
        with pytest.raises(Rejected, match="closed"):
            queue.submit(blobs[1], timeout=0)


def test_full_queue_raises_busy_and_queues_nothing(federation: dict[str, object]) -> None:
    blobs = list(federation["updates"].values())  # type: ignore[union-attr]
    _GatedAggregator.gate.clear()
    with _aggregator(federation, _GatedAggregator) as agg:
        queue = IngestQueue(agg, max_pending_bytes=10 * len(blobs[0]), max_pending=1)
        queue.submit(blobs[0])
        t0 = time.monotonic()
        with pytest.raises(Busy, match="retry later"):
            queue.submit(blobs[1], timeout=0.2)
        assert time.monotonic() - t0 >= 0.2
        assert queue.pending == 1 and queue.pending_bytes == len(blobs[0])
        _GatedAggregator.gate.set()
        queue.submit(blobs[1], timeout=10)  # room again once the worker moves on
        queue.close()
        assert queue.accepted == 2 and agg.accepted_clients == ("c00", "c01")
        with pytest.raises(Rejected, match="closed"):
            queue.submit(blobs[2], timeout=0)


def test_oversized_update_is_refused_at_once(federation: dict[str, object]) -> None:
    blob = next(iter(federation["updates"].values()))  # type: ignore[union-attr]
    with _aggregator(federation) as agg:
        with IngestQueue(agg, max_pending_bytes=len(blob) - 1) as queue:
            with pytest.raises(MessageTooLarge, match="ingest bound"):
                queue.submit(blob)
            assert queue.pending_bytes == 0
        with IngestQueue(agg, max_pending_bytes=1 << 40) as queue, pytest.raises(MessageTooLarge):
            queue.submit(blob + bytes(agg.bounds.update_bytes))
        assert agg.accepted_clients == ()


def test_arguments_are_checked(federation: dict[str, object]) -> None:
    with _aggregator(federation) as agg:
        with pytest.raises(ValueError, match="max_pending_bytes"):
            IngestQueue(agg, max_pending_bytes=0)
        with pytest.raises(TypeError, match="aggregator"):
            IngestQueue(object(), max_pending_bytes=1)  # type: ignore[arg-type]
        with IngestQueue(agg, max_pending_bytes=1 << 20) as queue, pytest.raises(TypeError):
            queue.submit("not bytes")  # type: ignore[arg-type]
