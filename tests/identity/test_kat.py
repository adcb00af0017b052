"""Known-answer tests against official vectors (see tests/vectors/README.md)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature as PycaInvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from fhe_agg.errors import InvalidSignature, MalformedMessage
from fhe_agg.identity import Suite, SuiteSigningKey, SuiteVerifyKey

from .conftest import load_vectors

KEYGEN = load_vectors("wycheproof_mldsa_65_keygen_subset.json")["tests"]
SIGVER = load_vectors("wycheproof_mldsa_65_verify_subset.json")["tests"]
KEMGEN = load_vectors("wycheproof_mlkem_768_keygen_subset.json")["tests"]
COMPOSITE = load_vectors("lamps_composite_mldsa65_ed25519_subset.json")


@pytest.mark.parametrize("case", KEYGEN, ids=lambda c: c["privateSeed"][:8])
def test_mldsa65_keygen_from_seed(case: dict[str, Any]) -> None:
    seed, pk = bytes.fromhex(case["privateSeed"]), bytes.fromhex(case["publicKey"])
    key = mldsa.MLDSA65PrivateKey.from_seed_bytes(seed)
    assert key.public_key().public_bytes_raw() == pk
    ours = SuiteSigningKey.from_private_bytes(Suite.PQ_ONLY, seed)
    assert ours.verify_key.to_bytes() == pk


@pytest.mark.parametrize("case", SIGVER, ids=lambda c: f"tc{c['tcId']}")
def test_mldsa65_sigver(case: dict[str, Any]) -> None:
    pk = bytes.fromhex(case["publicKey"])
    msg, sig = bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    ctx = bytes.fromhex(case["ctx"]) if "ctx" in case else b""
    if case["result"] == "valid":
        mldsa.MLDSA65PublicKey.from_public_bytes(pk).verify(sig, msg, ctx)
        SuiteVerifyKey.from_bytes(Suite.PQ_ONLY, pk).verify(sig, msg, context=ctx)
        return
    # pyca directly: every invalid case must be refused in some way.
    with pytest.raises((PycaInvalidSignature, ValueError)):
        mldsa.MLDSA65PublicKey.from_public_bytes(pk).verify(sig, msg, ctx)
    with pytest.raises((InvalidSignature, MalformedMessage, ValueError)):
        SuiteVerifyKey.from_bytes(Suite.PQ_ONLY, pk).verify(sig, msg, context=ctx)


def test_sigver_subset_has_valid_and_invalid() -> None:
    results = {c["result"] for c in SIGVER}
    assert results == {"valid", "invalid"}


@pytest.mark.parametrize("case", KEMGEN, ids=lambda c: f"tc{c['tcId']}")
def test_mlkem768_keygen_from_seed(case: dict[str, Any]) -> None:
    key = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(case["seed"]))
    assert key.public_key().public_bytes_raw() == bytes.fromhex(case["ek"])


def _b64(field: str) -> bytes:
    return base64.b64decode(COMPOSITE["tests"][0][field])


def test_composite_keygen_from_private_bytes() -> None:
    key = SuiteSigningKey.from_private_bytes(Suite.HYBRID, _b64("sk"))
    assert key.verify_key.to_bytes() == _b64("pk")


def test_composite_verifies_lamps_signatures() -> None:
    """Our M' construction must match the draft's exactly, or these official signatures fail."""
    vk = SuiteVerifyKey.from_bytes(Suite.HYBRID, _b64("pk"))
    m, ctx = base64.b64decode(COMPOSITE["m"]), base64.b64decode(COMPOSITE["ctx"])
    vk.verify(_b64("s"), m, context=b"")
    vk.verify(_b64("sWithContext"), m, context=ctx)
    with pytest.raises(InvalidSignature):
        vk.verify(_b64("s"), m, context=ctx)
    with pytest.raises(InvalidSignature):
        vk.verify(_b64("sWithContext"), m + b".", context=ctx)


def test_composite_signature_verifies_componentwise_with_pyca() -> None:
    """Our hybrid signature splits into a FIPS 204 and an RFC 8032 signature over M'."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from fhe_agg.identity._suites import COMPOSITE_LABEL, composite_message_representative

    key = SuiteSigningKey.from_private_bytes(Suite.HYBRID, _b64("sk"))
    sig = key.sign(b"statement", context=b"fhe-agg/v1/x")
    m_prime = composite_message_representative(b"statement", b"fhe-agg/v1/x")
    assert m_prime.startswith(b"CompositeAlgorithmSignatures2025COMPSIG-MLDSA65-Ed25519-SHA512")
    assert m_prime[62] == len(b"fhe-agg/v1/x")
    pk = _b64("pk")
    mldsa.MLDSA65PublicKey.from_public_bytes(pk[:1952]).verify(sig[:3309], m_prime, COMPOSITE_LABEL)
    ed25519.Ed25519PublicKey.from_public_bytes(pk[1952:]).verify(sig[3309:], m_prime)
