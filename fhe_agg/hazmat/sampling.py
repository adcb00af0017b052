"""Samplers for RLWE secrets, errors, flooding and DP noise, driven by a :class:`RandomSource`.

* ternary secrets, uniform in {-1, 0, 1} (HE standard, ternary row);
* rounded Gaussians: Box-Muller on 53-bit uniforms from the CSPRNG, rounded to the nearest
  integer and cut at ``tail`` standard deviations (SEAL cuts key noise at 6 sigma);
* flooding noise too wide for int64 (:func:`flooding_gaussian`): a coarse rounded Gaussian times a
  power-of-two ``step`` plus a uniform offset within the step, its radius drawn at 2**-106
  resolution so it can reach its 12-sigma cut;
* uniform residues mod q by rejection, and a SHAKE-256 expansion for the common polynomial.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fhe_agg._random import RandomSource
from fhe_agg.hazmat.rns import U64

__all__ = [
    "EXACT_SIGMA_BITS",
    "FLOODING_TAIL",
    "WideNoise",
    "expand_uniform",
    "flooding_gaussian",
    "flooding_step",
    "rounded_gaussian",
    "ternary",
    "uniform_mod",
]

#: A Gaussian of standard deviation up to ``2**EXACT_SIGMA_BITS`` is drawn directly: ``12 sigma``
#: stays below ``2**49``, where a float64 still resolves fractions of an integer.
EXACT_SIGMA_BITS = 45

#: Flooding noise is cut at this many standard deviations (``P[|Z| > 12] < 2**-107``).
FLOODING_TAIL = 12.0


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


def flooding_step(sigma: float) -> int:
    """The power of two ``step`` with ``sigma / step <= 2**EXACT_SIGMA_BITS`` (1 up to there)."""
    if not sigma > 0:
        raise ValueError(f"sigma: must be positive, got {sigma}")
    if sigma <= 2.0**EXACT_SIGMA_BITS:
        return 1
    return 1 << (math.ceil(math.log2(sigma)) - EXACT_SIGMA_BITS)


@dataclass(frozen=True, eq=False, repr=False)
class WideNoise:
    """Integers ``step * high + low`` too wide for int64 (``high``, ``low`` of one shape)."""

    high: NDArray[np.int64]
    low: NDArray[np.int64]
    step: int

    def reshape(self, *shape: int) -> WideNoise:
        return WideNoise(self.high.reshape(shape), self.low.reshape(shape), self.step)

    def __repr__(self) -> str:
        return f"WideNoise(shape={self.high.shape}, step={self.step})"


def _fine_radius(n: int, rng: RandomSource) -> NDArray[np.float64]:
    """Box–Muller radii ``sqrt(-2 ln u)`` with ``u`` uniform on (0, 1] at resolution 2**-106
    (two 53-bit words), so radii reach 12.1 rather than the 8.6 of a 53-bit ``u``."""
    hi = np.frombuffer(rng.bytes(8 * n), dtype=np.uint64) >> np.uint64(11)
    lo = np.frombuffer(rng.bytes(8 * n), dtype=np.uint64) >> np.uint64(11)
    u = hi.astype(np.float64) * 2.0**-53 + (lo.astype(np.float64) + 1.0) * 2.0**-106
    radius: NDArray[np.float64] = np.sqrt(-2.0 * np.log(u))
    return radius


def flooding_gaussian(n: int, sigma: float, rng: RandomSource) -> WideNoise:
    """``n`` draws of ``step * round(sigma / step * z) + v``, ``z`` standard normal cut at
    :data:`FLOODING_TAIL`, ``v`` uniform on ``[-step/2, step/2)``, ``step = flooding_step(sigma)``.

    For ``step = 1`` this is a rounded Gaussian of standard deviation ``sigma``. Shifting it by an
    integer ``x`` moves the coarse Gaussian by ``floor`` or ``ceil`` of ``x / step`` cells, so its
    KL divergence is at most that of a shift by ``|x| + step`` (:mod:`fhe_agg._flooding`).
    """
    step = flooding_step(sigma)
    coarse = sigma / step
    high = np.empty(0, dtype=np.int64)
    while high.size < n:
        m = n - high.size
        half = (m + 1) // 2
        radius, angle = _fine_radius(half, rng), 2 * np.pi * _uniform01(half, rng)
        z = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:m]
        z = z[np.abs(z) <= FLOODING_TAIL]
        high = np.concatenate([high, np.rint(z * coarse).astype(np.int64)])
    if step == 1:
        return WideNoise(high, np.zeros(n, dtype=np.int64), 1)
    words = np.frombuffer(rng.bytes(8 * n), dtype=np.uint64) & np.uint64(step - 1)
    return WideNoise(high, words.astype(np.int64) - step // 2, step)


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
