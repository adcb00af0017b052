"""The single source of randomness for keys, flooding noise and DP noise.

Every secret draw goes through a :class:`RandomSource`. The default reads the operating system's
CSPRNG; tests pass a :class:`SeededRandom` (AES-256-CTR keystream under a seed-derived key) to make
draws reproducible. numpy's generators are never used for anything secret.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["RandomSource", "SeededRandom", "SystemRandom", "default_random"]


@runtime_checkable
class RandomSource(Protocol):
    """Anything that returns ``n`` cryptographically random bytes."""

    def bytes(self, n: int) -> bytes: ...


class SystemRandom:
    """The operating system's CSPRNG (``os.urandom``)."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class SeededRandom:
    """A deterministic CSPRNG for tests: AES-256-CTR keyed by SHA3-256(seed)."""

    def __init__(self, seed: int | bytes) -> None:
        raw = seed if isinstance(seed, bytes) else str(seed).encode()
        key = hashlib.sha3_256(b"fhe_agg/seeded-random|" + raw).digest()
        self._stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._stream.update(bytes(n))

    def __repr__(self) -> str:
        return "SeededRandom(<seed hidden>)"


_default: RandomSource = SystemRandom()


def default_random() -> RandomSource:
    """The process-wide default source (the OS CSPRNG)."""
    return _default
