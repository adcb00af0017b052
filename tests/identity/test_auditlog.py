"""Signed, hash-chained audit log: every tamper kind is caught and located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhe_agg.identity import (
    AuditLog,
    AuditLogError,
    Suite,
    SuiteSigningKey,
    SuiteVerifyKey,
    verify_log,
)

ALICE = SuiteSigningKey.generate(Suite.PQ_ONLY)
BOB = SuiteSigningKey.generate(Suite.HYBRID)
KEYS = {"alice": ALICE.verify_key, "bob": BOB.verify_key}


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "audit.jsonl"
    writer = AuditLog(path)
    head = ""
    for i in range(5):
        key, actor = (ALICE, "alice") if i % 2 == 0 else (BOB, "bob")
        head = writer.append(key, actor=actor, event="round.closed", payload={"round": i})
    return path, head


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _expect(path: Path, line: int, match: str, **kw: object) -> None:
    with pytest.raises(AuditLogError, match=match) as info:
        verify_log(path, KEYS, **kw)  # type: ignore[arg-type]
    assert info.value.line == line


def test_valid_log_verifies_and_resumes(log: tuple[Path, str]) -> None:
    path, head = log
    assert verify_log(path, KEYS, expected_head=head) == 5
    new_head = AuditLog(path).append(ALICE, actor="alice", event="e", payload={})
    assert verify_log(path, KEYS, expected_head=new_head) == 6


def test_edited_payload(log: tuple[Path, str]) -> None:
    path, _ = log
    lines = _lines(path)
    lines[2] = lines[2].replace(b'"round":2', b'"round":9')
    path.write_bytes(b"".join(lines))
    _expect(path, 3, "signature")


def test_edited_last_line_whitespace(log: tuple[Path, str]) -> None:
    path, _ = log
    lines = _lines(path)
    lines[-1] = lines[-1].replace(b'{"actor"', b'{ "actor"')
    path.write_bytes(b"".join(lines))
    _expect(path, 5, "canonical")


def test_dropped_line(log: tuple[Path, str]) -> None:
    path, _ = log
    lines = _lines(path)
    del lines[1]
    path.write_bytes(b"".join(lines))
    _expect(path, 2, "sequence")


def test_dropped_tail_needs_head(log: tuple[Path, str]) -> None:
    path, head = log
    path.write_bytes(b"".join(_lines(path)[:-1]))
    assert verify_log(path, KEYS) == 4
    _expect(path, 5, "truncated", expected_head=head)


def test_reordered_lines(log: tuple[Path, str]) -> None:
    path, _ = log
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    _expect(path, 2, "sequence")


def test_forged_line_by_outsider(log: tuple[Path, str]) -> None:
    """Mallory rewrites line 4 with correct seq and chain but signs with her own key."""
    path, _ = log
    lines = _lines(path)
    mallory = SuiteSigningKey.generate(Suite.HYBRID)  # same suite as bob
    forged_dir = path.parent / "forged"
    forged_dir.mkdir()
    forged = forged_dir / "log.jsonl"
    forged.write_bytes(b"".join(lines[:3]))
    AuditLog(forged).append(mallory, actor="bob", event="round.closed", payload={"round": 3})
    _expect(forged, 4, "signature")
    forged.write_bytes(b"".join(lines[:3]))
    AuditLog(forged).append(mallory, actor="mallory", event="x", payload={})
    _expect(forged, 4, "unknown actor")


def test_chain_break_with_valid_signature(log: tuple[Path, str]) -> None:
    """A correctly signed line whose prev hash points elsewhere is refused."""
    path, _ = log
    lines = _lines(path)
    entry = json.loads(lines[3])
    other = path.parent / "other.jsonl"
    AuditLog(other).append(BOB, actor="bob", event="e", payload={})
    for _ in range(3):
        AuditLog(other).append(BOB, actor="bob", event="e", payload={})
    path.write_bytes(b"".join([*lines[:3], _lines(other)[3], *lines[4:]]))
    assert json.loads(_lines(other)[3])["seq"] == entry["seq"]
    _expect(path, 4, "chain")


def test_malformed_lines(log: tuple[Path, str]) -> None:
    path, _ = log
    lines = _lines(path)
    path.write_bytes(b"".join([*lines[:2], b"not json\n", *lines[3:]]))
    _expect(path, 3, "not JSON")
    path.write_bytes(b"".join(lines)[:-1])
    _expect(path, 5, "incomplete")


def test_wrong_suite_key_for_actor(log: tuple[Path, str]) -> None:
    path, _ = log
    keys: dict[str, SuiteVerifyKey] = {
        **KEYS,
        "bob": SuiteSigningKey.generate(Suite.PQ_ONLY).verify_key,
    }
    with pytest.raises(AuditLogError, match="suite") as info:
        verify_log(path, keys)
    assert info.value.line == 2
