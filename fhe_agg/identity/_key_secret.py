"""Key secrets: a generated 256-bit secret that unlocks a key file where a machine holds the key.

A key secret is one line of text, ``fhe-agg/key-secret/v1:`` followed by the unpadded base64url
(RFC 4648 §5) of 32 bytes from the OS CSPRNG: 65 characters, self-describing and versioned, so a
reader tells it from a human passphrase by its prefix alone. :func:`write_key_secret` puts one in
a new file (mode 0600), which is given wherever a passphrase file is (``--passphrase-file``,
``PinnedRoster(passphrase_file=...)``); :func:`~fhe_agg.identity.write_identity` given one seals
the key file under HKDF-SHA256 instead of scrypt (``kdf = {"name": "hkdf-sha256", "salt": ...}``).

Use a key secret for a key that a machine unlocks without a person (a Flower SuperNode loads its
key file at every message); use a passphrase for a key a person holds and types. The secret file
must be guarded like the key file itself: whoever reads both has the key, so keep it apart (a
secrets mount, another volume), readable only by the node's user.

Why HKDF and not scrypt here. Passphrase stretching (scrypt, ~0.08 s per unlock) makes each guess
at a *human-chosen* passphrase expensive. A key secret is 256 uniformly random bits: guessing it
takes 2**256 trials classically and ~2**128 quantum (Grover), and stretching would only multiply
that by scrypt's constant cost. So the two keys of the file come from HKDF-SHA256 (RFC 5869):
``PRK = HMAC(salt, secret)`` (§2.2, salt = the file's 16 random bytes), then ``HMAC(PRK, info ||
0x01)`` under two distinct ``info`` labels, the check key and the AES-256-GCM sealing key (§2.3).
With a uniform 256-bit input, PRK is indistinguishable from uniform (HMAC as a dual PRF,
Krawczyk 2010; RFC 5869 §3.3 even allows keying the expand step with such an input directly),
and expand is HMAC-SHA256 as a PRF under PRK, so the two keys are independent and uniform: the
check value (an HMAC under the check key) tells nothing about the sealing key. The per-file salt
keeps files sealed under one secret apart. This is how age separates passphrase recipients
(scrypt) from its generated identities.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.identity._keyfile_io import write_new

__all__ = [
    "HKDF_NAME",
    "KEY_SECRET_PREFIX",
    "derive_key_secret_keys",
    "is_key_secret",
    "new_key_secret",
    "parse_key_secret",
    "write_key_secret",
]

#: The versioned prefix of a key secret's text.
KEY_SECRET_PREFIX = b"fhe-agg/key-secret/v1:"
#: ``kdf["name"]`` of a key file sealed under a key secret.
HKDF_NAME = "hkdf-sha256"
_FAMILY = KEY_SECRET_PREFIX[: KEY_SECRET_PREFIX.rindex(b"/") + 1]  # any version
_SECRET_BYTES = 32
_TEXT = re.compile(rb"[A-Za-z0-9_-]{43}")  # 32 bytes in unpadded base64url
_CHECK_INFO = b"fhe-agg/keystore/v1/key-secret-check"
_SEAL_INFO = b"fhe-agg/keystore/v1/key-secret-seal"


def new_key_secret(*, random: RandomSource | None = None) -> bytes:
    """A fresh key secret, ``fhe-agg/key-secret/v1:<43 base64url characters>``, as bytes.

    ``random`` draws the 32 bytes (default: the OS CSPRNG). Pass it as ``passphrase`` to
    :func:`~fhe_agg.identity.write_identity` and keep it in a file (:func:`write_key_secret`).
    """
    raw = (random or default_random()).bytes(_SECRET_BYTES)
    return KEY_SECRET_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=")


def write_key_secret(path: str | Path, *, random: RandomSource | None = None) -> bytes:
    """Write a fresh key secret and a newline to the new file ``path`` (mode 0600); return it.

    ``ValueError`` if ``path`` exists (a secret is never overwritten: the key files sealed
    under it would be lost). The file unlocks those key files: guard it like them.
    """
    p = Path(path)
    if p.exists() or p.is_symlink():
        raise ValueError(f"{p} exists; refusing to overwrite a key secret (choose another path)")
    secret = new_key_secret(random=random)
    write_new(p, secret + b"\n", 0o600)
    return secret


def is_key_secret(value: bytes) -> bool:
    """Whether ``value`` claims to be a key secret (of any version): it starts with the prefix."""
    return value.startswith(_FAMILY)


def parse_key_secret(value: bytes) -> bytes:
    """The 32 bytes of the key secret ``value``; ``ValueError`` saying what is wrong (never
    echoing the value)."""
    if not value.startswith(KEY_SECRET_PREFIX):
        if value.startswith(_FAMILY):
            raise ValueError(
                f"unsupported key secret version (this release reads "
                f"{KEY_SECRET_PREFIX.decode()}...)"
            )
        raise ValueError(f"not a key secret (expected {KEY_SECRET_PREFIX.decode()}...)")
    text = value[len(KEY_SECRET_PREFIX) :]
    if not _TEXT.fullmatch(text):
        raise ValueError(
            f"key secret must be {KEY_SECRET_PREFIX.decode()} and 43 base64url characters "
            f"(truncated or edited?)"
        )
    try:
        raw = base64.urlsafe_b64decode(text + b"=")
    except binascii.Error:
        raise ValueError("key secret is not valid base64url") from None
    if len(raw) != _SECRET_BYTES or base64.urlsafe_b64encode(raw).rstrip(b"=") != text:
        raise ValueError("key secret is not the canonical base64url of 32 bytes (edited?)")
    return raw


def derive_key_secret_keys(secret: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """``(check key, sealing key)``: HKDF-SHA256 of the 32-byte ``secret`` under ``salt``."""
    if len(secret) != _SECRET_BYTES:
        raise ValueError(f"secret: expected {_SECRET_BYTES} bytes")

    def expand(info: bytes) -> bytes:
        return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(secret)

    return expand(_CHECK_INFO), expand(_SEAL_INFO)
