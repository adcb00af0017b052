from __future__ import annotations

import pytest

from fhe_agg import InvalidSignature, MalformedMessage, SigningKey, VerifyKey

CTX = b"fhe-agg/v1/test"


def test_sign_verify_and_tamper() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"message", context=CTX)
    key.verify_key.verify(sig, b"message", context=CTX)
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(sig, b"messagE", context=CTX)
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(sig, b"message", context=b"fhe-agg/v1/other")
    bad = bytearray(sig)
    bad[0] ^= 1
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(bytes(bad), b"message", context=CTX)
    for length in (len(sig) - 1, len(sig) + 1):
        with pytest.raises(InvalidSignature):
            key.verify_key.verify((sig * 2)[:length], b"message", context=CTX)


def test_public_key_bytes_round_trip_and_length_checks() -> None:
    vk = SigningKey.generate().verify_key
    raw = vk.to_bytes()
    assert VerifyKey.from_bytes(raw) == vk
    for bad in (raw[:-1], raw + b"\x00", b""):
        with pytest.raises(MalformedMessage):
            VerifyKey.from_bytes(bad)


def test_seeded_keys_are_deterministic() -> None:
    seed = bytes(range(32))
    assert SigningKey.from_seed(seed).verify_key == SigningKey.from_seed(seed).verify_key
