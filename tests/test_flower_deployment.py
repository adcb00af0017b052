"""The Flower App on Flower's deployment engine: one ``flower-superlink`` and six
``flower-supernode`` processes on 127.0.0.1 (three key holders 2-of-3, three clients, all pinned
to an admin-signed roster), each SuperNode running every message in a fresh ``flwr-clientapp``
process, so every node step goes through its state folder.

Two rounds are checked against a plaintext FedAvg of the same clipped updates; then holder-2's
SuperNode (in the decrypting set) is SIGKILLed and restarted on the same state folder, and a
second ``flwr run`` on the same key (no new ceremony) runs round 3 with it decrypting. The state
folders are scanned for the key share's bytes after the run and after the SIGKILL. Every process
is stopped by its pid in a ``finally`` (``launch.Processes``), also when the test fails.
Runs insecure (no TLS, no SuperNode authentication): see docs/deploy.md for both.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fhe_agg.flower._node_state import node_state
from fhe_agg.flower._protocol import ACTION_ABORT, ACTION_DECRYPT, RECORD

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flower_federation"
CLIENTS, HOLDERS, THRESHOLD = 3, 3, 2
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def example() -> Any:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import launch
        import pinning

        yield launch, pinning
    finally:
        sys.path.remove(str(EXAMPLE))


def _context(folder: Path, partition: int, roster: Path) -> Context:
    return Context(
        run_id=1,
        node_id=1,
        node_config={
            "partition-id": partition,
            "num-partitions": CLIENTS + HOLDERS,
            "fhe-state-dir": str(folder),
        },
        state=RecordDict(),
        run_config={"holders": HOLDERS, "roster-dir": str(roster)},
    )


def _share_windows(folder: Path, partition: int, roster: Path) -> list[bytes]:
    """Pieces (64 B) of the holder's key share, unsealed here from its state folder."""
    state = node_state(_context(folder, partition, roster))
    assert state is not None and state.setup is not None
    try:
        found = state.key_share(state.setup.consortium, state.setup.epoch)
        assert found is not None
        raw = found[1]._operand.value.tobytes()
    finally:
        state.close()
    step = len(raw) // 8
    windows = [raw[i * step : i * step + 64] for i in range(8)]
    assert all(len(set(w)) > 8 for w in windows)  # not a run of zeros
    return windows


def _scan(root: Path, windows: list[bytes]) -> list[str]:
    """Every file under ``root`` (SQLite files, WAL, temp files) holding a piece of the share."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits += [f"{path}:{i}" for i, w in enumerate(windows) if w in data]
    return hits


def _budget(folder: Path) -> tuple[int, list[int]]:
    (path,) = folder.glob("holder-*.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        used = conn.execute("SELECT budget_used FROM state").fetchone()[0]
        rounds = [r for (r,) in conn.execute("SELECT round_id FROM rounds ORDER BY round_id")]
    return int(used), rounds


def _summary(path: Path) -> dict[str, Any]:
    assert path.exists(), "the ServerApp wrote no summary (see the logs folder)"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _check_rounds(summary: dict[str, Any], rounds: list[int]) -> None:
    assert [row["round"] for row in summary["per_round"]] == rounds
    for row in summary["per_round"]:
        assert row["decrypted"] and row["accepted"] == CLIENTS and row["refused"] == {}
        # the released model is the plaintext FedAvg of the same clipped updates
        assert row["max_abs_error"] is not None and row["max_abs_error"] < 1e-4
    assert summary["server_secret_objects"] == 0


@pytest.mark.slow
def test_deployment_two_rounds_then_a_killed_holder_decrypts_round_three(
    example: Any, tmp_path: Path
) -> None:
    launch, pinning = example
    roster = tmp_path / "keys"
    pinning.write_consortium(
        roster,
        clients=CLIENTS,
        holders=HOLDERS,
        threshold=THRESHOLD,
        min_clients=CLIENTS,
        preset="precise",
    )
    port = launch.free_port()
    env = launch.environment(tmp_path / "flwr-home", "local-deployment", port)
    logs = tmp_path / "logs"
    nodes = CLIENTS + HOLDERS
    names = [pinning.member_of(k, HOLDERS) for k in range(nodes)]
    folders = {name: tmp_path / "state" / name for name in names}
    run_config: dict[str, Any] = {
        "clients": CLIENTS,
        "holders": HOLDERS,
        "threshold": THRESHOLD,
        "roster-dir": str(roster),
        "model-file": str(tmp_path / "model.npz"),
    }

    def supernode(k: int) -> None:
        launch.start_supernode(
            procs,
            env,
            names[k],
            port,
            {
                "partition-id": k,
                "num-partitions": nodes,
                "fhe-state-dir": str(folders[names[k]]),
            },
        )

    with launch.Processes(logs) as procs:
        launch.start_superlink(procs, env, port, tmp_path / "superlink.db", simulation=False)
        for k in range(nodes):
            supernode(k)
        t0 = time.monotonic()
        code = launch.flwr_run(
            env,
            "local-deployment",
            {**run_config, "num-server-rounds": 2, "summary-file": str(tmp_path / "run1.json")},
            timeout=RUN_TIMEOUT,
            log=logs / "flwr-run-1.log",
        )
        first = time.monotonic() - t0
        assert code == 0, (logs / "flwr-run-1.log").read_text()[-3000:]
        summary = _summary(tmp_path / "run1.json")
        _check_rounds(summary, [1, 2])
        assert not summary["key_reused"]  # the first run ran the ceremony

        holder2 = folders["holder-2"]
        windows = _share_windows(holder2, 1, roster)
        assert _scan(tmp_path / "state", windows) == []
        budget, rounds = _budget(holder2)
        assert rounds == [1, 2] and budget > 0

        procs.kill("holder-2")  # SIGKILL: no clean-up runs
        assert _scan(tmp_path / "state", windows) == []
        assert _budget(holder2) == (budget, [1, 2])  # nothing lost with the process
        supernode(1)  # the same member on the same state folder

        t0 = time.monotonic()
        code = launch.flwr_run(
            env,
            "local-deployment",
            {
                **run_config,
                "num-server-rounds": 1,
                "first-round": 3,
                "summary-file": str(tmp_path / "run2.json"),
            },
            timeout=RUN_TIMEOUT,
            log=logs / "flwr-run-2.log",
        )
        second = time.monotonic() - t0
        assert code == 0, (logs / "flwr-run-2.log").read_text()[-3000:]
    summary = _summary(tmp_path / "run2.json")
    _check_rounds(summary, [3])
    assert summary["key_reused"]  # the second run made no new key
    assert _share_windows(holder2, 1, roster) == windows  # the same share
    after, rounds = _budget(holder2)
    assert rounds == [1, 2, 3] and after == budget + budget // 2  # one more round's worth
    assert _scan(tmp_path / "state", windows) == []

    # the restarted holder refuses a replayed request for an old round (its handlers, here)
    import client_app

    context = _context(holder2, 1, roster)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0  # as a run sets
    for action, values in (
        (ACTION_DECRYPT, {"round": 1, "set": [1, 2], "evidence": b""}),
        (ACTION_ABORT, {"round": 2}),
    ):
        message = Message(
            RecordDict({RECORD: ConfigRecord(values)}), dst_node_id=1, message_type=action
        )
        message.metadata.__dict__["_message_id"] = f"replay-{action}"
        reply = client_app.app(message, context)
        assert reply.has_error(), action
    assert _budget(holder2) == (after, [1, 2, 3])
    with np.load(tmp_path / "model.npz") as model:
        assert model["weight"].shape == (12,) and np.all(np.isfinite(model["weight"]))
    print(f"deployment: run 1 (setup + 2 rounds) {first:.0f} s, run 2 (1 round) {second:.0f} s")
