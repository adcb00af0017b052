"""Sealing small secrets (key shares, seeds) to one recipient with HPKE (RFC 9180), Base mode.

The KEM follows the deployment's :class:`~fhe_agg.identity.Suite`:

* ``pq-only``, ``hybrid``, ``slh-dsa``: X-Wing, HPKE ``KEM.MLKEM768_X25519`` (id 0x647A,
  draft-connolly-cfrg-xwing-kem), HKDF-SHA256, AES-256-GCM;
* ``cnsa2``: HPKE ``KEM.MLKEM1024_P384`` (id 0x0051), HKDF-SHA384, AES-256-GCM.

Every blob is bound, through the HPKE ``info`` string (RFC 9180 §5.1), to a :class:`SealInfo`
(consortium, key epoch, sender, recipient, purpose) and to the suite. Opening with another key,
another ``SealInfo`` or a modified blob fails with :class:`SealingError`; HPKE cannot tell these
apart, so neither does the error.

Key encodings (pyca builds the hybrid keys from their two components, so these are the
concatenations, not the X-Wing 32-byte seed form): public ``ek_ML-KEM || pk_trad``
(X-Wing: 1184 + 32 = 1216 B; ML-KEM-1024+P-384: 1568 + 97 B, SEC1 uncompressed); private
``ML-KEM seed d||z (64 B) || trad private scalar``.

Blob layout::

    b"FAS1" || suite code (1 B) || HPKE enc || AEAD ciphertext (plaintext + 16 B tag)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fhe_agg.ckks._random import RandomSource, key_random
from fhe_agg.errors import MalformedMessage, MessageTooLarge, SealingError
from fhe_agg.identity._suites import Suite, WrongSuite

__all__ = [
    "MAX_SEALED_PLAINTEXT",
    "SealInfo",
    "SealingError",
    "SealingPrivateKey",
    "SealingPublicKey",
    "open_sealed",
    "seal",
]

#: Largest plaintext :func:`seal` accepts and :func:`open_sealed` will parse (bytes).
MAX_SEALED_PLAINTEXT = 1 << 20
_MAGIC = b"FAS1"
_TAG = 16
_MAX_FIELD = 255


@dataclass(frozen=True)
class _KemProfile:
    kem: hpke.KEM
    kdf: hpke.KDF
    enc_bytes: int
    ml_bytes: int
    trad_public_bytes: int
    trad_private_bytes: int


_XWING = _KemProfile(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, 1120, 1184, 32, 32)
_CNSA = _KemProfile(hpke.KEM.MLKEM1024_P384, hpke.KDF.HKDF_SHA384, 1568 + 97, 1568, 97, 48)
_PROFILES: dict[Suite, _KemProfile] = {
    Suite.PQ_ONLY: _XWING,
    Suite.HYBRID: _XWING,
    Suite.SLH_DSA: _XWING,
    Suite.CNSA2: _CNSA,
}


_SUITE_CODES: dict[Suite, int] = {
    Suite.PQ_ONLY: 1,
    Suite.HYBRID: 2,
    Suite.CNSA2: 3,
    Suite.SLH_DSA: 4,
}


def _hpke_suite(profile: _KemProfile) -> hpke.Suite:
    return hpke.Suite(profile.kem, profile.kdf, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True, kw_only=True)
class SealInfo:
    """Who sealed what to whom, for which consortium and key epoch.

    Text fields are 1..255 bytes of UTF-8; ``epoch`` is an integer in ``[0, 2**64)``.
    :meth:`encode` gives the canonical, length-prefixed byte string used as HPKE ``info``.
    """

    consortium: str
    epoch: int
    sender: str
    recipient: str
    purpose: str

    def __post_init__(self) -> None:
        for name in ("consortium", "sender", "recipient", "purpose"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"{name}: expected str, got {type(value).__name__}")
            if not 1 <= len(value.encode()) <= _MAX_FIELD:
                raise ValueError(f"{name}: must be 1..{_MAX_FIELD} bytes of UTF-8")
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int):
            raise TypeError(f"epoch: expected int, got {type(self.epoch).__name__}")
        if not 0 <= self.epoch < 1 << 64:
            raise ValueError("epoch: must be in [0, 2**64)")

    def encode(self, suite: Suite) -> bytes:
        """``b"fhe-agg/seal/v1"`` then suite, consortium, epoch (u64), sender, recipient, purpose.

        Each text field is prefixed with its one-byte length, so distinct tuples never encode
        alike.
        """
        parts = [b"fhe-agg/seal/v1"]
        for text in (suite.value, self.consortium):
            parts.append(_field(text))
        parts.append(struct.pack(">Q", self.epoch))
        for text in (self.sender, self.recipient, self.purpose):
            parts.append(_field(text))
        return b"".join(parts)


def _field(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw)]) + raw


class SealingPublicKey:
    """A recipient's public HPKE key for one suite."""

    __slots__ = ("_key", "_raw", "_suite")

    def __init__(
        self,
        suite: Suite,
        raw: bytes,
        key: hpke.MLKEM768X25519PublicKey | hpke.MLKEM1024P384PublicKey,
    ) -> None:
        self._suite, self._raw, self._key = suite, raw, key

    @classmethod
    def from_bytes(cls, suite: Suite, raw: bytes) -> SealingPublicKey:
        """Load ``ek_ML-KEM || pk_trad``; :class:`WrongSuite` / :class:`MalformedMessage`."""
        suite = Suite.parse(suite)
        if not isinstance(raw, bytes):
            raise TypeError(f"raw: expected bytes, got {type(raw).__name__}")
        p = _PROFILES[suite]
        if len(raw) != p.ml_bytes + p.trad_public_bytes:
            for other_suite, other in _PROFILES.items():
                if other is not p and len(raw) == other.ml_bytes + other.trad_public_bytes:
                    raise WrongSuite(f"sealing key belongs to suite {other_suite.value!r}")
            raise MalformedMessage(
                f"{suite.value} sealing key must be {p.ml_bytes + p.trad_public_bytes} bytes"
            )
        ml, trad = raw[: p.ml_bytes], raw[p.ml_bytes :]
        try:
            key: hpke.MLKEM768X25519PublicKey | hpke.MLKEM1024P384PublicKey
            if p is _XWING:
                key = hpke.MLKEM768X25519PublicKey(
                    mlkem.MLKEM768PublicKey.from_public_bytes(ml),
                    x25519.X25519PublicKey.from_public_bytes(trad),
                )
            else:
                key = hpke.MLKEM1024P384PublicKey(
                    mlkem.MLKEM1024PublicKey.from_public_bytes(ml),
                    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), trad),
                )
        except ValueError as exc:
            raise MalformedMessage(f"invalid {suite.value} sealing key: {exc}") from None
        return cls(suite, raw, key)

    @property
    def suite(self) -> Suite:
        return self._suite

    def to_bytes(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SealingPublicKey)
            and other._suite is self._suite
            and other._raw == self._raw
        )

    def __hash__(self) -> int:
        return hash((self._suite, self._raw))

    def __repr__(self) -> str:
        return f"SealingPublicKey({self._suite.value}, {len(self._raw)} bytes)"


class SealingPrivateKey:
    """A recipient's private HPKE key. Its repr never shows key material."""

    __slots__ = ("_key", "_public", "_raw", "_suite")

    def __init__(self, suite: Suite, raw: bytes) -> None:
        p = _PROFILES[suite]
        if len(raw) != 64 + p.trad_private_bytes:
            raise MalformedMessage(
                f"{suite.value} sealing private key must be {64 + p.trad_private_bytes} bytes"
            )
        try:
            if p is _XWING:
                ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64])
                xk = x25519.X25519PrivateKey.from_private_bytes(raw[64:])
                self._key: hpke.MLKEM768X25519PrivateKey | hpke.MLKEM1024P384PrivateKey = (
                    hpke.MLKEM768X25519PrivateKey(ml, xk)
                )
                public = ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
            else:
                ml2 = mlkem.MLKEM1024PrivateKey.from_seed_bytes(raw[:64])
                ek = ec.derive_private_key(int.from_bytes(raw[64:], "big"), ec.SECP384R1())
                self._key = hpke.MLKEM1024P384PrivateKey(ml2, ek)
                point = ek.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
                public = ml2.public_key().public_bytes_raw() + point
        except ValueError:
            raise MalformedMessage(f"invalid {suite.value} sealing private key") from None
        self._suite, self._raw = suite, raw
        self._public = SealingPublicKey.from_bytes(suite, public)

    @classmethod
    def generate(cls, suite: Suite, *, random: RandomSource | None = None) -> SealingPrivateKey:
        """A fresh key; its seeds come from ``random`` (default: the OS CSPRNG; a
        :class:`~fhe_agg.SeededRandom` only in tests, else ``ValueError``)."""
        suite = Suite.parse(suite)
        if random is not None:
            random = key_random(random, "an HPKE sealing key")
        p = _PROFILES[suite]
        if p is _XWING:
            seed = (
                random.bytes(96)
                if random is not None
                else mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
                + x25519.X25519PrivateKey.generate().private_bytes_raw()
            )
            return cls(suite, seed)
        ml_seed = (
            random.bytes(64)
            if random is not None
            else (mlkem.MLKEM1024PrivateKey.generate().private_bytes_raw())
        )
        while True:  # a P-384 scalar in [1, n): rejection sampling (FIPS 186-5 A.4.2)
            scalar = (
                random.bytes(48)
                if random is not None
                else (
                    ec.generate_private_key(ec.SECP384R1())
                    .private_numbers()
                    .private_value.to_bytes(48, "big")
                )
            )
            if 0 < int.from_bytes(scalar, "big") < _P384_ORDER:
                return cls(suite, ml_seed + scalar)

    @classmethod
    def from_private_bytes(cls, suite: Suite, raw: bytes) -> SealingPrivateKey:
        """Load the seed form written by :meth:`private_bytes`."""
        return cls(Suite.parse(suite), raw)

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def public_key(self) -> SealingPublicKey:
        return self._public

    def private_bytes(self) -> bytes:
        """``ML-KEM seed (64 B) || trad private key``. Handle as a secret."""
        return self._raw

    def __repr__(self) -> str:
        return f"SealingPrivateKey({self._suite.value}, <secret>)"

    __str__ = __repr__


_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def seal(
    recipient_public_key: SealingPublicKey,
    plaintext: bytes,
    *,
    info: SealInfo,
    suite: Suite,
) -> bytes:
    """Encrypt ``plaintext`` (at most :data:`MAX_SEALED_PLAINTEXT` bytes) to one recipient.

    Raises :class:`WrongSuite` if the key is of another suite than ``suite``.
    """
    suite = Suite.parse(suite)
    if not isinstance(recipient_public_key, SealingPublicKey):
        raise TypeError("recipient_public_key: expected SealingPublicKey")
    if not isinstance(info, SealInfo):
        raise TypeError("info: expected SealInfo")
    if not isinstance(plaintext, bytes):
        raise TypeError(f"plaintext: expected bytes, got {type(plaintext).__name__}")
    if len(plaintext) > MAX_SEALED_PLAINTEXT:
        raise ValueError(f"plaintext: at most {MAX_SEALED_PLAINTEXT} bytes")
    if recipient_public_key.suite is not suite:
        raise WrongSuite(
            f"recipient key is for suite {recipient_public_key.suite.value!r}, not {suite.value!r}"
        )
    p = _PROFILES[suite]
    body = _hpke_suite(p).encrypt(plaintext, recipient_public_key._key, info=info.encode(suite))
    return _MAGIC + bytes([_SUITE_CODES[suite]]) + body


def open_sealed(
    recipient_private_key: SealingPrivateKey,
    blob: bytes,
    *,
    info: SealInfo,
    suite: Suite,
) -> bytes:
    """Decrypt a blob from :func:`seal`; the plaintext, or a typed error.

    :class:`MalformedMessage` / :class:`MessageTooLarge` for a blob that cannot be one (checked
    before any decryption), :class:`WrongSuite` for another suite's blob or key,
    :class:`SealingError` if authentication fails.
    """
    suite = Suite.parse(suite)
    if not isinstance(recipient_private_key, SealingPrivateKey):
        raise TypeError("recipient_private_key: expected SealingPrivateKey")
    if not isinstance(info, SealInfo):
        raise TypeError("info: expected SealInfo")
    if not isinstance(blob, bytes):
        raise TypeError(f"blob: expected bytes, got {type(blob).__name__}")
    if recipient_private_key.suite is not suite:
        raise WrongSuite(
            f"private key is for suite {recipient_private_key.suite.value!r}, not {suite.value!r}"
        )
    p = _PROFILES[suite]
    header = len(_MAGIC) + 1
    if len(blob) < header + p.enc_bytes + _TAG:
        raise MalformedMessage("sealed blob is truncated")
    if len(blob) > header + p.enc_bytes + _TAG + MAX_SEALED_PLAINTEXT:
        raise MessageTooLarge(f"sealed blob exceeds {MAX_SEALED_PLAINTEXT} bytes of plaintext")
    if blob[: len(_MAGIC)] != _MAGIC:
        raise MalformedMessage("not a sealed blob (bad magic)")
    if blob[len(_MAGIC)] != _SUITE_CODES[suite]:
        raise WrongSuite(f"sealed blob was not made for suite {suite.value!r}")
    try:
        return _hpke_suite(p).decrypt(
            blob[header:], recipient_private_key._key, info=info.encode(suite)
        )
    except (InvalidTag, ValueError):
        raise SealingError(
            "sealed blob does not open: wrong recipient key, another consortium/epoch/sender/"
            "recipient/purpose, or the blob was modified"
        ) from None
