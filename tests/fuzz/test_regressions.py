"""Inputs that escaped a parser's documented errors (or hung it) before the fix; one test each."""

from __future__ import annotations

import base64
import json
import struct
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from fhe_agg import (
    PRESETS,
    AbortVote,
    FederationConfig,
    KeyHolder,
    Layout,
    MalformedMessage,
    PartialDecryption,
    PublicKey,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import CorruptKeyFile, CorruptStore, InvalidRoster
from fhe_agg.hazmat.seal_format import _header, parse_ciphertext
from fhe_agg.identity import (
    AuditLog,
    AuditLogError,
    Identity,
    KeyRotation,
    Roster,
    load_identity,
    load_inventory,
    load_public_identity,
    verify_log,
    write_identity,
)
from fhe_agg.identity._encoding import canonical_json, strict_json
from fhe_agg.protocol._wire import pack

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
PASS = b"regression passphrase"


@pytest.fixture(scope="module")
def agg_identity() -> Identity:
    return Identity.generate(id="agg", role="aggregator", suite="pq-only")


@pytest.mark.parametrize(
    "text", [DEEP_JSON, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * 33 + b"]" * 33, b"1e999"]
)
def test_strict_json_refuses_deep_nesting_and_overflow_with_value_error(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"deeper|out of range"):  # was RecursionError / inf
        strict_json(text)
    assert strict_json(b"[" * 32 + b"]" * 32) is not None


def test_deeply_nested_key_file_and_roster_raise_typed_errors(tmp_path: Path, agg_identity) -> None:
    path = tmp_path / "deep.pub.json"
    path.write_bytes(b"[" * 30_000 + b"]" * 30_000)  # within the 64 KiB bound of key files
    with pytest.raises(CorruptKeyFile, match="not valid JSON"):
        load_public_identity(path)
    with pytest.raises(InvalidRoster, match="not valid JSON"):
        Roster.from_bytes(DEEP_JSON, admin=agg_identity.public)


def _log_line(tmp_path: Path, ident: Identity) -> bytes:
    log = AuditLog(tmp_path / "audit.jsonl", key=ident.signing_key, actor="agg")
    log.record("update-accepted", {"weight": 1})
    return (tmp_path / "audit.jsonl").read_bytes()


@pytest.mark.parametrize(
    "payload",
    [b'{"weight":NaN}', b'{"weight":1e999}', b'{"weight":-Infinity}', b'{"w":' + b"[" * 5000],
)
def test_audit_log_with_nan_or_deep_payload_is_an_audit_log_error(
    tmp_path: Path, agg_identity, payload: bytes
) -> None:
    line = _log_line(tmp_path, agg_identity).replace(b'{"weight":1}', payload)
    path = tmp_path / "edited.jsonl"
    path.write_bytes(line)
    with pytest.raises(AuditLogError, match="line 1: not JSON"):  # was ValueError/RecursionError
        verify_log(path, {"agg": agg_identity.public.signing_key})


def test_audit_log_signature_that_is_not_ascii_is_an_audit_log_error(
    tmp_path: Path, agg_identity
) -> None:
    line = _log_line(tmp_path, agg_identity)
    entry = json.loads(line)
    entry["sig"] = "\u2028"  # found by fuzz/: base64 raised a bare ValueError
    path = tmp_path / "edited.jsonl"
    path.write_bytes(canonical_json(entry) + b"\n")
    with pytest.raises(AuditLogError, match="line 1: signature does not verify"):
        verify_log(path, {"agg": agg_identity.public.signing_key})


def test_audit_log_refuses_to_write_what_it_could_not_verify(tmp_path: Path, agg_identity) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", key=agg_identity.signing_key, actor="agg")
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        log.record("note", {"deep": deep})
    assert not (tmp_path / "audit.jsonl").exists()


def test_zstd_frame_declaring_a_terabyte_is_malformed_not_memory_error() -> None:
    b = backend_for(PRESETS["precise"])
    # zstd frame header: single segment, 8-byte content size of 2**40, then an empty raw block
    frame = (
        bytes.fromhex("28b52ffd") + b"\xe0" + struct.pack("<Q", 1 << 40) + bytes.fromhex("010000")
    )
    blob = _header(16 + len(frame), compressed=True) + frame
    with pytest.raises(MalformedMessage, match="declares 1099511627776 bytes"):
        parse_ciphertext(blob, n=b.n, primes=b.data_primes, parms_id=b.data_parms_id)
    with pytest.raises(MalformedMessage, match="declares"):  # public keys use the same parser
        PublicKey.from_bytes(PRESETS["precise"], blob)


def test_rotation_request_with_a_non_string_member_is_a_value_error(agg_identity) -> None:
    request = {
        "format": "fhe-agg/key-rotation/v1",
        "consortium": "acme",
        "member": {"not": "a string"},
        "old_fingerprint": "00",
        "new": agg_identity.public.to_json(),
        "from_round": 1,
        "endorsement": "",
    }
    with pytest.raises(ValueError, match="must be strings"):  # was TypeError
        KeyRotation.from_json(request)


def test_swapped_key_files_are_corrupt_key_files(tmp_path: Path, agg_identity) -> None:
    files = write_identity(agg_identity, tmp_path / "keys")
    with pytest.raises(CorruptKeyFile, match="is a private key file"):  # was ValueError
        load_public_identity(files.private)
    swapped = tmp_path / "keys" / "swapped.key"
    swapped.write_bytes(files.public.read_bytes())
    swapped.chmod(0o600)
    with pytest.raises(CorruptKeyFile, match="is a public identity file"):
        load_identity(swapped)


def test_pbkdf2_iteration_count_of_an_edited_key_file_is_bounded(
    tmp_path: Path, agg_identity
) -> None:
    files = write_identity(agg_identity, tmp_path / "keys", passphrase=PASS)
    doc = json.loads(files.private.read_text())
    pem = doc["signing"][0]["pkcs8"]
    der = base64.b64decode("".join(pem.strip().splitlines()[1:-1])).hex()
    assert "02020800" in der  # pyca writes PBKDF2 with 2048 iterations
    # the same key with 2**31 - 1 iterations: every enclosing length grows by two bytes
    edited = (
        der.replace("3081a3305f", "3081a53061", 1)
        .replace("30523031", "30543033", 1)
        .replace("3024", "3026", 1)
        .replace("02020800", "02047fffffff", 1)
    )
    body = base64.encodebytes(bytes.fromhex(edited)).decode()
    doc["signing"][0]["pkcs8"] = (
        f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    files.private.write_text(json.dumps(doc))
    start = time.monotonic()
    with pytest.raises(CorruptKeyFile, match="PBKDF2 iteration count"):  # was a ~30 min hang
        load_identity(files.private, passphrase=PASS)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", b"{a: " * 3000),
        (".yaml", b"- " * 3000 + b"a"),
        (".json", DEEP_JSON),
        (".yaml", b"a: !!timestamp 2001-13-01"),
    ],
)
def test_deep_or_bad_inventory_is_a_value_error_naming_the_file(
    tmp_path: Path, suffix: str, text: bytes
) -> None:
    path = tmp_path / f"inventory{suffix}"
    path.write_bytes(text)
    with pytest.raises(ValueError, match=f"inventory {path}"):  # was RecursionError
        load_inventory(path)


def test_partial_decryption_set_of_booleans_is_refused() -> None:
    config = FederationConfig(
        min_clients=2, max_clients=4, max_weight=10.0, value_bound=1.0, holders=5, threshold=3
    )
    layout = Layout.for_vector(100)
    primes = backend_for(config.preset).data_primes
    partial = PartialDecryption(
        round_id=1,
        holder_index=2,
        aggregate_digest=bytes(32),
        decrypting_set=(1, 2, 4),
        data=np.zeros((1, len(primes), 8192), dtype=np.uint64),
    )
    body = msgpack.unpackb(partial.to_bytes(config))["body"]
    body["set"] = [True if m == 1 else m for m in body["set"]]  # True == 1 in Python
    with pytest.raises(MalformedMessage, match=r"partial\.set"):
        PartialDecryption.from_bytes(pack("partial", body), config=config, layout=layout)


def test_a_body_with_text_and_binary_field_names_is_malformed() -> None:
    """msgpack map keys may be str or bytes; naming the fields sorted them (TypeError)."""
    wire = msgpack.packb(
        {"v": 1, "kind": "abort-vote", "body": {"vote": [], b"x": 1}}, use_bin_type=True
    )
    with pytest.raises(MalformedMessage, match="fields"):
        AbortVote.from_bytes(wire, config=FederationConfig())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"holders": 256, "threshold": 2}, "threshold > holders / 2"),  # found by atheris
        ({"flooding": None, "dp": None}, "needs noise flooding"),  # found by Hypothesis
        ({"max_weight": 1.7e308}, "beyond any float"),  # atheris: was OverflowError
    ],
)
def test_federation_record_the_security_checks_refuse_is_malformed(
    change: dict[str, Any], reason: str
) -> None:
    pytest.importorskip("flwr")
    from fhe_agg.flower import _records as rec

    config = FederationConfig(
        min_clients=2, max_clients=4, max_weight=10.0, value_bound=1.0, holders=3, threshold=2
    )
    fields = msgpack.unpackb(config.to_bytes())["body"]
    fields.update(change)
    body = {"config": pack("federation-config", fields), "clip": None}
    with pytest.raises(MalformedMessage, match=reason):  # was UnsupportedParameters
        rec.decode_config(pack("federation", body))


def test_store_whose_schema_is_not_utf8_is_corrupt(config, keypair, roster, tmp_path: Path) -> None:
    # found by the stores harness after 2,200 inputs: was UnicodeDecodeError out of open_store
    path = tmp_path / "holder.sqlite"
    args = {"holder_id": "kh", "config": config, "public_key": keypair[0], "roster": roster}
    KeyHolder(key_share=keypair[1], store=path, **args).close()
    data = path.read_bytes()
    assert data.count(b"autoindex_meta") == 1
    path.write_bytes(data.replace(b"autoindex_meta", b"autoindex_m\xffta"))
    with pytest.raises(CorruptStore, match="not UTF-8"):
        KeyHolder(key_share=keypair[1], store=path, **args)


def test_a_deeply_nested_pin_memo_is_a_miss_not_a_recursion_error(tmp_path: Path) -> None:
    """Found by the ``pin_memo`` target on its first run (2026-12-06): ``json.loads`` raised
    RecursionError; the memo is parsed with ``strict_json`` now."""
    from fhe_agg.flower._pin_memo import MEMO_FILE, read_memo

    (tmp_path / MEMO_FILE).write_bytes(b"[" * 4000)
    assert read_memo(tmp_path) is None
