"""Key files sealed under a generated key secret (HKDF) next to passphrase files (scrypt)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fhe_agg.identity import (
    CorruptKeyFile,
    Identity,
    Suite,
    WrongPassphrase,
    load_identity,
    new_key_secret,
    read_passphrase_file,
    write_identity,
    write_key_secret,
)
from fhe_agg.identity._key_secret import KEY_SECRET_PREFIX, parse_key_secret

PASS = b"correct horse battery staple"
PREFIX = KEY_SECRET_PREFIX


def _write(tmp_path: Path, passphrase: bytes, suite: str = "pq-only") -> tuple[Identity, Path]:
    identity = Identity.generate(id="node", role="holder", suite=suite)
    return identity, write_identity(identity, tmp_path / "keys", passphrase=passphrase).private


def _kdf(path: Path) -> dict[str, Any]:
    kdf: dict[str, Any] = json.loads(path.read_bytes())["kdf"]
    return kdf


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_bytes(json.dumps(doc).encode())


def _secret(body: bytes) -> bytes:
    """A key secret with the current prefix and ``body`` (unpadded base64url)."""
    return PREFIX + body


def test_new_key_secret_is_the_prefix_and_32_uniform_bytes() -> None:
    a, b = new_key_secret(), new_key_secret()
    assert a != b
    for value in (a, b):
        assert value.startswith(b"fhe-agg/key-secret/v1:") and len(value) == len(PREFIX) + 43
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :] + b"=")
        assert len(raw) == 32 and parse_key_secret(value) == raw


@pytest.mark.parametrize("suite", [s.value for s in Suite])
def test_round_trip_under_a_key_secret(tmp_path: Path, suite: str) -> None:
    secret = new_key_secret()
    identity, path = _write(tmp_path, secret, suite)
    kdf = _kdf(path)
    assert set(kdf) == {"name", "salt"} and kdf["name"] == "hkdf-sha256"  # no scrypt at load
    assert len(base64.b64decode(kdf["salt"])) == 16
    back = load_identity(path, passphrase=secret, suite=suite, role="holder")
    assert back.signing_key.private_bytes() == identity.signing_key.private_bytes()
    assert back.sealing_key.private_bytes() == identity.sealing_key.private_bytes()
    data = path.read_bytes()
    assert secret not in data and secret[len(PREFIX) :] not in data
    raws = [identity.signing_key.private_bytes(), identity.sealing_key.private_bytes()]
    for raw in raws:
        assert not any(form in data for form in (raw, raw.hex().encode(), base64.b64encode(raw)))


def test_two_files_under_one_secret_have_their_own_salt(tmp_path: Path) -> None:
    secret = new_key_secret()
    _, first = _write(tmp_path / "a", secret)
    _, second = _write(tmp_path / "b", secret)
    assert _kdf(first)["salt"] != _kdf(second)["salt"]
    assert json.loads(first.read_bytes())["check"] != json.loads(second.read_bytes())["check"]


def test_a_key_secret_file_refuses_a_passphrase_another_secret_or_none(tmp_path: Path) -> None:
    secret = new_key_secret()
    _, path = _write(tmp_path, secret)
    with pytest.raises(WrongPassphrase, match="generated key secret, not a passphrase") as info:
        load_identity(path, passphrase=PASS)
    assert "keys new-secret" in str(info.value)
    with pytest.raises(WrongPassphrase, match="wrong key secret") as info:
        load_identity(path, passphrase=new_key_secret())
    with pytest.raises(WrongPassphrase, match="unusable") as other:
        load_identity(path, passphrase=secret[:-1])  # truncated: not well-formed
    with pytest.raises(WrongPassphrase, match="encrypted"):
        load_identity(path)
    for error in (info, other):
        assert secret not in str(error.value).encode()
        assert secret[len(PREFIX) : -1] not in str(error.value).encode()


@pytest.mark.parametrize(
    "change",
    [
        lambda k: k.update({"n": 1 << 15}),
        lambda k: k.pop("salt"),
        lambda k: k.update({"salt": base64.b64encode(b"s" * 15).decode()}),
        lambda k: k.update({"salt": base64.b64encode(b"s" * 17).decode()}),
        lambda k: k.update({"salt": "not base64!"}),
        lambda k: k.update({"salt": 16}),
        lambda k: k.update({"name": "hkdf-sha512"}),
        lambda k: k.update({"name": "HKDF-SHA256"}),
    ],
    ids=["extra", "no-salt", "salt-15", "salt-17", "salt-text", "salt-int", "name", "name-case"],
)
def test_an_edited_hkdf_kdf_is_a_corrupt_file(tmp_path: Path, change: Any) -> None:
    secret = new_key_secret()
    _, path = _write(tmp_path, secret)
    _edit(path, lambda d: change(d["kdf"]))
    with pytest.raises(CorruptKeyFile, match="passphrase parameters"):
        load_identity(path, passphrase=secret)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update({"kdf": None}),
        lambda d: d.update({"kdf": ["hkdf-sha256"]}),
        lambda d: d.update({"check": base64.b64encode(b"c" * 31).decode()}),
        lambda d: d.update({"check": None}),
    ],
    ids=["kdf-null", "kdf-list", "check-31", "check-null"],
)
def test_an_edited_kdf_or_check_is_a_corrupt_file(tmp_path: Path, change: Any) -> None:
    secret = new_key_secret()
    _, path = _write(tmp_path, secret)
    _edit(path, change)
    with pytest.raises(CorruptKeyFile, match="passphrase parameters"):
        load_identity(path, passphrase=secret)


def test_a_flipped_check_value_reads_as_a_wrong_secret(tmp_path: Path) -> None:
    secret = new_key_secret()
    _, path = _write(tmp_path, secret)
    check = bytearray(base64.b64decode(json.loads(path.read_bytes())["check"]))
    check[0] ^= 1
    _edit(path, lambda d: d.update({"check": base64.b64encode(bytes(check)).decode()}))
    with pytest.raises(WrongPassphrase, match="wrong key secret"):
        load_identity(path, passphrase=secret)


def test_passphrase_files_keep_scrypt_unchanged(tmp_path: Path) -> None:
    _, path = _write(tmp_path, PASS)
    kdf = _kdf(path)
    assert set(kdf) == {"name", "salt", "n", "r", "p"}
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 1 << 15, 8, 1)
    assert load_identity(path, passphrase=PASS).id == "node"
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_identity(path, passphrase=new_key_secret())
    # a scrypt file does not take the hkdf shape: the name decides, with its own field set
    _edit(path, lambda d: d["kdf"].update({"name": "hkdf-sha256"}))
    with pytest.raises(CorruptKeyFile, match="passphrase parameters"):
        load_identity(path, passphrase=PASS)


def test_write_refuses_a_malformed_key_secret_and_writes_nothing(tmp_path: Path) -> None:
    identity = Identity.generate(id="node", role="holder", suite="pq-only")
    for bad in (new_key_secret()[:-1], b"fhe-agg/key-secret/v2:" + b"A" * 43):
        with pytest.raises(ValueError, match=r"passphrase: .*key secret"):
            write_identity(identity, tmp_path / "keys", passphrase=bad)
    assert not (tmp_path / "keys").exists()


def test_write_key_secret_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.secret"
    old = os.umask(0)
    try:
        secret = write_key_secret(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == secret + b"\n"
    assert read_passphrase_file(path) == secret
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_key_secret(path)
    assert path.read_bytes() == secret + b"\n"
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_key_secret(tmp_path / "link")
    assert not (tmp_path / "elsewhere").exists()
    # the file opens a key file sealed under it, through the passphrase-file path
    identity, key = _write(tmp_path, read_passphrase_file(path))
    assert load_identity(key, passphrase=read_passphrase_file(path)).id == identity.id


_BODY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=")  # 43 characters, ends in "8"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"fhe-agg/key-secret/v2:" + _BODY, "unsupported key secret version"),
        (_secret(_BODY[:-1]), "43 base64url characters"),
        (_secret(_BODY + b"A"), "43 base64url characters"),
        (_secret(_BODY + b"="), "43 base64url characters"),
        (_secret(_BODY[:-1] + b"+"), "43 base64url characters"),  # standard, not url alphabet
        (_secret(_BODY[:-1] + b"!"), "43 base64url characters"),
        (_secret(_BODY[:-1] + b"9"), "canonical"),  # a padding bit set: same 32 bytes decoded
        (_secret(b" " + _BODY[1:]), "43 base64url characters"),
    ],
    ids=["version", "short", "long", "padded", "std-alphabet", "bad-char", "noncanonical", "space"],
)
def test_a_bad_key_secret_file_is_refused_when_read(
    tmp_path: Path, content: bytes, message: str
) -> None:
    assert parse_key_secret(_secret(_BODY)) == bytes(range(32))
    path = tmp_path / "node.secret"
    path.write_bytes(content + b"\n")
    with pytest.raises(ValueError, match=message) as info:
        read_passphrase_file(path)
    assert str(path) in str(info.value)
    assert _BODY[1:-1].decode() not in str(info.value)


def test_a_secret_under_another_prefix_is_a_passphrase_and_opens_no_hkdf_file(
    tmp_path: Path,
) -> None:
    secret = new_key_secret()
    _, key = _write(tmp_path, secret)
    path = tmp_path / "node.secret"
    path.write_bytes(b"fhe-agg-key-secret-v1:" + secret[len(PREFIX) :] + b"\n")
    read = read_passphrase_file(path)  # any text is a valid passphrase
    with pytest.raises(WrongPassphrase, match="not a passphrase"):
        load_identity(key, passphrase=read)
