"""``fhe-agg keys new`` -> ``roster new`` -> ``simulate --roster``: a round with identities from
disk, a revoked client refused with its reason in the audit log, and the log verified and then
caught after any single-line edit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhe_agg.identity import AuditLog

from .helpers import one_line_error

CLIENTS = ("st-mary", "charite", "karolinska", "uzl")
HOLDERS = ("h1", "h2", "h3")


@pytest.fixture
def deployment(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    made = [("admin", "admin"), ("agg", "aggregator")]
    made += [(c, "client") for c in CLIENTS] + [(h, "holder") for h in HOLDERS]
    for member_id, role in made:
        assert cli("keys", "new", "--role", role, "--id", member_id).exit_code == 0
    members = [a for m, _ in made[1:] for a in ("--member", f"keys/{m}.pub.json")]
    result = cli(
        "roster", "new", "--admin", "keys/admin.key", "--consortium", "hospitals", *members,
        "--preset", "precise", "--min-clients", "3", "--threshold", "2", "--out", "roster.json",
        "--audit-log", "audit.jsonl",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = cli(
        "roster", "revoke", "roster.json", "--admin", "keys/admin.key", "--member", "uzl",
        "--from-round", "2", "--reason", "left the consortium", "--audit-log", "audit.jsonl",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path


ROSTER = ("--roster", "roster.json", "--admin-pub", "keys/admin.pub.json")


def _simulate(cli: Any, *extra: str) -> Any:
    return cli("simulate", *ROSTER, "--params", "3000", "--seed", "5", *extra)


def test_simulate_with_roster_refuses_the_revoked_client_and_logs_why(
    deployment: Path, cli: Any
) -> None:
    result = _simulate(cli, "--rounds", "2", "--audit-log", "audit.jsonl", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["consortium"], out["clients"], out["holders"], out["threshold"]) == (
        "hospitals",
        4,
        3,
        2,
    )
    assert out["preset"] == "precise" and out["max_abs_error"] < 1e-6
    # uzl signs validly in round 1 (before its revocation) and is refused in round 2
    assert [(r["round"], r["client"], r["error"]) for r in out["refused"]] == [
        (2, "uzl", "RevokedKey")
    ]
    entries = [json.loads(line) for line in Path("audit.jsonl").read_text().splitlines()]
    events = [(e["event"], e["payload"].get("client") or e["payload"].get("claimed_client"))
              for e in entries]  # fmt: skip
    assert events.count(("update.accepted", "uzl")) == 1
    rejected = [e for e in entries if e["event"] == "update.rejected"]
    assert len(rejected) == 1 and rejected[0]["payload"]["round"] == 2
    assert "revoked from round 2" in rejected[0]["payload"]["reason"]
    assert "left the consortium" in rejected[0]["payload"]["reason"]
    assert {e["event"] for e in entries} >= {
        "ceremony.completed",
        "update.accepted",
        "aggregate.finalized",
        "release",
        "partial.issued",
        "roster.changed",
    }
    issued = [e for e in entries if e["event"] == "partial.issued"]
    assert len(issued) == 2 * 2  # two rounds, a threshold of 2 holders each
    assert {e["actor"] for e in issued} <= set(HOLDERS)
    assert {e["actor"] for e in entries} - set(HOLDERS) == {"agg", "admin"}
    changes = [e["payload"]["change"] for e in entries if e["event"] == "roster.changed"]
    assert len(changes) == 2 and "revoked uzl from round 2: left the consortium" in changes[1]
    assert out["audit_log_head"] == AuditLog("audit.jsonl").head

    verify = ("audit-log", "verify", "audit.jsonl", *ROSTER)
    ok = cli(*verify)
    assert ok.exit_code == 0 and f"{len(entries)} entries" in ok.stdout
    pristine = Path("audit.jsonl").read_bytes()
    lines = pristine.splitlines(keepends=True)
    for number in range(1, len(lines) + 1):  # any single-line edit is caught and named
        edited = list(lines)
        edited[number - 1] = edited[number - 1].replace(b'"seq":', b'"seq": ', 1)
        edited[number - 1] = edited[number - 1].replace(b"round", b"rounD", 1)
        Path("audit.jsonl").write_bytes(b"".join(edited))
        one_line_error(cli(*verify), f"line {number}")
    Path("audit.jsonl").write_bytes(pristine)
    assert cli(*verify).exit_code == 0


def test_simulate_roster_refusals_are_one_line(deployment: Path, cli: Any) -> None:
    one_line_error(cli("simulate", "--roster", "roster.json"), "--admin-pub")
    one_line_error(_simulate(cli, "--threshold", "3"), "the roster sets threshold to 2")
    one_line_error(cli("simulate", "--audit-log", "a.jsonl"), "only with --roster")
    Path("keys/h2.key").unlink()
    one_line_error(_simulate(cli), "h2.key", "no key file")


def test_a_key_file_the_roster_does_not_list_is_refused(deployment: Path, cli: Any) -> None:
    assert (
        cli("keys", "new", "--role", "client", "--id", "charite", "--dir", "other").exit_code == 0
    )
    Path("keys/charite.key").unlink()
    Path("other/charite.key").rename("keys/charite.key")
    one_line_error(_simulate(cli), "charite", "not the key roster")


def test_two_writers_of_one_log_keep_one_chain(tmp_path: Path, members: dict[str, Any]) -> None:
    from fhe_agg.identity import verify_log

    path = tmp_path / "shared.jsonl"
    agg = AuditLog(path, key=members["agg"].signing_key, actor="agg")
    holder = AuditLog(path, key=members["h1"].signing_key, actor="h1")
    for i in range(3):
        agg.record("update.accepted", {"i": i})
        holder.record("partial.issued", {"i": i})
    keys = {m: members[m].signing_key.verify_key for m in ("agg", "h1")}
    assert verify_log(path, keys) == 6


def test_a_single_holder_roster_floods_by_default(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``roster new`` with one key holder, then ``simulate --roster``: every release is flooded
    (it used to be an exact, key-revealing decryption); exact needs ``--unsafe-exact``."""
    monkeypatch.chdir(tmp_path)
    made = [("admin", "admin"), ("h1", "holder")] + [(c, "client") for c in CLIENTS[:3]]
    for member_id, role in made:
        assert cli("keys", "new", "--role", role, "--id", member_id).exit_code == 0
    members = [a for m, _ in made[1:] for a in ("--member", f"keys/{m}.pub.json")]
    result = cli(
        "roster", "new", "--admin", "keys/admin.key", "--consortium", "solo", *members,
        "--min-clients", "3", "--threshold", "1", "--out", "roster.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = _simulate(cli, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["holders"], out["threshold"]) == (1, 1)
    assert out["flooding_security_bits"] >= 40 and "warnings" not in out
    assert out["decryption_budget_left"] == 2**16 - 1
    exact = _simulate(cli, "--unsafe-exact", "--json")
    assert exact.exit_code == 0, exact.output
    assert json.loads(exact.stdout)["flooding_security_bits"] == 0
