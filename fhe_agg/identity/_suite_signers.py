"""The signing primitives behind each suite: ML-DSA (pyca), composite ML-DSA-65 + Ed25519, SLH-DSA.

Internal to :mod:`fhe_agg.identity._suites`; the composite construction follows
draft-ietf-lamps-pq-composite-sigs-19 exactly (see that module's docstring).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature as _PycaInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from fhe_agg.identity._suite_spec import Suite, _check_context

__all__ = ["COMPOSITE_LABEL", "COMPOSITE_PREFIX", "composite_message_representative"]

#: ASCII "CompositeAlgorithmSignatures2025" (draft-ietf-lamps-pq-composite-sigs-19, §4.2).
COMPOSITE_PREFIX = b"CompositeAlgorithmSignatures2025"
#: Domain label of id-MLDSA65-Ed25519-SHA512 (draft-ietf-lamps-pq-composite-sigs-19, §7).
COMPOSITE_LABEL = b"COMPSIG-MLDSA65-Ed25519-SHA512"


def composite_message_representative(message: bytes, context: bytes) -> bytes:
    """``M'`` of draft-ietf-lamps-pq-composite-sigs-19 §4.2 for MLDSA65-Ed25519-SHA512."""
    _check_context(context, allow_empty=True)
    return (
        COMPOSITE_PREFIX
        + COMPOSITE_LABEL
        + bytes([len(context)])
        + context
        + hashlib.sha512(message).digest()
    )


class _Signer(Protocol):
    def sign(self, message: bytes, context: bytes) -> bytes: ...
    def public_bytes(self) -> bytes: ...
    def private_bytes(self) -> bytes: ...


_MLDSA_PRIVATE: dict[Suite, type[mldsa.MLDSA65PrivateKey] | type[mldsa.MLDSA87PrivateKey]] = {
    Suite.PQ_ONLY: mldsa.MLDSA65PrivateKey,
    Suite.CNSA2: mldsa.MLDSA87PrivateKey,
}
_MLDSA_PUBLIC: dict[Suite, type[mldsa.MLDSA65PublicKey] | type[mldsa.MLDSA87PublicKey]] = {
    Suite.PQ_ONLY: mldsa.MLDSA65PublicKey,
    Suite.CNSA2: mldsa.MLDSA87PublicKey,
}


class _MlDsaSigner:
    def __init__(self, key: mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey) -> None:
        self._key = key

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self._key.sign(message, context)

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._key.private_bytes_raw()


class _CompositeSigner:
    def __init__(self, ml: mldsa.MLDSA65PrivateKey, ed: ed25519.Ed25519PrivateKey) -> None:
        self._ml, self._ed = ml, ed

    def sign(self, message: bytes, context: bytes) -> bytes:
        m_prime = composite_message_representative(message, context)
        return self._ml.sign(m_prime, COMPOSITE_LABEL) + self._ed.sign(m_prime)

    def public_bytes(self) -> bytes:
        return self._ml.public_key().public_bytes_raw() + self._ed.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._ml.private_bytes_raw() + self._ed.private_bytes_raw()


class _SlhDsaSigner:
    def __init__(self, secret: bytes) -> None:
        self._sk = secret

    def sign(self, message: bytes, context: bytes) -> bytes:
        signature: bytes = _slh_dsa().sign(self._sk, message, context=context)
        return signature

    def public_bytes(self) -> bytes:
        # FIPS 205 §9.1: SK = SK.seed || SK.prf || PK.seed || PK.root, PK = PK.seed || PK.root.
        return self._sk[-Suite.SLH_DSA.spec.public_key_bytes :]

    def private_bytes(self) -> bytes:
        return self._sk


def _slh_dsa() -> Any:
    """The pqcrypto SLH-DSA-SHA2-192s module (FIPS 205), imported on first use."""
    try:
        from pqcrypto.sign import slh_dsa_sha2_192s
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "suite 'slh-dsa' needs pqcrypto: pip install 'fhe-agg[pq-extra]'"
        ) from None
    return slh_dsa_sha2_192s


def _signer_from_private(suite: Suite, raw: bytes) -> _Signer:
    if suite in _MLDSA_PRIVATE:
        return _MlDsaSigner(_MLDSA_PRIVATE[suite].from_seed_bytes(raw))
    if suite is Suite.HYBRID:
        return _CompositeSigner(
            mldsa.MLDSA65PrivateKey.from_seed_bytes(raw[:32]),
            ed25519.Ed25519PrivateKey.from_private_bytes(raw[32:]),
        )
    return _SlhDsaSigner(raw)


def _pyca_ok(
    key: mldsa.MLDSA65PublicKey | ed25519.Ed25519PublicKey,
    signature: bytes,
    message: bytes,
    context: bytes | None,
) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, context)
    except _PycaInvalidSignature:
        return False
    return True
