"""Secrets at rest: a key share or a ceremony member's state sealed to its own holder's key.

A node writes its key share and its ceremony state to disk only in this form. The payload is
encrypted with AES-256-GCM under a fresh 32-byte data key, and that data key is sealed with HPKE
(:func:`fhe_agg.identity.seal`, X-Wing or ML-KEM-1024+P-384 by suite) to the holder's own sealing
key, bound through the HPKE ``info`` to a :class:`~fhe_agg.identity.SealInfo` (consortium, key
epoch, holder id as sender and recipient, purpose). The same ``SealInfo`` encoding is the AES-GCM
associated data, so a blob copied to another holder, epoch, consortium or purpose (or edited)
fails to open with :class:`~fhe_agg.identity.SealingError`. A data key is needed because HPKE's
one-shot seal takes at most :data:`~fhe_agg.identity.MAX_SEALED_PLAINTEXT` bytes and a key-level
share of a large preset is larger.

Whoever can read the holder's identity key file (guarded by its passphrase or key secret) can open
these blobs: the share is exactly as safe as the roster identity. Layout::

    b"FAR1" || u32 length of the sealed data key || sealed data key || 12 B nonce || AES-GCM body
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fhe_agg._errors import MalformedMessage
from fhe_agg.identity._sealing import SealInfo, SealingError, SealingPrivateKey, open_sealed, seal

__all__ = ["MAX_AT_REST_BYTES", "open_at_rest", "seal_at_rest"]

#: Largest payload sealed at rest (a key-level share of the largest preset is a few MiB).
MAX_AT_REST_BYTES = 1 << 28
_MAGIC = b"FAR1"
_NONCE = 12
_MAX_WRAPPED = 4096  # an HPKE-sealed 32-byte key: header + enc (<= 1665 B) + 32 + 16


def seal_at_rest(key: SealingPrivateKey, plaintext: bytes, *, info: SealInfo) -> bytes:
    """``plaintext`` encrypted for ``key``'s own holder, bound to ``info``."""
    if not isinstance(plaintext, bytes) or len(plaintext) > MAX_AT_REST_BYTES:
        raise ValueError(f"plaintext: expected at most {MAX_AT_REST_BYTES} bytes")
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = seal(key.public_key, data_key, info=info, suite=key.suite)
    nonce = os.urandom(_NONCE)
    body = AESGCM(data_key).encrypt(nonce, plaintext, info.encode(key.suite))
    return _MAGIC + struct.pack(">I", len(wrapped)) + wrapped + nonce + body


def open_at_rest(key: SealingPrivateKey, blob: bytes, *, info: SealInfo) -> bytes:
    """The plaintext of :func:`seal_at_rest`; :class:`SealingError` for another key, another
    ``info`` or an edited blob, :class:`MalformedMessage` for bytes that cannot be one."""
    if not isinstance(blob, bytes) or len(blob) < len(_MAGIC) + 4 or blob[:4] != _MAGIC:
        raise MalformedMessage("not a secret sealed at rest (bad magic)")
    (size,) = struct.unpack(">I", blob[4:8])
    if not 0 < size <= _MAX_WRAPPED or len(blob) < 8 + size + _NONCE + 16:
        raise MalformedMessage("a secret sealed at rest is truncated")
    if len(blob) > 8 + size + _NONCE + 16 + MAX_AT_REST_BYTES:
        raise MalformedMessage("a secret sealed at rest is too large")
    data_key = open_sealed(key, blob[8 : 8 + size], info=info, suite=key.suite)
    nonce, body = blob[8 + size : 8 + size + _NONCE], blob[8 + size + _NONCE :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, info.encode(key.suite))
    except InvalidTag:
        raise SealingError(
            "a secret sealed at rest does not open: edited or bound otherwise"
        ) from None
