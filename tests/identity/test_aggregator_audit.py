"""A real round with roster keys: a revoked client's update is refused and the reason is logged;
the log verifies, and any single-line edit, drop, reorder or forgery is caught at its line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fhe_agg import Aggregator, Client, DuplicateUpdate, Layout
from fhe_agg.identity import (
    AuditLog,
    AuditLogError,
    Identity,
    RevokedKey,
    Roster,
    load_public_identity,
    verify_log,
    write_identity,
)

from .helpers import one_line_error

PARAMS = 64
WEIGHTS = {"alpha": 3.0, "bravo": 11.0, "charlie": 7.5, "delta": 20.0}
EVENTS = [
    ("update.accepted", 2, "bravo"),
    ("update.accepted", 3, "alpha"),
    ("update.rejected", 3, "bravo"),
    ("update.accepted", 3, "charlie"),
    ("update.rejected", 3, "alpha"),
    ("update.accepted", 3, "delta"),
    ("aggregate.finalized", 3, None),
]


@pytest.fixture(scope="module")
def produced(
    tmp_path_factory: pytest.TempPathFactory,
    members: dict[str, Identity],
    base_roster: Roster,
    config: Any,
    keypair: Any,
) -> dict[str, Any]:
    """Round 2 (bravo still valid) and round 3 (bravo revoked from 3) logged by the aggregator."""
    root = tmp_path_factory.mktemp("round")
    roster = base_roster.revoke(
        "bravo", from_round=3, reason="laptop stolen", admin=members["admin"]
    )
    public_key = keypair[0]
    layout = Layout.for_vector(PARAMS)
    rng = np.random.default_rng(5)
    clients = {
        cid: Client(
            client_id=cid,
            signing_key=members[cid].update_signing_key(),
            config=config,
            public_key=public_key,
        )
        for cid in WEIGHTS
    }

    def update(cid: str, round_id: int) -> Any:
        vector = rng.uniform(-1, 1, PARAMS)
        return clients[cid].encrypt_update(vector, round_id=round_id, weight=WEIGHTS[cid])

    agg = members["agg"]
    log = AuditLog(root / "audit.jsonl", key=agg.signing_key, actor=agg.id)
    errors: dict[str, Exception] = {}
    common = {"config": config, "public_key": public_key, "layout": layout, "audit": log}
    with Aggregator(roster=roster.client_keys(2), round_id=2, **common) as round2:
        round2.add(update("bravo", 2))
    with Aggregator(roster=roster.client_keys(3), round_id=3, **common) as round3:
        round3.add(update("alpha", 3))
        with pytest.raises(RevokedKey) as refused:
            round3.add(update("bravo", 3).to_bytes())
        errors["revoked"] = refused.value
        round3.add(update("charlie", 3))
        with pytest.raises(DuplicateUpdate) as duplicate:
            round3.add(update("alpha", 3))
        errors["duplicate"] = duplicate.value
        round3.add(update("delta", 3))
        aggregate = round3.finalize()
    keys = write_identity(agg, root / "keys")
    return {
        "log": log,
        "path": log.path,
        "head": log.head,
        "errors": errors,
        "aggregate": aggregate,
        "agg_public": keys.public,
        "accepted": round3.accepted_clients,
    }


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_revoked_client_is_refused_and_the_reason_logged(produced: dict[str, Any]) -> None:
    assert produced["accepted"] == ("alpha", "charlie", "delta")
    assert [s.statement.client_id for s in produced["aggregate"].manifest] == [
        "alpha",
        "charlie",
        "delta",
    ]
    assert "revoked from round 3" in str(produced["errors"]["revoked"])
    entries = _entries(produced["path"])
    seen = [
        (
            e["event"],
            e["payload"]["round"],
            e["payload"].get("client", e["payload"].get("claimed_client")),
        )
        for e in entries
    ]
    assert seen == EVENTS
    refusal = entries[2]["payload"]
    assert refusal["error"] == "RevokedKey"
    assert "laptop stolen" in refusal["reason"] and "round 3" in refusal["reason"]
    assert entries[4]["payload"]["error"] == "DuplicateUpdate"
    assert entries[0]["payload"]["weight"] == WEIGHTS["bravo"]
    assert entries[-1]["payload"]["clients"] == ["alpha", "charlie", "delta"]
    assert all(e["actor"] == "agg" for e in entries)


def test_log_verifies_with_the_aggregator_key(
    produced: dict[str, Any], members: dict[str, Identity], cli: Any
) -> None:
    keys = {"agg": members["agg"].public.signing_key}
    assert verify_log(produced["path"], keys, expected_head=produced["head"]) == len(EVENTS)
    result = cli("audit-log", "verify", produced["path"], "--pub", produced["agg_public"])
    assert result.exit_code == 0, result.output
    assert f"{len(EVENTS)} entries" in result.stdout
    result = cli(
        "audit-log",
        "verify",
        produced["path"],
        "--pub",
        produced["agg_public"],
        "--head",
        produced["head"],
    )
    assert result.exit_code == 0, result.output


def _tampered(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "tampered.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def _lines(produced: dict[str, Any]) -> list[bytes]:
    return produced["path"].read_bytes().splitlines(keepends=True)


def _check(cli: Any, produced: dict[str, Any], path: Path, line: int, *extra: str) -> None:
    result = cli("audit-log", "verify", path, "--pub", produced["agg_public"], *extra)
    one_line_error(result, f"line {line}")
    with pytest.raises(AuditLogError) as info:
        verify_log(path, {"agg": _agg_key(produced)}, expected_head=extra[-1] if extra else None)
    assert info.value.line == line


def _agg_key(produced: dict[str, Any]) -> Any:
    return load_public_identity(produced["agg_public"]).signing_key


@pytest.mark.parametrize("line", range(1, len(EVENTS) + 1))
def test_any_single_line_edit_is_named(
    produced: dict[str, Any], tmp_path: Path, cli: Any, line: int
) -> None:
    lines = _lines(produced)
    original = lines[line - 1]
    for old, new in ((b'"round":', b'"round":1'), (b'"event":"', b'"event":"x'), (b"\n", b" \n")):
        lines[line - 1] = original.replace(old, new, 1)
        _check(cli, produced, _tampered(tmp_path, lines), line)


@pytest.mark.parametrize("line", range(1, len(EVENTS) + 1))
def test_any_dropped_line_is_named(
    produced: dict[str, Any], tmp_path: Path, cli: Any, line: int
) -> None:
    lines = _lines(produced)
    del lines[line - 1]
    path = _tampered(tmp_path, lines)
    if line < len(EVENTS):
        _check(cli, produced, path, line)
    else:  # a dropped last line leaves a valid shorter log: the kept head exposes it
        _check(cli, produced, path, line, "--head", produced["head"])


@pytest.mark.parametrize("line", range(1, len(EVENTS)))
def test_any_reordering_is_named(
    produced: dict[str, Any], tmp_path: Path, cli: Any, line: int
) -> None:
    lines = _lines(produced)
    lines[line - 1], lines[line] = lines[line], lines[line - 1]
    _check(cli, produced, _tampered(tmp_path, lines), line)


@pytest.mark.parametrize("line", range(1, len(EVENTS) + 1))
def test_any_forged_line_is_named(
    produced: dict[str, Any], tmp_path: Path, cli: Any, line: int
) -> None:
    """A line rebuilt with the right sequence number and chain, signed by another key."""
    lines = _lines(produced)
    path = _tampered(tmp_path, lines[: line - 1])
    mallory = Identity.generate(id="agg", role="aggregator", suite="pq-only")
    AuditLog(path).append(
        mallory.signing_key, actor="agg", event="update.accepted", payload={"client": "mallory"}
    )
    path.write_bytes(path.read_bytes() + b"".join(lines[line:]))
    _check(cli, produced, path, line)


def test_aggregator_refuses_an_unbound_log(
    tmp_path: Path, base_roster: Roster, config: Any, keypair: Any
) -> None:
    common = {
        "config": config,
        "roster": base_roster.client_keys(0),
        "public_key": keypair[0],
        "round_id": 0,
        "layout": Layout.for_vector(PARAMS),
    }
    with pytest.raises(ValueError, match="key= and actor="):
        Aggregator(**common, audit=AuditLog(tmp_path / "a.jsonl"))
    with pytest.raises(TypeError, match="AuditLog"):
        Aggregator(**common, audit=tmp_path / "a.jsonl")  # type: ignore[arg-type]
