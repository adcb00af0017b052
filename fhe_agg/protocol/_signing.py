"""ML-DSA-65 signing keys (FIPS 204) with domain-separating context strings.

Backed by pyca ``cryptography`` (OpenSSL >= 3.5). Signatures are hedged (randomized), as FIPS 204
recommends. Every use passes a context string (FIPS 204, section 5.2) such as
``b"fhe-agg/v1/update"`` so a signature made for one message type never verifies as another.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature as _PycaInvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from fhe_agg.errors import InvalidSignature, MalformedMessage

__all__ = ["ML_DSA_65_PUBLIC_KEY_BYTES", "ML_DSA_65_SIGNATURE_BYTES", "SigningKey", "VerifyKey"]

ML_DSA_65_PUBLIC_KEY_BYTES = 1952
ML_DSA_65_SIGNATURE_BYTES = 3309


class VerifyKey:
    """An ML-DSA-65 public key."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: mldsa.MLDSA65PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes_raw()

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        """Load a raw 1952-byte public key; :class:`MalformedMessage` if it is not one."""
        if not isinstance(raw, bytes) or len(raw) != ML_DSA_65_PUBLIC_KEY_BYTES:
            raise MalformedMessage(
                f"ML-DSA-65 public key must be {ML_DSA_65_PUBLIC_KEY_BYTES} bytes"
            )
        try:
            return cls(mldsa.MLDSA65PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise MalformedMessage(f"invalid ML-DSA-65 public key: {exc}") from None

    def to_bytes(self) -> bytes:
        return self._raw

    @property
    def fingerprint(self) -> bytes:
        """SHA3-256 of the raw public key."""
        return hashlib.sha3_256(self._raw).digest()

    def verify(self, signature: bytes, message: bytes, *, context: bytes) -> None:
        """Return ``None`` if ``signature`` is valid, else raise :class:`InvalidSignature`."""
        if len(signature) != ML_DSA_65_SIGNATURE_BYTES:
            raise InvalidSignature(f"signature must be {ML_DSA_65_SIGNATURE_BYTES} bytes")
        try:
            self._key.verify(signature, message, context)
        except _PycaInvalidSignature:
            raise InvalidSignature("signature does not verify under the expected key") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey(ML-DSA-65, fingerprint={self.fingerprint[:8].hex()})"


class SigningKey:
    """An ML-DSA-65 private key. Its repr and str never show key material."""

    __slots__ = ("_key",)

    def __init__(self, key: mldsa.MLDSA65PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(mldsa.MLDSA65PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key from a 32-byte seed (FIPS 204 ``ML-DSA.KeyGen_internal``)."""
        return cls(mldsa.MLDSA65PrivateKey.from_seed_bytes(seed))

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key())

    def sign(self, message: bytes, *, context: bytes) -> bytes:
        return self._key.sign(message, context)

    def __repr__(self) -> str:
        return f"SigningKey(ML-DSA-65, <secret>, public={self.verify_key.fingerprint[:8].hex()})"
