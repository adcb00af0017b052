"""ML-DSA-65 cross-verification between pyca/cryptography and pqcrypto (two implementations)."""

from __future__ import annotations

import pytest

pqcrypto_sign = pytest.importorskip("pqcrypto.sign")

from fhe_agg.errors import InvalidSignature  # noqa: E402
from fhe_agg.identity import Suite, SuiteSigningKey, SuiteVerifyKey  # noqa: E402

CTX = b"fhe-agg/v1/interop"


def test_pyca_signature_verifies_in_pqcrypto() -> None:
    from pqcrypto import InvalidSignatureError
    from pqcrypto.sign import ml_dsa_65

    key = SuiteSigningKey.generate(Suite.PQ_ONLY)
    sig = key.sign(b"update", context=CTX)
    ml_dsa_65.verify(key.verify_key.to_bytes(), b"update", sig, context=CTX)
    with pytest.raises(InvalidSignatureError):
        ml_dsa_65.verify(key.verify_key.to_bytes(), b"update", sig, context=CTX + b"!")


def test_pqcrypto_signature_verifies_in_pyca() -> None:
    from pqcrypto.sign import ml_dsa_65

    pk, sk = ml_dsa_65.keygen()
    sig = ml_dsa_65.sign(sk, b"update", context=CTX)
    vk = SuiteVerifyKey.from_bytes(Suite.PQ_ONLY, bytes(pk))
    vk.verify(bytes(sig), b"update", context=CTX)
    with pytest.raises(InvalidSignature):
        vk.verify(bytes(sig), b"updatE", context=CTX)
