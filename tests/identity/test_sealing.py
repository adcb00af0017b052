"""HPKE sealing: round trips per suite, and each way a blob must refuse to open."""

from __future__ import annotations

import dataclasses

import pytest

from fhe_agg.ckks._random import SeededRandom
from fhe_agg.errors import MalformedMessage, MessageTooLarge
from fhe_agg.identity import (
    MAX_SEALED_PLAINTEXT,
    SealInfo,
    SealingError,
    SealingPrivateKey,
    SealingPublicKey,
    Suite,
    WrongSuite,
    open_sealed,
    seal,
)

INFO = SealInfo(
    consortium="hospitals-eu", epoch=3, sender="dealer", recipient="kh-1", purpose="key-share"
)
SECRET = b"share: " + bytes(range(200))


@pytest.fixture(scope="module")
def keys() -> dict[Suite, SealingPrivateKey]:
    return {s: SealingPrivateKey.generate(s) for s in Suite}


@pytest.mark.parametrize("suite", list(Suite))
def test_round_trip(keys: dict[Suite, SealingPrivateKey], suite: Suite) -> None:
    blob = seal(keys[suite].public_key, SECRET, info=INFO, suite=suite)
    assert SECRET not in blob
    assert open_sealed(keys[suite], blob, info=INFO, suite=suite) == SECRET
    assert (
        open_sealed(
            keys[suite],
            seal(keys[suite].public_key, b"", info=INFO, suite=suite),
            info=INFO,
            suite=suite,
        )
        == b""
    )


def test_sealing_is_randomized(keys: dict[Suite, SealingPrivateKey]) -> None:
    k = keys[Suite.HYBRID]
    assert seal(k.public_key, SECRET, info=INFO, suite=Suite.HYBRID) != seal(
        k.public_key, SECRET, info=INFO, suite=Suite.HYBRID
    )


@pytest.mark.parametrize("suite", [Suite.HYBRID, Suite.CNSA2])
def test_other_recipient_cannot_open(keys: dict[Suite, SealingPrivateKey], suite: Suite) -> None:
    blob = seal(keys[suite].public_key, SECRET, info=INFO, suite=suite)
    intruder = SealingPrivateKey.generate(suite)
    with pytest.raises(SealingError):
        open_sealed(intruder, blob, info=INFO, suite=suite)
    # ...even if the intruder claims to be the recipient named in the info
    with pytest.raises(SealingError):
        open_sealed(intruder, blob, info=dataclasses.replace(INFO, recipient="kh-2"), suite=suite)


@pytest.mark.parametrize(
    "change",
    [
        {"epoch": 4},
        {"epoch": 2},
        {"consortium": "hospitals-us"},
        {"sender": "mallory"},
        {"recipient": "kh-2"},
        {"purpose": "seed"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_mismatched_info_fails(
    keys: dict[Suite, SealingPrivateKey], change: dict[str, object]
) -> None:
    k = keys[Suite.HYBRID]
    blob = seal(k.public_key, SECRET, info=INFO, suite=Suite.HYBRID)
    with pytest.raises(SealingError):
        open_sealed(k, blob, info=dataclasses.replace(INFO, **change), suite=Suite.HYBRID)


@pytest.mark.parametrize("suite", [Suite.PQ_ONLY, Suite.CNSA2])
def test_tampering_fails(keys: dict[Suite, SealingPrivateKey], suite: Suite) -> None:
    k = keys[suite]
    blob = seal(k.public_key, SECRET, info=INFO, suite=suite)
    for pos in (5, 5 + 600, len(blob) - 100, len(blob) - 1):  # enc (ML-KEM, trad), ct, tag
        bad = bytearray(blob)
        bad[pos] ^= 0x80
        with pytest.raises(SealingError):
            open_sealed(k, bytes(bad), info=INFO, suite=suite)
    with pytest.raises(SealingError):
        open_sealed(k, blob[:-1], info=INFO, suite=suite)
    with pytest.raises(SealingError):
        open_sealed(k, blob + b"\x00", info=INFO, suite=suite)


def test_bounded_parsing(keys: dict[Suite, SealingPrivateKey]) -> None:
    k = keys[Suite.PQ_ONLY]
    blob = seal(k.public_key, b"x", info=INFO, suite=Suite.PQ_ONLY)
    minimum = 5 + 1120 + 16
    assert len(blob) == minimum + 1
    with pytest.raises(MalformedMessage, match="truncated"):
        open_sealed(k, blob[: minimum - 1], info=INFO, suite=Suite.PQ_ONLY)
    with pytest.raises(MalformedMessage, match="magic"):
        open_sealed(k, b"XXXX" + blob[4:], info=INFO, suite=Suite.PQ_ONLY)
    with pytest.raises(MessageTooLarge):
        open_sealed(k, blob + bytes(MAX_SEALED_PLAINTEXT), info=INFO, suite=Suite.PQ_ONLY)
    with pytest.raises(ValueError, match="plaintext"):
        seal(k.public_key, bytes(MAX_SEALED_PLAINTEXT + 1), info=INFO, suite=Suite.PQ_ONLY)


def test_wrong_suite(keys: dict[Suite, SealingPrivateKey]) -> None:
    hybrid, pq = keys[Suite.HYBRID], keys[Suite.PQ_ONLY]
    blob = seal(hybrid.public_key, SECRET, info=INFO, suite=Suite.HYBRID)
    with pytest.raises(WrongSuite):
        open_sealed(hybrid, blob, info=INFO, suite=Suite.PQ_ONLY)
    with pytest.raises(WrongSuite):
        open_sealed(pq, blob, info=INFO, suite=Suite.PQ_ONLY)  # same KEM, other suite's blob
    with pytest.raises(WrongSuite):
        seal(hybrid.public_key, SECRET, info=INFO, suite=Suite.CNSA2)
    with pytest.raises(WrongSuite):
        SealingPublicKey.from_bytes(Suite.CNSA2, hybrid.public_key.to_bytes())


@pytest.mark.parametrize("suite", [Suite.HYBRID, Suite.CNSA2])
def test_key_encodings(keys: dict[Suite, SealingPrivateKey], suite: Suite) -> None:
    k = keys[suite]
    pub = k.public_key.to_bytes()
    assert len(pub) == {Suite.HYBRID: 1216, Suite.CNSA2: 1665}[suite]
    assert SealingPublicKey.from_bytes(suite, pub) == k.public_key
    again = SealingPrivateKey.from_private_bytes(suite, k.private_bytes())
    assert again.public_key == k.public_key
    blob = seal(k.public_key, SECRET, info=INFO, suite=suite)
    assert open_sealed(again, blob, info=INFO, suite=suite) == SECRET
    for bad in (pub[:-1], pub + b"\x00"):
        with pytest.raises(MalformedMessage):
            SealingPublicKey.from_bytes(suite, bad)
    with pytest.raises(MalformedMessage):
        SealingPrivateKey.from_private_bytes(suite, k.private_bytes()[:-1])
    assert "<secret>" in repr(k) and k.private_bytes().hex()[:16] not in repr(k)


def test_seeded_keys_reproducible() -> None:
    for suite in (Suite.HYBRID, Suite.CNSA2):
        a = SealingPrivateKey.generate(suite, random=SeededRandom(5))
        b = SealingPrivateKey.generate(suite, random=SeededRandom(5))
        assert a.public_key == b.public_key
        assert a.public_key != SealingPrivateKey.generate(suite, random=SeededRandom(6)).public_key


def test_seal_info_validation_and_encoding() -> None:
    with pytest.raises(ValueError, match="consortium"):
        dataclasses.replace(INFO, consortium="")
    with pytest.raises(ValueError, match="purpose"):
        dataclasses.replace(INFO, purpose="p" * 256)
    with pytest.raises(ValueError, match="epoch"):
        dataclasses.replace(INFO, epoch=-1)
    with pytest.raises(TypeError, match="epoch"):
        dataclasses.replace(INFO, epoch=True)
    with pytest.raises(TypeError, match="sender"):
        dataclasses.replace(INFO, sender=b"dealer")  # type: ignore[arg-type]
    # length prefixes make the encoding injective across field boundaries
    a = SealInfo(consortium="c", epoch=1, sender="ab", recipient="c", purpose="p")
    b = SealInfo(consortium="c", epoch=1, sender="a", recipient="bc", purpose="p")
    assert a.encode(Suite.HYBRID) != b.encode(Suite.HYBRID)
    assert a.encode(Suite.HYBRID) != a.encode(Suite.PQ_ONLY)
