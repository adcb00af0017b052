"""The Flower App on Flower's deployment engine: one ``flower-superlink`` and six
``flower-supernode`` processes on 127.0.0.1 (three key holders 2-of-3, three clients, all pinned
to an admin-signed roster), each SuperNode running every message in a fresh ``flwr-clientapp``
process, so every node step goes through its state folder.

Two rounds are checked against a plaintext FedAvg of the same clipped updates; then holder-2's
SuperNode (in the decrypting set) is SIGKILLed and restarted on the same state folder, and a
second ``flwr run`` on the same key (no new ceremony) first sends the round-1 and round-2
requests the ServerApp recorded in the first run to the key holders again, through the SuperLink
(the example's ``replay.py`` hook), and then runs round 3 with holder-2 decrypting. The state
folders are scanned for the key share's bytes after the run and after the SIGKILL. Every process
is stopped by its pid in a ``finally`` (``launch.Processes``), also when the test fails, with the
processes it started (each runs in its own process group); the test checks that none is left.

Every connection is TLS, with a CA and a server certificate for 127.0.0.1 made here, and the
SuperLink runs with SuperNode authentication: each SuperNode's ECDSA key, made here, is
registered with ``flwr supernode register`` before it starts. A SuperNode with an unregistered
key and one without TLS are turned away.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Context, RecordDict

from fhe_agg.flower._node_state import node_state
from fhe_agg.flower._protocol import (
    ACTION_CHALLENGE,
    ACTION_DECRYPT,
    CLIENT_APP_RAISED_EXCEPTION,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flower_federation"
CLIENTS, HOLDERS, THRESHOLD = 3, 3, 2
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def example() -> Any:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import certs
        import launch
        import pinning

        yield certs, launch, pinning
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
        raw = found[1]._value.tobytes()
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


def _check_tls(port: int, ca: Path) -> None:
    """The SuperLink's port speaks TLS with the certificate our CA made for 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert()
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),  # not a certificate the system trusts
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def _turned_away(procs: Any, name: str, needle: str) -> None:
    """The SuperNode ``name`` gave up (exit code 1) without joining, and said ``needle``."""
    process = procs.running[name]
    assert process.wait(timeout=120) != 0
    log = (procs.logs / f"{name}.log").read_text(errors="replace")
    assert needle in log, log[-2000:]
    assert "SuperNode ID:" not in log


def _check_replays(summary: dict[str, Any], recorded: list[dict[str, Any]]) -> None:
    """Every recorded round-1/2 request reached its key holder again and was refused, by type."""
    replayed = summary["replayed"]
    assert len(replayed) == len(recorded) > 0
    assert {(r["action"], r["round"]) for r in replayed if r["holder"] == 2} == {
        (action, r) for action in (ACTION_CHALLENGE, ACTION_DECRYPT) for r in (1, 2)
    }
    for row in replayed:
        assert row["replied"] and "accepted" not in row, row
        assert row["error_code"] == CLIENT_APP_RAISED_EXCEPTION, row
        if row["action"] == ACTION_CHALLENGE:  # the holder's round machine: round 2 is done
            assert row["reason"] in (
                "OutOfOrder: round 1 is older than round 2",
                "OutOfOrder: round 2: already decrypted",
            ), row
            assert f"round {row['round']}" in row["reason"]
        else:  # no aggregate of that round is pending: no partial is issued
            assert row["reason"] == (
                f"OutOfOrder: no aggregate of round {row['round']} was challenged here"
            ), row


@pytest.mark.slow
def test_deployment_two_rounds_then_a_killed_holder_decrypts_round_three(
    example: Any, tmp_path: Path
) -> None:
    certs, launch, pinning = example
    roster = tmp_path / "keys"
    pinning.write_consortium(
        roster,
        clients=CLIENTS,
        holders=HOLDERS,
        threshold=THRESHOLD,
        min_clients=CLIENTS,
        preset="precise",
    )
    tls = certs.write_tls(tmp_path / "tls")
    port = launch.free_port()
    env = launch.environment(tmp_path / "flwr-home", "local-deployment", port, tls=tls)
    logs = tmp_path / "logs"
    nodes = CLIENTS + HOLDERS
    names = [pinning.member_of(k, HOLDERS) for k in range(nodes)]
    folders = {name: tmp_path / "state" / name for name in names}
    auth = {name: tmp_path / "flower-keys" / name for name in [*names, "stranger"]}
    public = {name: certs.write_node_key(path) for name, path in auth.items()}
    requests = tmp_path / "requests.json"
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
            tls=tls,
            auth_key=auth[names[k]],
        )

    with launch.Processes(logs) as procs:
        launch.start_superlink(
            procs, env, port, tmp_path / "superlink.db", simulation=False, tls=tls, node_auth=True
        )
        _check_tls(port, tls.ca)
        node_id = {
            name: launch.register_supernode(env, "local-deployment", public[name], name)
            for name in names
        }
        # turned away: a key the SuperLink was not given, and a SuperNode without TLS
        launch.start_supernode(
            procs, env, "stranger", port, {"n": 1}, tls=tls, auth_key=auth["stranger"], max_wait=10
        )
        launch.start_supernode(procs, env, "plaintext", port, {"n": 2}, max_wait=10)
        for k in range(nodes):
            supernode(k)
        t0 = time.monotonic()
        code = launch.flwr_run(
            env,
            "local-deployment",
            {
                **run_config,
                "num-server-rounds": 2,
                "summary-file": str(tmp_path / "run1.json"),
                "record-file": str(requests),
            },
            timeout=RUN_TIMEOUT,
            log=logs / "flwr-run-1.log",
        )
        first = time.monotonic() - t0
        assert code == 0, (logs / "flwr-run-1.log").read_text()[-3000:]
        summary = _summary(tmp_path / "run1.json")
        _check_rounds(summary, [1, 2])
        assert not summary["key_reused"]  # the first run ran the ceremony
        # the key holders are the SuperNodes registered under their names (Flower's node id is
        # the one registration gave the SuperNode's key)
        holder_nodes = [node_id[f"holder-{j}"] for j in range(1, HOLDERS + 1)]
        assert summary["holder_nodes"] == holder_nodes
        assert launch.list_supernodes(env, "local-deployment") == dict.fromkeys(
            node_id.values(), "online"
        )
        _turned_away(procs, "stranger", "Failed to activate SuperNode")
        _turned_away(procs, "plaintext", "Server disconnected without sending a response")

        holder2 = folders["holder-2"]
        windows = _share_windows(holder2, 1, roster)
        assert _scan(tmp_path / "state", windows) == []
        budget, rounds = _budget(holder2)
        assert rounds == [1, 2] and budget > 0
        recorded = json.loads(requests.read_text())

        procs.kill("holder-2")  # SIGKILL: no clean-up runs
        assert _scan(tmp_path / "state", windows) == []
        assert _budget(holder2) == (budget, [1, 2])  # nothing lost with the process
        # the SuperLink refuses the same registered key until it has seen the old session go
        # (no heartbeat for two intervals); then the same member, state folder and key
        offline = launch.wait_for_status(
            env, "local-deployment", node_id["holder-2"], "offline", timeout=180
        )
        supernode(1)

        t0 = time.monotonic()
        code = launch.flwr_run(
            env,
            "local-deployment",
            {
                **run_config,
                "num-server-rounds": 1,
                "first-round": 3,
                "summary-file": str(tmp_path / "run2.json"),
                "replay-file": str(requests),
            },
            timeout=RUN_TIMEOUT,
            log=logs / "flwr-run-2.log",
        )
        second = time.monotonic() - t0
        assert code == 0, (logs / "flwr-run-2.log").read_text()[-3000:]
        groups = procs.groups
    # stopped with everything they started (``flower-superexec``, ``flwr-clientapp``)
    deadline = time.monotonic() + 5
    while (alive := [g for g in groups if launch.group_alive(g)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == [], f"process groups still running after stop: {alive}"
    assert launch.flower_processes() == []
    summary = _summary(tmp_path / "run2.json")
    assert summary["holder_nodes"] == holder_nodes  # the restarted SuperNode kept its node id
    # before round 3, the restarted holder refused every replayed round-1/2 request
    _check_replays(summary, recorded)
    _check_rounds(summary, [3])
    assert summary["key_reused"]  # the second run made no new key
    assert _share_windows(holder2, 1, roster) == windows  # the same share
    # the replays spent nothing: one more round's worth (round 3) and no round decrypted twice
    after, rounds = _budget(holder2)
    assert rounds == [1, 2, 3] and after == budget + budget // 2
    assert _scan(tmp_path / "state", windows) == []
    with np.load(tmp_path / "model.npz") as model:
        assert model["weight"].shape == (12,) and np.all(np.isfinite(model["weight"]))
    print(
        f"deployment: run 1 (setup + 2 rounds) {first:.0f} s, holder-2 offline after "
        f"{offline:.0f} s, run 2 (replays + 1 round) {second:.0f} s"
    )
