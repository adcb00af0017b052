"""Suite signing keys: round trips, tampering, wrong suites, context rules, quiet reprs."""

from __future__ import annotations

import pytest

from fhe_agg.ckks._random import SeededRandom
from fhe_agg.errors import InvalidSignature, MalformedMessage
from fhe_agg.identity import Suite, SuiteSigningKey, SuiteVerifyKey, WrongSuite

CTX = b"fhe-agg/v1/test"
FAST = [Suite.PQ_ONLY, Suite.HYBRID, Suite.CNSA2]


@pytest.fixture(scope="module")
def keys() -> dict[Suite, SuiteSigningKey]:
    return {s: SuiteSigningKey.generate(s) for s in Suite}


@pytest.fixture(scope="module")
def slh_signature(keys: dict[Suite, SuiteSigningKey]) -> bytes:
    return keys[Suite.SLH_DSA].sign(b"root statement", context=CTX)


@pytest.mark.parametrize("suite", FAST)
def test_sign_verify_and_sizes(keys: dict[Suite, SuiteSigningKey], suite: Suite) -> None:
    key = keys[suite]
    sig = key.sign(b"hello", context=CTX)
    assert len(sig) == suite.spec.signature_bytes
    assert len(key.verify_key.to_bytes()) == suite.spec.public_key_bytes
    key.verify_key.verify(sig, b"hello", context=CTX)


def test_slh_dsa_sign_verify(keys: dict[Suite, SuiteSigningKey], slh_signature: bytes) -> None:
    vk = keys[Suite.SLH_DSA].verify_key
    assert len(slh_signature) == 16224
    vk.verify(slh_signature, b"root statement", context=CTX)
    with pytest.raises(InvalidSignature):
        vk.verify(slh_signature, b"root statement!", context=CTX)
    with pytest.raises(InvalidSignature):
        vk.verify(slh_signature, b"root statement", context=b"other")
    flipped = bytes([slh_signature[0] ^ 1]) + slh_signature[1:]
    with pytest.raises(InvalidSignature):
        vk.verify(flipped, b"root statement", context=CTX)


@pytest.mark.parametrize("suite", FAST)
def test_tampering_fails(keys: dict[Suite, SuiteSigningKey], suite: Suite) -> None:
    key = keys[suite]
    sig = key.sign(b"hello", context=CTX)
    vk = key.verify_key
    with pytest.raises(InvalidSignature):
        vk.verify(sig, b"hellp", context=CTX)
    with pytest.raises(InvalidSignature):
        vk.verify(sig, b"hello", context=CTX + b"x")
    for pos in (0, len(sig) // 2, len(sig) - 1):
        bad = bytearray(sig)
        bad[pos] ^= 0x01
        with pytest.raises(InvalidSignature):
            vk.verify(bytes(bad), b"hello", context=CTX)
    for bad_len in (sig[:-1], sig + b"\x00"):
        with pytest.raises(InvalidSignature):
            vk.verify(bad_len, b"hello", context=CTX)
    other = SuiteSigningKey.generate(suite)
    with pytest.raises(InvalidSignature):
        other.verify_key.verify(sig, b"hello", context=CTX)


def test_hybrid_needs_both_components(keys: dict[Suite, SuiteSigningKey]) -> None:
    """A composite signature with either half from another key must fail (draft §4.3)."""
    key, other = keys[Suite.HYBRID], SuiteSigningKey.generate(Suite.HYBRID)
    a = key.sign(b"m", context=CTX)
    b = other.sign(b"m", context=CTX)
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(a[:3309] + b[3309:], b"m", context=CTX)
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(b[:3309] + a[3309:], b"m", context=CTX)


@pytest.mark.parametrize("signer", FAST)
@pytest.mark.parametrize("verifier", list(Suite))
def test_wrong_suite_signature(
    keys: dict[Suite, SuiteSigningKey], signer: Suite, verifier: Suite
) -> None:
    if signer is verifier:
        return
    sig = keys[signer].sign(b"m", context=CTX)
    with pytest.raises(WrongSuite, match=signer.value):
        keys[verifier].verify_key.verify(sig, b"m", context=CTX)


@pytest.mark.parametrize("owner", list(Suite))
@pytest.mark.parametrize("claimed", list(Suite))
def test_wrong_suite_public_key(
    keys: dict[Suite, SuiteSigningKey], owner: Suite, claimed: Suite
) -> None:
    raw = keys[owner].verify_key.to_bytes()
    if owner is claimed:
        assert SuiteVerifyKey.from_bytes(claimed, raw) == keys[owner].verify_key
        return
    with pytest.raises(WrongSuite):
        SuiteVerifyKey.from_bytes(claimed, raw)


@pytest.mark.parametrize("suite", list(Suite))
def test_public_key_length_off_by_one(keys: dict[Suite, SuiteSigningKey], suite: Suite) -> None:
    raw = keys[suite].verify_key.to_bytes()
    for bad in (raw[:-1], raw + b"\x00"):
        with pytest.raises(MalformedMessage):
            SuiteVerifyKey.from_bytes(suite, bad)


def test_verify_keys_of_different_suites_differ(keys: dict[Suite, SuiteSigningKey]) -> None:
    seeded = SuiteSigningKey.from_private_bytes(Suite.PQ_ONLY, bytes(32))
    cnsa = SuiteSigningKey.from_private_bytes(Suite.CNSA2, bytes(32))
    assert seeded.verify_key != cnsa.verify_key
    assert seeded.verify_key.fingerprint != cnsa.verify_key.fingerprint


@pytest.mark.parametrize("suite", list(Suite))
def test_private_round_trip(keys: dict[Suite, SuiteSigningKey], suite: Suite) -> None:
    key = keys[suite]
    again = SuiteSigningKey.from_private_bytes(suite, key.private_bytes())
    assert again.verify_key == key.verify_key
    with pytest.raises(MalformedMessage):
        SuiteSigningKey.from_private_bytes(suite, key.private_bytes()[:-1])


def test_seeded_generation_is_reproducible() -> None:
    for suite in FAST:
        a = SuiteSigningKey.generate(suite, random=SeededRandom(7))
        b = SuiteSigningKey.generate(suite, random=SeededRandom(7))
        c = SuiteSigningKey.generate(suite, random=SeededRandom(8))
        assert a.verify_key == b.verify_key != c.verify_key
    with pytest.raises(ValueError, match="random"):
        SuiteSigningKey.generate(Suite.SLH_DSA, random=SeededRandom(1))


def test_context_rules(keys: dict[Suite, SuiteSigningKey]) -> None:
    key = keys[Suite.PQ_ONLY]
    with pytest.raises(ValueError, match="context"):
        key.sign(b"m", context=b"")
    with pytest.raises(ValueError, match="context"):
        key.sign(b"m", context=b"x" * 256)
    with pytest.raises(TypeError, match="context"):
        key.sign(b"m", context="text")  # type: ignore[arg-type]
    sig = key.sign(b"m", context=b"x" * 255)
    key.verify_key.verify(sig, b"m", context=b"x" * 255)


def test_reprs_hide_secrets(keys: dict[Suite, SuiteSigningKey]) -> None:
    for key in keys.values():
        text = repr(key) + str(key)
        secret = key.private_bytes()
        assert "<secret>" in text
        assert secret.hex() not in text and secret[:8].hex() not in text


def test_parse() -> None:
    assert Suite.parse("hybrid") is Suite.HYBRID
    assert Suite.parse(Suite.CNSA2) is Suite.CNSA2
    with pytest.raises(ValueError, match="suite"):
        Suite.parse("rsa")
