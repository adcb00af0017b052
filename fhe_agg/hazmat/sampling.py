"""Samplers for RLWE secrets, errors, flooding and DP noise, driven by a :class:`RandomSource`.

* ternary secrets, uniform in {-1, 0, 1} (HE standard, ternary row);
* rounded Gaussians: Box-Muller on 53-bit uniforms from the CSPRNG, rounded to the nearest
  integer and cut at ``tail`` standard deviations (SEAL cuts key noise at 6 sigma);
* uniform residues mod q by rejection, and a SHAKE-256 expansion for the common polynomial.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from fhe_agg._random import RandomSource
from fhe_agg.hazmat.rns import U64

__all__ = ["expand_uniform", "rounded_gaussian", "ternary", "uniform_mod"]


def ternary(n: int, rng: RandomSource) -> NDArray[np.int64]:
    """``n`` coefficients uniform in {-1, 0, 1}."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(rng.bytes(2 * (n - out.size) + 16), dtype=np.uint8)
        keep = raw[raw < 255].astype(np.int64) % 3 - 1  # 255 = 3 * 85: rejection keeps it uniform
        out = np.concatenate([out, keep])
    return out[:n]


def _uniform01(n: int, rng: RandomSource) -> NDArray[np.float64]:
    """``n`` floats uniform in (0, 1] with 53 random bits each."""
    words = np.frombuffer(rng.bytes(8 * n), dtype=np.uint64) >> np.uint64(11)
    return (words.astype(np.float64) + 1.0) * 2.0**-53


def rounded_gaussian(
    n: int, sigma: float, rng: RandomSource, *, tail: float = 6.0
) -> NDArray[np.int64]:
    """``n`` integers from a centred Gaussian of standard deviation ``sigma``, rounded, cut at
    ``tail * sigma`` (values beyond are redrawn)."""
    if not sigma > 0:
        raise ValueError(f"sigma: must be positive, got {sigma}")
    if sigma * tail >= 2.0**62:
        raise ValueError(f"sigma: {sigma} too large for 64-bit noise")
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        m = n - out.size
        half = (m + 1) // 2
        u1, u2 = _uniform01(half, rng), _uniform01(half, rng)
        radius = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:m]
        z = z[np.abs(z) <= tail]
        out = np.concatenate([out, np.rint(z * sigma).astype(np.int64)])
    return out[:n]


def uniform_mod(n: int, q: int, rng: RandomSource) -> U64:
    """``n`` residues uniform in ``[0, q)`` by rejection sampling on ``q.bit_length()`` bits."""
    return _uniform_from_words(n, q, lambda count: rng.bytes(8 * count))


def expand_uniform(seed: bytes, label: bytes, n: int, q: int) -> U64:
    """Deterministically expand ``seed`` into ``n`` residues uniform mod ``q`` (SHAKE-256 XOF).

    Used for the common polynomial ``a`` of the key ceremony: everyone expands the same seed.
    """
    shake = hashlib.shake_256(b"fhe_agg/expand|" + label + b"|" + seed)
    consumed = 0

    def draw(count: int) -> bytes:
        nonlocal consumed
        data = shake.digest(consumed + 8 * count)[consumed:]
        consumed += 8 * count
        return data

    return _uniform_from_words(n, q, draw)


def _uniform_from_words(n: int, q: int, draw: Callable[[int], bytes]) -> U64:
    mask = np.uint64((1 << q.bit_length()) - 1)
    out = np.empty(0, dtype=np.uint64)
    while out.size < n:
        want = 2 * (n - out.size) + 64
        words = np.frombuffer(draw(want), dtype="<u8").astype(np.uint64) & mask
        out = np.concatenate([out, words[words < np.uint64(q)]])
    return out[:n]
