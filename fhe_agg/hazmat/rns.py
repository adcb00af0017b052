"""Modular arithmetic on numpy ``uint64`` arrays for primes below 2**61.

numpy has no 128-bit integers, so products use Shoup's method (V. Shoup, NTL; see also Harvey,
"Faster arithmetic for number-theoretic transforms", 2014): for a fixed operand ``w`` precompute
``w' = floor(w * 2**64 / q)``; then ``x*w mod q = x*w - hi(x*w')*q`` in wrapping 64-bit
arithmetic, where ``hi`` is the high 64-bit word of the 128-bit product, followed by one
conditional subtraction.

The high word is built from 32-bit limbs, cheaply (:func:`mulhi_lazy`: three limb products, no
carry word): it may fall short by up to 2, so the Shoup remainder is in ``[0, 4q)`` instead of
``[0, 2q)``, which still fits 64 bits for ``q < 2**62`` and costs one more conditional
subtraction. Results are exact residues.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fhe_agg.hazmat import _accel

U64 = NDArray[np.uint64]

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)

__all__ = [
    "U64",
    "add_mod",
    "csub",
    "mul_shoup",
    "mul_shoup_lazy",
    "mulhi_lazy",
    "neg_mod",
    "shoup_quotient",
    "signed_to_residues",
    "split32",
    "sub_mod",
]


def csub(x: U64, bound: int) -> U64:
    """``x - bound`` where ``x >= bound``, in place, for ``x < 2 * bound <= 2**64``.

    Branch-free: where ``x < bound`` the difference wraps to above ``x`` and ``minimum`` keeps
    ``x`` (several times faster in numpy than a masked subtraction).
    """
    np.minimum(x, x - np.uint64(bound), out=x)
    return x


def split32(b: U64) -> tuple[U64, U64]:
    """Low and high 32-bit limbs of ``b`` (precompute them for a fixed operand)."""
    return b & _MASK32, b >> _SHIFT32


def mulhi_lazy(a: U64, b_lo: U64, b_hi: U64) -> U64:
    """The high word of ``a * b`` minus some ``d`` in {0, 1, 2}, from the limbs of ``b``.

    With ``a = a1*2**32 + a0`` and ``b = b1*2**32 + b0``, the high word is
    ``a1*b1 + floor(a0*b1 / 2**32) + floor(a1*b0 / 2**32)`` plus the carry of the dropped low
    parts, which is below 3; it never exceeds the exact value, so nothing overflows.
    """
    a0, a1 = a & _MASK32, a >> _SHIFT32
    hi: U64 = a1 * b_hi
    t = a0 * b_hi
    t >>= _SHIFT32
    hi += t
    t = a1 * b_lo
    t >>= _SHIFT32
    hi += t
    return hi


def mul_shoup_lazy(x: U64, w: U64, w_quot_lo: U64, w_quot_hi: U64, q: int) -> U64:
    """A representative of ``x * w mod q`` in ``[0, 2q)`` for any ``x < 2**64`` and ``q < 2**62``.

    The Shoup remainder with :func:`mulhi_lazy` lies in ``[0, 4q)``; one conditional
    subtraction of ``2q`` brings it to ``[0, 2q)`` (Harvey's lazy butterflies keep that range).
    """
    r: U64 = x * w
    r -= mulhi_lazy(x, w_quot_lo, w_quot_hi) * np.uint64(q)
    return csub(r, 2 * q)


def shoup_quotient(w: U64, q: int) -> U64:
    """Precompute ``floor(w * 2**64 / q)`` for each ``w < q`` (exact, via Python integers)."""
    return np.fromiter(
        ((int(x) << 64) // q for x in w.ravel()), dtype=np.uint64, count=w.size
    ).reshape(w.shape)


def mul_shoup(x: U64, w: U64, w_quot: U64, q: int) -> U64:
    """``x * w mod q`` for ``x < 2**64``, ``w < q`` with its Shoup quotient; result in ``[0, q)``."""
    kernels = _accel.kernels(x.size)
    if kernels is not None and (w.size == 1 or w.shape == x.shape) and w_quot.shape == w.shape:
        flat = np.ascontiguousarray(x, dtype=np.uint64).ravel()
        out = np.empty_like(flat)
        quot_lo, quot_hi = split32(np.ascontiguousarray(w_quot, dtype=np.uint64).ravel())
        kernels.mul_shoup_flat(
            flat,
            np.ascontiguousarray(w, dtype=np.uint64).ravel(),
            quot_lo,
            quot_hi,
            np.uint64(q),
            out,
        )
        result: U64 = out.reshape(np.shape(x))
        return result
    return csub(mul_shoup_lazy(x, w, *split32(w_quot), q), q)


def add_mod(a: U64, b: U64, q: int) -> U64:
    """``(a + b) mod q`` for ``a, b < q < 2**63``."""
    return csub(a + b, q)


def sub_mod(a: U64, b: U64, q: int) -> U64:
    """``(a - b) mod q`` for ``a, b < q``."""
    return csub(a + (np.uint64(q) - b), q)


def neg_mod(a: U64, q: int) -> U64:
    """``-a mod q`` for ``a < q``."""
    qq = np.uint64(q)
    r: U64 = (qq - a) * (a != 0)
    return r


def signed_to_residues(x: NDArray[np.int64], primes: tuple[int, ...]) -> U64:
    """Reduce signed integers (e.g. polynomials ``x[..., n]``) modulo each prime: shape
    ``(len(primes), *x.shape)``."""
    out = np.empty((len(primes), *x.shape), dtype=np.uint64)
    for i, q in enumerate(primes):
        out[i] = np.mod(x, np.int64(q))
    return out
