"""The single source of randomness for keys, flooding noise and DP noise.

Every secret draw goes through a :class:`RandomSource`. The default reads the operating system's
CSPRNG; tests pass a :class:`SeededRandom` (AES-256-CTR keystream under a seed-derived key) to make
draws reproducible. numpy's generators are never used for anything secret.

Key material (CKKS secrets, Shamir coefficients, HPKE and signing keys) refuses a
:class:`SeededRandom` (:func:`key_random`): a key derived from a small seed copied out of a test
is no key. The test suite and the fuzzing harness set the environment variable
``FHE_AGG_TEST_ONLY_SEEDED_KEYS=1`` to allow it; no fhe_agg code sets it, and a deployment must
not. Noise and data may still come from a seeded source (simulations, benchmarks).
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "TEST_ONLY_SEEDED_KEYS",
    "RandomSource",
    "SeededRandom",
    "SystemRandom",
    "default_random",
    "key_random",
]

#: Environment variable that lets :class:`SeededRandom` make key material (tests only).
TEST_ONLY_SEEDED_KEYS = "FHE_AGG_TEST_ONLY_SEEDED_KEYS"


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
    """A deterministic CSPRNG for tests: AES-256-CTR keyed by SHA3-256(seed).

    Refused for key material unless ``FHE_AGG_TEST_ONLY_SEEDED_KEYS=1`` (see the module doc)."""

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


def key_random(rng: RandomSource | None, what: str) -> RandomSource:
    """The source to draw ``what`` (key material) from: ``rng``, or the default if ``None``.

    Raises ``ValueError`` naming ``rng`` for a :class:`SeededRandom` unless the environment
    variable ``FHE_AGG_TEST_ONLY_SEEDED_KEYS`` is ``1`` (set by the test suite only).
    """
    if rng is None:
        return default_random()
    if isinstance(rng, SeededRandom) and os.environ.get(TEST_ONLY_SEEDED_KEYS) != "1":
        raise ValueError(
            f"rng: SeededRandom is deterministic and is refused for {what}, which must come "
            "from the OS CSPRNG (pass no rng, or SystemRandom()); tests set "
            f"{TEST_ONLY_SEEDED_KEYS}=1 to allow it"
        )
    return rng
