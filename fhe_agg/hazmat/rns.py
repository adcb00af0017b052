"""Modular arithmetic on numpy ``uint64`` arrays for primes below 2**61.

numpy has no 128-bit integers, so products use Shoup's method (V. Shoup, NTL; see also Harvey,
"Faster arithmetic for number-theoretic transforms", 2014): for a fixed operand ``w`` precompute
``w' = floor(w * 2**64 / q)``; then ``x*w mod q = x*w - mulhi(x, w')*q`` in wrapping 64-bit
arithmetic, followed by one conditional subtraction. ``mulhi`` is built from 32-bit limbs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)

__all__ = [
    "U64",
    "add_mod",
    "mul_shoup",
    "mulhi",
    "neg_mod",
    "shoup_quotient",
    "signed_to_residues",
    "sub_mod",
]


def mulhi(a: U64, b: U64) -> U64:
    """High 64 bits of the 128-bit product of two uint64 arrays (element-wise)."""
    a0, a1 = a & _MASK32, a >> _SHIFT32
    b0, b1 = b & _MASK32, b >> _SHIFT32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> _SHIFT32) + (p01 & _MASK32) + (p10 & _MASK32)
    result: U64 = p11 + (p01 >> _SHIFT32) + (p10 >> _SHIFT32) + (mid >> _SHIFT32)
    return result


def shoup_quotient(w: U64, q: int) -> U64:
    """Precompute ``floor(w * 2**64 / q)`` for each ``w < q`` (exact, via Python integers)."""
    return np.fromiter(
        ((int(x) << 64) // q for x in w.ravel()), dtype=np.uint64, count=w.size
    ).reshape(w.shape)


def mul_shoup(x: U64, w: U64, w_quot: U64, q: int) -> U64:
    """``x * w mod q`` for ``x < 2**64``, ``w < q`` with its Shoup quotient; result in ``[0, q)``."""
    qq = np.uint64(q)
    r: U64 = x * w - mulhi(x, w_quot) * qq  # wraps mod 2**64; true value is in [0, 2q)
    r -= qq * (r >= qq)
    return r


def add_mod(a: U64, b: U64, q: int) -> U64:
    """``(a + b) mod q`` for ``a, b < q < 2**63``."""
    qq = np.uint64(q)
    s: U64 = a + b
    s -= qq * (s >= qq)
    return s


def sub_mod(a: U64, b: U64, q: int) -> U64:
    """``(a - b) mod q`` for ``a, b < q``."""
    qq = np.uint64(q)
    d: U64 = a + (qq - b)
    d -= qq * (d >= qq)
    return d


def neg_mod(a: U64, q: int) -> U64:
    """``-a mod q`` for ``a < q``."""
    qq = np.uint64(q)
    r: U64 = (qq - a) * (a != 0)
    return r


def signed_to_residues(x: NDArray[np.int64], primes: tuple[int, ...]) -> U64:
    """Reduce a signed integer polynomial modulo each prime: shape ``(len(primes), len(x))``."""
    out = np.empty((len(primes), x.size), dtype=np.uint64)
    for i, q in enumerate(primes):
        out[i] = np.mod(x, np.int64(q)).astype(np.uint64)
    return out
