"""Property tests of the identity layer's file parsers: damaged key files, rosters, rotation
requests, audit logs and inventories raise only their documented errors.

Documented errors: :class:`CorruptKeyFile` / :class:`WrongSuite` / :class:`WrongPassphrase` for
key files, :class:`InvalidRoster` for rosters, ``ValueError`` or a :class:`MalformedMessage`
subclass for a rotation request, :class:`AuditLogError` for an audit log, ``ValueError`` for an
inventory. Never ``RecursionError``, ``TypeError``, ``KeyError`` or a ``ValueError`` where a
typed error is documented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhe_agg import MalformedMessage
from fhe_agg.errors import CorruptKeyFile, InvalidRoster, WrongPassphrase
from fhe_agg.identity import (
    AuditLog,
    AuditLogError,
    Identity,
    KeyRotation,
    Roster,
    Suite,
    WrongSuite,
    load_identity,
    load_inventory,
    load_public_identity,
    verify_log,
    write_identity,
)
from fhe_agg.identity._encoding import strict_json

from .mutations import PARSER_SETTINGS, damaged, refuse_or_parse

PASS = b"fuzzing passphrase"
KEY_FILE = (CorruptKeyFile, WrongSuite, WrongPassphrase)


@pytest.fixture(scope="module")
def members() -> dict[str, Identity]:
    roles = {"admin": "admin", "agg": "aggregator", "alpha": "client", "bravo": "client"}
    roles |= {"h1": "holder", "h2": "holder"}
    return {i: Identity.generate(id=i, role=r, suite="pq-only") for i, r in roles.items()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, members: dict[str, Identity]) -> dict[str, Any]:
    """Key files (one hybrid, one encrypted), a rotated roster and a two-actor audit log."""
    root = tmp_path_factory.mktemp("site")
    keys = root / "keys"
    hybrid = Identity.generate(id="hy", role="client", suite=Suite.HYBRID)
    plain = write_identity(hybrid, keys)
    locked = write_identity(members["h1"], keys, passphrase=PASS)
    admin = members["admin"]
    roster = Roster.create(
        consortium="acme",
        admin=admin,
        members=[members[i].public for i in ("alpha", "bravo", "h1", "h2")],
        min_clients=2,
        threshold=2,
    )
    new_alpha = Identity.generate(id="alpha", role="client", suite="pq-only")
    rotation = KeyRotation.request(members["alpha"], new_alpha, consortium="acme", from_round=3)
    roster = roster.rotate(rotation, admin=admin).revoke(
        "bravo", from_round=4, reason="left", admin=admin
    )
    log = AuditLog(root / "audit.jsonl", key=members["agg"].signing_key, actor="agg")
    log.record("update-accepted", {"round": 1, "client": "alpha", "weight": 2.5})
    log.record("update-rejected", {"round": 1, "client": "x", "why": {"code": [1, None]}})
    return {
        "root": root,
        "plain": plain,
        "locked": locked,
        "admin": admin.public,
        "roster": roster,
        "rotation": json.dumps(rotation.to_json()).encode(),
        "log": (root / "audit.jsonl").read_bytes(),
        "log_keys": {"agg": members["agg"].public.signing_key},
    }


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_public_identity_is_refused(data, site) -> None:
    blob = data.draw(damaged(site["plain"].public.read_bytes(), "json"))
    path = _write(site["root"] / "keys", "fuzzed.pub.json", blob)
    public = refuse_or_parse(load_public_identity, path, (CorruptKeyFile, WrongSuite))
    if public is not None:
        assert public.id == "hy" and public.suite is Suite.HYBRID


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_private_key_file_is_refused(data, site) -> None:
    blob = data.draw(damaged(site["plain"].private.read_bytes(), "json"))
    path = _write(site["root"] / "keys", "fuzzed.key", blob)
    ident = refuse_or_parse(load_identity, path, KEY_FILE)
    if ident is not None:
        assert ident.public.signing_key == ident.signing_key.verify_key


@settings(PARSER_SETTINGS, max_examples=15)  # each example runs scrypt
@given(data=st.data())
def test_damaged_encrypted_key_file_is_refused(data, site) -> None:
    blob = data.draw(damaged(site["locked"].private.read_bytes(), "json"))
    path = _write(site["root"] / "keys", "fuzzed-locked.key", blob)
    ident = refuse_or_parse(lambda p: load_identity(p, passphrase=PASS), path, KEY_FILE)
    if ident is not None:
        assert ident.id == "h1"


@settings(PARSER_SETTINGS, max_examples=40)
@given(data=st.data())
def test_damaged_roster_is_refused(data, site) -> None:
    roster: Roster = site["roster"]
    blob = data.draw(damaged(roster.to_bytes(), "json"))
    parsed = refuse_or_parse(
        lambda b: Roster.from_bytes(b, admin=site["admin"]), blob, (InvalidRoster,)
    )
    if parsed is not None:  # the admin's signature covers every field
        assert parsed.digest == roster.digest


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_rotation_request_is_refused(data, site) -> None:
    blob = data.draw(damaged(site["rotation"], "json"))
    parsed = refuse_or_parse(
        lambda b: KeyRotation.from_json(strict_json(b)), blob, (ValueError, MalformedMessage)
    )
    if parsed is not None:
        assert KeyRotation.from_json(parsed.to_json()) == parsed


@st.composite
def damaged_log(draw: st.DrawFn, log: bytes) -> bytes:
    lines = log.splitlines(keepends=True)
    index = draw(st.integers(0, len(lines) - 1))
    choice = draw(st.sampled_from(["line", "drop", "swap", "bytes"]))
    if choice == "line":
        lines[index] = draw(damaged(lines[index].rstrip(b"\n"), "json")) + b"\n"
    elif choice == "drop":
        del lines[index]
    elif choice == "swap":
        lines[0], lines[index] = lines[index], lines[0]
    else:
        return draw(damaged(log, "binary"))
    return b"".join(lines)


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_audit_log_is_refused(data, site) -> None:
    blob = data.draw(damaged_log(site["log"]))
    path = _write(site["root"], "fuzzed.jsonl", blob)

    def verify(p: Path) -> int:
        AuditLog(p)  # resuming reads every line
        return verify_log(p, site["log_keys"])

    count = refuse_or_parse(verify, path, (AuditLogError,))
    if count is not None:  # only a prefix of the real log verifies
        assert site["log"].startswith(blob) and count == blob.count(b"\n")


@settings(PARSER_SETTINGS, max_examples=20)  # PyYAML is slow to refuse deep nesting (~1 s)
@given(data=st.data(), suffix=st.sampled_from([".yaml", ".json"]))
def test_damaged_inventory_is_refused(data, site, suffix: str) -> None:
    seed = b'{"RSA-2048": "TLS", "ML-KEM-768": "sealing", "AES-128": "disk"}'
    path = _write(site["root"], "inventory" + suffix, data.draw(damaged(seed, "json")))
    parsed = refuse_or_parse(load_inventory, path, (ValueError,))
    if parsed is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
