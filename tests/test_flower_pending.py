"""The aggregate a key holder node keeps between its challenge and its partial: a file beside
``node.db``, named by the digest the holder's round state records in the same transaction
(``_node_pending``). Kept, read back and removed; refused (``CorruptStore``, nothing changed)
when missing or over the round's bound (a cut, extended or edited file is refused by the
handler, which parses it and checks its digest: ``tests/test_flower_strategy.py``); orphans of
an interrupted save never read and removed by the next save; and after a SIGKILL at any instant
of a run of saves, the round state names a file that is intact.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from fhe_agg.errors import CorruptStore
from fhe_agg.flower._node_pending import PendingAggregate
from fhe_agg.flower._node_store import NodeStore

ROOT = Path(__file__).resolve().parents[1]
WHERE = ("pending-test", 3)
BOUND = 1 << 24


def _aggregate(n: int, size: int = 1 << 20) -> bytes:
    """``size`` bytes that differ for every ``n`` (a stand-in: this layer keeps any bytes)."""
    return hashlib.shake_256(n.to_bytes(8, "little")).digest(size)


def _digest(data: bytes) -> bytes:
    """A stand-in for the digest the holder's round state records for the aggregate."""
    return hashlib.sha3_256(data).digest()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    opened = NodeStore(tmp_path, "holder-1")
    yield opened
    opened.close()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "pending-" in p.name)


def test_a_kept_aggregate_round_trips_through_its_file_with_its_round_state(
    store: NodeStore,
) -> None:
    kept = PendingAggregate(store, *WHERE)
    data = _aggregate(1)
    kept.keep({"round": b"state-1"}, data, _digest(data))
    (name,) = _files(store.folder)
    assert name.endswith(f"-{_digest(data).hex()}.aggregate")
    assert (store.folder / name).stat().st_mode & 0o777 == 0o600
    assert kept.read(_digest(data), 7, max_bytes=BOUND) == data
    assert store.get(*WHERE, "round") == b"state-1"  # written in the same transaction
    with pytest.raises(CorruptStore, match="over the round's bound of 1000 bytes"):
        kept.read(_digest(data), 7, max_bytes=1000)
    # another aggregate replaces it; dropping forgets it
    kept.keep({"round": b"state-2"}, _aggregate(2), _digest(_aggregate(2)))
    second = _digest(_aggregate(2)).hex()
    assert _files(store.folder) == [f"{store.name('pending', *WHERE)}-{second}.aggregate"]
    kept.drop({"round": b"state-3"})
    assert _files(store.folder) == []
    assert store.get(*WHERE, "round") == b"state-3"


def test_a_missing_file_is_refused_and_nothing_changes(store: NodeStore) -> None:
    kept = PendingAggregate(store, *WHERE)
    data = _aggregate(4)
    kept.keep({"round": b"challenged"}, data, _digest(data))
    (name,) = _files(store.folder)
    (store.folder / name).unlink()
    with pytest.raises(CorruptStore, match="missing") as refused:
        kept.read(_digest(data), 4, max_bytes=BOUND)
    assert refused.value.round_id == 4 and "round 4" in str(refused.value)
    assert "challenge again" in str(refused.value)  # what the operator can do
    assert store.get(*WHERE, "round") == b"challenged"
    # the round's challenge sent again keeps the aggregate anew
    kept.keep({"round": b"challenged"}, data, _digest(data))
    assert kept.read(_digest(data), 4, max_bytes=BOUND) == data


def test_a_row_an_earlier_version_kept_is_deleted_by_the_next_save(store: NodeStore) -> None:
    store.put(*WHERE, {"pending": b"the aggregate, as a blob"})
    PendingAggregate(store, *WHERE).drop({"round": b"voted"})
    assert store.get(*WHERE, "pending") is None


def test_orphans_are_never_read_and_the_next_save_removes_only_its_own(store: NodeStore) -> None:
    kept = PendingAggregate(store, *WHERE)
    kept.keep({}, _aggregate(1), _digest(_aggregate(1)))
    (named,) = _files(store.folder)
    prefix = store.name("pending", *WHERE)
    # a kill after the rename, before COMMIT; one during the write; another epoch's aggregate
    orphan = store.folder / f"{prefix}-{_digest(b'x').hex()}.aggregate"
    orphan.write_bytes(b"x")
    partial = store.folder / f".{prefix}-interrupted.tmp"
    partial.write_bytes(b"half of it")
    other = PendingAggregate(store, WHERE[0], WHERE[1] + 1)
    other.keep({}, _aggregate(5), _digest(_aggregate(5)))
    (other_name,) = set(_files(store.folder)) - {named, orphan.name, partial.name}
    assert kept.read(_digest(_aggregate(1)), 1, max_bytes=BOUND) == _aggregate(1)
    kept.keep({}, _aggregate(2), _digest(_aggregate(2)))
    (mine,) = [n for n in _files(store.folder) if n.startswith(prefix)]
    assert mine.endswith(f"{_digest(_aggregate(2)).hex()}.aggregate")
    assert _files(store.folder) == sorted([mine, other_name])
    # a save that fails inside the transaction commits nothing
    store.put(*WHERE, {"round": b"before"})
    with pytest.raises(RuntimeError):
        store.put(*WHERE, {"round": b"after"}, within=_fail)
    assert store.get(*WHERE, "round") == b"before"


def _fail() -> None:
    raise RuntimeError("the disk went away")


CHILD = """
import sys
from pathlib import Path
from fhe_agg.flower._node_pending import PendingAggregate
from fhe_agg.flower._node_store import NodeStore
import hashlib

store = NodeStore(Path(sys.argv[1]), "holder-1")
kept = PendingAggregate(store, "pending-test", 3)
start = int(sys.argv[2])
print("ready", flush=True)
for n in range(start, start + 10_000):
    state = n.to_bytes(8, "little")
    if n % 3:
        data = hashlib.shake_256(state).digest(1 << 22)
        kept.keep({"round": state}, data, hashlib.sha3_256(data).digest())
    else:
        kept.drop({"round": state})
"""


def _after_kill(folder: Path) -> int:
    """Check the folder a killed child left; clear what it kept; the last state's number."""
    store = NodeStore(folder, "holder-1")
    try:
        kept, state = PendingAggregate(store, *WHERE), store.get(*WHERE, "round")
        n = 0 if state is None else int.from_bytes(state, "little")
        if n % 3:  # the round state names a kept aggregate: its file is intact
            expected = hashlib.shake_256(state or b"").digest(1 << 22)
            assert kept.read(_digest(expected), n, max_bytes=BOUND) == expected
        boundary = 3 * (n // 3 + 1)  # a state with nothing kept, as the child's drops
        kept.drop({"round": boundary.to_bytes(8, "little")})  # any orphan goes now
        assert _files(folder) == []
        return n
    finally:
        store.close()


def test_after_a_sigkill_at_any_instant_the_round_state_names_an_intact_file(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    rng = random.Random(20261206)
    start, saved = 1, 0
    for _ in range(12):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.02, 0.4))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        n = _after_kill(tmp_path)
        saved += max(n - start + 1, 0)
        start = 3 * (n // 3 + 1) + 1
    assert saved >= 4  # the kills fell among the saves, not before them
