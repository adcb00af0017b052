"""Key files: seed-form PKCS#8, permissions, passphrases, and every way a file can be wrong."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fhe_agg.errors import InvalidSignature
from fhe_agg.identity import (
    CorruptKeyFile,
    Identity,
    InsecureKeyFile,
    Suite,
    WrongPassphrase,
    WrongSuite,
    load_identity,
    load_public_identity,
    read_passphrase_file,
    write_identity,
)
from fhe_agg.identity._identity import check_member_id
from fhe_agg.identity._keystore import MAX_KEY_FILE_BYTES
from fhe_agg.protocol._messages import UPDATE_CONTEXT
from fhe_agg.protocol._signing import VerifyKey

PASS = b"correct horse battery staple"
SUITES = [s.value for s in Suite]


def _secrets(identity: Identity) -> list[bytes]:
    """The raw private seeds, and their hex and base64 forms, that must never leak."""
    raws = [identity.signing_key.private_bytes(), identity.sealing_key.private_bytes()]
    out = []
    for raw in raws:
        out += [raw, raw.hex().encode(), base64.b64encode(raw)]
    return out


def _write(tmp_path: Path, suite: str = "pq-only", passphrase: bytes | None = None, **kw: str):
    identity = Identity.generate(
        id=kw.get("id", "alice"), role=kw.get("role", "client"), suite=suite
    )
    return identity, write_identity(identity, tmp_path / "keys", passphrase=passphrase)


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_bytes(json.dumps(doc).encode())


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("passphrase", [None, PASS], ids=["plain", "encrypted"])
def test_round_trip_every_suite(tmp_path: Path, suite: str, passphrase: bytes | None) -> None:
    identity, files = _write(tmp_path, suite, passphrase)
    back = load_identity(files.private, passphrase=passphrase, suite=suite, role="client")
    assert back.signing_key.private_bytes() == identity.signing_key.private_bytes()
    assert back.sealing_key.private_bytes() == identity.sealing_key.private_bytes()
    public = load_public_identity(files.public, suite=suite)
    assert public.signing_key == identity.signing_key.verify_key
    assert public.sealing_key == identity.sealing_key.public_key
    # a signature by the loaded key verifies under the published key
    sig = back.signing_key.sign(b"m", context=b"test")
    public.signing_key.verify(sig, b"m", context=b"test")
    # modes: private 0600, public 0644, directory 0700
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.public.stat().st_mode) == 0o644
    assert stat.S_IMODE(files.private.parent.stat().st_mode) == 0o700
    # with a passphrase, no form of the seeds is on disk
    if passphrase is not None:
        data = files.private.read_bytes()
        assert not any(s in data for s in _secrets(identity))


@pytest.mark.parametrize("passphrase", [None, PASS], ids=["plain", "encrypted"])
def test_components_are_seed_form_pkcs8_that_pyca_reads(
    tmp_path: Path, passphrase: bytes | None
) -> None:
    identity, files = _write(tmp_path, "hybrid", passphrase)
    doc = json.loads(files.private.read_bytes())
    assert [c["alg"] for c in doc["signing"]] == ["ML-DSA-65", "Ed25519"]
    assert [c["alg"] for c in doc["sealing"]] == ["ML-KEM-768", "X25519"]
    header = "ENCRYPTED PRIVATE KEY" if passphrase else "-----BEGIN PRIVATE KEY"
    seeds = []
    for component in doc["signing"]:
        assert header in component["pkcs8"]
        key = serialization.load_pem_private_key(component["pkcs8"].encode(), password=passphrase)
        seeds.append(key.private_bytes_raw())  # type: ignore[union-attr]
    assert b"".join(seeds) == identity.signing_key.private_bytes()
    ml_der = serialization.load_pem_private_key(
        doc["signing"][0]["pkcs8"].encode(), password=passphrase
    ).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert len(ml_der) == 54  # RFC 9881 seed-only ML-DSA PKCS#8, not the expanded key


def test_slh_dsa_is_sealed_under_a_passphrase(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "slh-dsa", PASS)
    component = json.loads(files.private.read_bytes())["signing"][0]
    assert set(component) == {"alg", "nonce", "ciphertext"}
    assert len(base64.b64decode(component["ciphertext"])) == 96 + 16


def test_secrets_stay_out_of_reprs_and_errors(tmp_path: Path) -> None:
    identity, files = _write(tmp_path, "pq-only", PASS)
    texts = [repr(identity), str(identity), repr(identity.public), repr(identity.signing_key)]
    for bad in (b"tr0ub4dor&3", None):
        with pytest.raises(WrongPassphrase) as info:
            load_identity(files.private, passphrase=bad)
        texts.append(str(info.value))
    joined = "\n".join(texts).encode()
    assert b"<secret>" in joined
    assert not any(s in joined for s in _secrets(identity))
    assert PASS not in joined and b"tr0ub4dor" not in joined


def test_group_or_world_access_is_refused(tmp_path: Path) -> None:
    _, files = _write(tmp_path)
    for mode in (0o640, 0o604, 0o660):
        files.private.chmod(mode)
        with pytest.raises(InsecureKeyFile, match="chmod 600"):
            load_identity(files.private)
    files.private.chmod(0o600)
    files.private.parent.chmod(0o770)
    with pytest.raises(InsecureKeyFile, match="chmod 700"):
        load_identity(files.private)
    files.private.parent.chmod(0o700)
    load_identity(files.private)  # fixed: loads again


def test_symlink_is_refused(tmp_path: Path) -> None:
    _, files = _write(tmp_path)
    link = files.private.parent / "link.key"
    link.symlink_to(files.private)
    with pytest.raises(InsecureKeyFile, match="symbolic link"):
        load_identity(link)


def test_write_refuses_open_directory_and_overwrite(tmp_path: Path) -> None:
    identity, files = _write(tmp_path)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_identity(identity, files.private.parent)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(InsecureKeyFile, match="chmod 700"):
        write_identity(identity, loose)
    assert not list(loose.iterdir())


def test_wrong_suite_and_role(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "pq-only")
    with pytest.raises(WrongSuite, match="'pq-only'"):
        load_identity(files.private, suite="cnsa2")
    with pytest.raises(WrongSuite):
        load_public_identity(files.public, suite=Suite.HYBRID)
    with pytest.raises(ValueError, match="role client, expected admin"):
        load_identity(files.private, role="admin")


def test_passphrase_missing_wrong_or_unexpected(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "pq-only", PASS)
    with pytest.raises(WrongPassphrase, match="is encrypted"):
        load_identity(files.private)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_identity(files.private, passphrase=PASS + b"!")
    _, plain = _write(tmp_path, "pq-only", None, id="bob")
    with pytest.raises(WrongPassphrase, match="not encrypted"):
        load_identity(plain.private, passphrase=PASS)


@pytest.mark.parametrize("passphrase", [None, PASS], ids=["plain", "encrypted"])
def test_truncated_files(tmp_path: Path, passphrase: bytes | None) -> None:
    _, files = _write(tmp_path, "pq-only", passphrase)
    data = files.private.read_bytes()
    for length in (0, 1, 100, len(data) // 2, len(data) - 2):
        files.private.write_bytes(data[:length])
        with pytest.raises(CorruptKeyFile, match=str(files.private)):
            load_identity(files.private, passphrase=passphrase)
    files.private.write_bytes(data[:-1])  # only the final newline: still the whole document
    load_identity(files.private, passphrase=passphrase)
    public = files.public.read_bytes()
    files.public.write_bytes(public[: len(public) // 2])
    with pytest.raises(CorruptKeyFile):
        load_public_identity(files.public)


def _flip_in_pem(doc: dict, index: int) -> None:
    pem = doc["signing"][0]["pkcs8"]
    lines = pem.split("\n")
    body = lines[1]
    lines[1] = body[:index] + ("A" if body[index] != "A" else "B") + body[index + 1 :]
    doc["signing"][0]["pkcs8"] = "\n".join(lines)


@pytest.mark.parametrize("passphrase", [None, PASS], ids=["plain", "encrypted"])
def test_corrupted_key_material(tmp_path: Path, passphrase: bytes | None) -> None:
    _, files = _write(tmp_path, "pq-only", passphrase)
    original = files.private.read_bytes()
    for index in (10, 40, 60):
        _edit(files.private, lambda d, i=index: _flip_in_pem(d, i))
        with pytest.raises(CorruptKeyFile):
            load_identity(files.private, passphrase=passphrase)
        files.private.write_bytes(original)


def test_corrupted_sealed_slh_dsa_seed(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "slh-dsa", PASS)

    def flip(doc: dict) -> None:
        ct = bytearray(base64.b64decode(doc["signing"][0]["ciphertext"]))
        ct[5] ^= 1
        doc["signing"][0]["ciphertext"] = base64.b64encode(bytes(ct)).decode()

    _edit(files.private, flip)
    with pytest.raises(CorruptKeyFile, match="does not authenticate"):
        load_identity(files.private, passphrase=PASS)


@pytest.mark.parametrize("delta", [-1, 1])
def test_raw_seed_length_plus_minus_one(tmp_path: Path, delta: int) -> None:
    _, files = _write(tmp_path, "slh-dsa", None)

    def resize(doc: dict) -> None:
        raw = base64.b64decode(doc["signing"][0]["raw"])
        raw = raw[:-1] if delta < 0 else raw + b"\0"
        doc["signing"][0]["raw"] = base64.b64encode(raw).decode()

    _edit(files.private, resize)
    with pytest.raises(CorruptKeyFile, match="96 bytes"):
        load_identity(files.private)


def test_components_swapped_from_another_file(tmp_path: Path) -> None:
    _, mine = _write(tmp_path, "pq-only", None)
    _, theirs = _write(tmp_path, "pq-only", None, id="mallory")
    other = json.loads(theirs.private.read_bytes())
    _edit(mine.private, lambda d: d.__setitem__("sealing", other["sealing"]))
    with pytest.raises(CorruptKeyFile, match="do not match its public identity"):
        load_identity(mine.private)


def test_edited_public_part_or_identity_file(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "pq-only", None)
    _edit(files.private, lambda d: d["public"].__setitem__("role", "admin"))
    with pytest.raises(CorruptKeyFile, match="self-signature"):
        load_identity(files.private)
    _edit(files.public, lambda d: d.__setitem__("id", "mallory"))
    with pytest.raises(CorruptKeyFile, match="self-signature"):
        load_public_identity(files.public)


def test_identity_file_fingerprint_and_fields(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "pq-only", None)
    original = files.public.read_bytes()
    _edit(files.public, lambda d: d.__setitem__("fingerprint", "00" * 32))
    with pytest.raises(CorruptKeyFile, match="fingerprint"):
        load_public_identity(files.public)
    files.public.write_bytes(original)
    _edit(files.public, lambda d: d.__setitem__("extra", 1))
    with pytest.raises(CorruptKeyFile, match="fields"):
        load_public_identity(files.public)
    files.public.write_bytes(original.replace(b'"id"', b'"id": "x", "id"', 1))
    with pytest.raises(CorruptKeyFile, match="not valid JSON"):
        load_public_identity(files.public)  # duplicate keys are refused


def test_swapped_file_kinds_and_oversize(tmp_path: Path) -> None:
    _, files = _write(tmp_path, "pq-only", None)
    with pytest.raises(CorruptKeyFile, match="private key file"):
        load_public_identity(files.private)
    with pytest.raises(CorruptKeyFile, match="public identity file"):
        (files.private.parent / "pub-as-key").write_bytes(files.public.read_bytes())
        (files.private.parent / "pub-as-key").chmod(0o600)
        load_identity(files.private.parent / "pub-as-key")
    files.private.write_bytes(b" " * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(CorruptKeyFile, match="larger than"):
        load_identity(files.private)


def test_passphrase_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(PASS + b"\r\n")
    assert read_passphrase_file(path) == PASS
    path.write_bytes(b"\n")
    with pytest.raises(ValueError, match="empty"):
        read_passphrase_file(path)
    path.write_bytes(b"x" * 5000)
    with pytest.raises(ValueError, match="longer"):
        read_passphrase_file(path)


@pytest.mark.parametrize("bad", ["", "../etc", ".hidden", "a" * 65, "a b", "ünï"])
def test_member_ids_are_safe_file_names(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        check_member_id(bad)
    check_member_id("a" * 64)


def test_update_signing_key_matches_the_published_key() -> None:
    identity = Identity.generate(id="alpha", role="client", suite="pq-only")
    key = identity.update_signing_key()
    published = VerifyKey.from_bytes(identity.public.signing_key.to_bytes())
    published.verify(key.sign(b"update", context=UPDATE_CONTEXT), b"update", context=UPDATE_CONTEXT)
    with pytest.raises(InvalidSignature):
        published.verify(
            key.sign(b"update", context=UPDATE_CONTEXT), b"other", context=UPDATE_CONTEXT
        )
    hybrid = Identity.generate(id="beta", role="client", suite="hybrid")
    with pytest.raises(WrongSuite, match="pq-only"):
        hybrid.update_signing_key()


def test_files_are_written_with_restrictive_mode_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _, files = _write(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.private.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "kdf_change",
    [{"n": 1 << 20}, {"n": 1000}, {"r": 1}, {"name": "pbkdf2"}, {"salt": "AAAA"}],
    ids=["n-too-costly", "n-not-power", "r", "name", "salt-length"],
)
def test_hostile_passphrase_parameters(tmp_path: Path, kdf_change: dict) -> None:
    _, files = _write(tmp_path, "pq-only", PASS)
    _edit(files.private, lambda d: d["kdf"].update(kdf_change))
    with pytest.raises(CorruptKeyFile, match="passphrase parameters"):
        load_identity(files.private, passphrase=PASS)
