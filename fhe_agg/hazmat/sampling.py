"""Samplers for RLWE secrets, errors, flooding and DP noise, driven by a :class:`RandomSource`.

* ternary secrets, uniform in {-1, 0, 1} (HE standard, ternary row);
* rounded Gaussians: Box-Muller on uniforms from the CSPRNG, rounded to the nearest integer and
  cut at ``tail`` standard deviations: :data:`NOISE_TAIL` (14) for flooding and DP noise, 6 for
  RLWE key errors (as SEAL);
* flooding noise wider than ``2**45`` (:func:`flooding_gaussian`): a coarse rounded Gaussian times
  a power-of-two ``step`` plus a uniform offset within the step (int64 cannot hold it);
* uniform residues mod q by rejection, and a SHAKE-256 expansion for the common polynomial.

The cut of DP noise is part of the privacy accounting. A draw beyond ``tail`` is redrawn, so
each coordinate follows the Gaussian conditioned on ``|Z| <= tail``, at total-variation
distance ``P(|Z| > tail) = erfc(tail / sqrt 2)`` (:func:`tail_mass`) from the untruncated one;
:mod:`fhe_agg.ckks._dp` adds what that costs to ``delta``. At 6 sigma that was 2.0e-9 per
coordinate, ``P(Z in [6 - 1/z, 6])`` per release for one honest holder (3.2e-5 at z = 0.5),
more than a typical ``delta``; at 14 it is 1.6e-44. Box-Muller's radius
``sqrt(-2 ln u1)`` only reaches 14 sigma if ``u1`` can be as small as ``e**-98``: a 53-bit
uniform stops at 8.6 sigma, so ``u1`` is refined to 159 bits below ``2**-53``
(:data:`MAX_RADIUS` = 14.85 sigma).

A draw of at least :data:`EXPAND_MIN` Gaussians reads a fresh 32-byte key from the caller's
:class:`RandomSource` and takes its uniforms from the AES-256-CTR keystream under that key (zero
nonce: the key is used for this one draw only). Against any efficient observer the output is
indistinguishable from one made directly from the source, with advantage at most AES-256's PRP
advantage plus the PRP/PRF switching term ``B**2 / 2**129`` for ``B`` keystream blocks (below
``2**-80`` for a draw of ``2**24`` samples); the OS CSPRNG itself is built the same way. It
makes the sampler read the OS CSPRNG for 32 bytes instead of 16 per pair of samples, which was
half of the sampler's time (``os.urandom`` reads about 150 MB/s here, AES-CTR 2 GB/s).
After numpy's vectorised ``log``/``cos``/``sin``, the cut and the rounding run compiled
where :mod:`._accel` allows it (the same draws to the bit).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from fhe_agg.ckks._random import RandomSource
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.rns import U64

__all__ = [
    "EXACT_SIGMA_BITS",
    "EXPAND_MIN",
    "KEY_ERROR_TAIL",
    "MAX_RADIUS",
    "NOISE_TAIL",
    "WideNoise",
    "expand_uniform",
    "flooding_gaussian",
    "flooding_step",
    "rounded_gaussian",
    "tail_mass",
    "ternary",
    "uniform_mod",
]

#: A Gaussian of standard deviation up to ``2**EXACT_SIGMA_BITS`` is drawn directly: its
#: :data:`MAX_RADIUS` tail stays below ``2**49``, where a float64 resolves fractions of an integer.
EXACT_SIGMA_BITS = 45

#: Flooding and DP noise is cut (redrawn) beyond this many standard deviations.
NOISE_TAIL = 14.0
#: RLWE key errors are cut at 6 standard deviations, as SEAL's sampler does.
KEY_ERROR_TAIL = 6.0
_RADIUS_BITS = 159  # u1 > 0 on a 2**-159 grid below 2**-53 (three 53-bit words)
#: The largest ``|z|`` the sampler can produce: ``sqrt(2 * 159 * ln 2)``, about 14.85.
MAX_RADIUS = math.sqrt(2.0 * _RADIUS_BITS * math.log(2.0))
_WORD = 2.0**-53
#: :func:`rounded_gaussian` draws of this many samples or more expand a 32-byte key (module doc).
EXPAND_MIN = 1024


class _Expanded:
    """The AES-256-CTR keystream under a key read from ``rng`` (one draw's source)."""

    def __init__(self, rng: RandomSource) -> None:
        key = rng.bytes(32)
        self._stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._stream.update(bytes(n))

    def __repr__(self) -> str:
        return "_Expanded(<key hidden>)"


def tail_mass(tail: float) -> float:
    """``P(|Z| > tail)`` for a standard normal ``Z``: the chance one draw is redrawn, and the
    total-variation distance of the cut Gaussian from the uncut one."""
    return math.erfc(tail / math.sqrt(2.0))


def ternary(n: int, rng: RandomSource) -> NDArray[np.int64]:
    """``n`` coefficients uniform in {-1, 0, 1}."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(rng.bytes(2 * (n - out.size) + 16), dtype=np.uint8)
        keep = raw[raw < 255].astype(np.int64) % 3 - 1  # 255 = 3 * 85: rejection keeps it uniform
        out = np.concatenate([out, keep])
    return out[:n]


def _words(n: int, rng: RandomSource) -> NDArray[np.uint64]:
    return np.frombuffer(rng.bytes(8 * n), dtype=np.uint64) >> np.uint64(11)


def _uniform01(n: int, rng: RandomSource) -> NDArray[np.float64]:
    """``n`` floats uniform in (0, 1] with 53 random bits each."""
    return (_words(n, rng).astype(np.float64) + 1.0) * _WORD


def _radius_uniform(n: int, rng: RandomSource) -> NDArray[np.float64]:
    """``n`` floats in (0, 1]: ``ceil(U * 2**53) / 2**53`` for a uniform ``U``, refined to a
    ``2**-159`` grid where that would be the smallest value ``2**-53`` (probability ``2**-53``
    per draw, two more words then), so ``sqrt(-2 ln u)`` reaches :data:`MAX_RADIUS`."""
    words = _words(n, rng)
    out = (words.astype(np.float64) + 1.0) * _WORD
    low = np.flatnonzero(words == 0)
    if low.size:
        w1 = _words(low.size, rng).astype(np.float64)
        w2 = _words(low.size, rng).astype(np.float64)
        out[low] = ((w2 + 1.0) * _WORD + w1) * _WORD * _WORD
    return out


def rounded_gaussian(
    n: int, sigma: float, rng: RandomSource, *, tail: float = NOISE_TAIL
) -> NDArray[np.int64]:
    """``n`` integers from a centred Gaussian of standard deviation ``sigma``, rounded, cut at
    ``tail * sigma`` (values beyond are redrawn; ``tail`` at most :data:`MAX_RADIUS`).

    The default :data:`NOISE_TAIL` is what the DP accounting assumes (:func:`tail_mass`);
    RLWE key errors pass :data:`KEY_ERROR_TAIL`."""
    if not sigma > 0:
        raise ValueError(f"sigma: must be positive, got {sigma}")
    if not 0 < tail <= MAX_RADIUS:
        raise ValueError(f"tail: must lie in (0, {MAX_RADIUS:.2f}] standard deviations")
    if sigma * tail >= 2.0**62:
        raise ValueError(f"sigma: {sigma} too large for 64-bit noise")
    source = _Expanded(rng) if n >= EXPAND_MIN else rng
    kernels = _accel.kernels(n)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        m = n - filled
        half = (m + 1) // 2
        u1 = _radius_uniform(half, source)
        u2 = _uniform01(half, source)
        radius = np.sqrt(-2.0 * np.log(u1))
        if kernels is not None:
            angle = 2 * np.pi * u2
            filled = kernels.gaussian_pairs(
                radius, np.cos(angle), np.sin(angle), m, float(sigma), float(tail), out, filled
            )
            continue
        z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:m]
        z = z[np.abs(z) <= tail]
        out[filled : filled + z.size] = np.rint(z * sigma).astype(np.int64)
        filled += z.size
    return out


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


def flooding_gaussian(n: int, sigma: float, rng: RandomSource) -> WideNoise:
    """``n`` draws of ``step * round(sigma / step * z) + v``, ``z`` standard normal cut at
    :data:`NOISE_TAIL`, ``v`` uniform on ``[-step/2, step/2)``, ``step = flooding_step(sigma)``.

    For ``step = 1`` this is a rounded Gaussian of standard deviation ``sigma``. Shifting it by an
    integer ``x`` moves the coarse Gaussian by ``floor`` or ``ceil`` of ``x / step`` cells, so its
    KL divergence is at most that of a shift by ``|x| + step`` (:mod:`fhe_agg.ckks._flooding`).
    """
    step = flooding_step(sigma)
    high = rounded_gaussian(n, sigma / step, rng)
    if step == 1:
        return WideNoise(high, np.zeros(n, dtype=np.int64), 1)
    # as the Gaussian's draws, large ones from AES-256-CTR under a fresh key from ``rng``: the OS
    # CSPRNG's syscall delivers ~0.4 GB/s here, and this is 8 bytes per flooded coefficient
    source = _Expanded(rng) if n >= EXPAND_MIN else rng
    words = np.frombuffer(source.bytes(8 * n), dtype=np.uint64) & np.uint64(step - 1)
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
