"""numba-compiled loops behind :mod:`fhe_agg.hazmat._accel`; imported only on first use.

Each kernel computes exactly what its pure-numpy counterpart computes (the tests compare them bit
for bit), with the same arithmetic: Shoup products whose high word comes from 32-bit limbs
(:func:`fhe_agg.hazmat.rns.mulhi_lazy`: remainder in ``[0, 4q)``), Harvey's lazy butterflies, and
conditional subtractions as ``min(x, x - b)``. Written per element over contiguous slices, so
LLVM vectorises the butterflies and products (AVX2/AVX-512: 2x the scalar 128-bit product). The
NTT kernels live in :mod:`._kernels_ntt` and are re-exported here.

Compiled lazily, one function at its first call, and cached on disk (``cache=True``: numba's
``__pycache__`` beside this file, else its per-user cache directory); where no cache location is
writable a function is compiled in memory on every run instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from fhe_agg.hazmat._kernels_ntt import (
    _jit,
    _shoup,
    encrypt_rows,
    ntt_forward_rows,
    ntt_forward_signed,
    ntt_forward_wide,
    ntt_mul_add,
)

__all__ = [
    "add_mod_rows",
    "binary_combination",
    "combine_rows",
    "encrypt_rows",
    "gaussian_pairs",
    "mul_shoup_flat",
    "mul_shoup_rows",
    "ntt_forward_rows",
    "ntt_forward_signed",
    "ntt_forward_wide",
    "ntt_mul_add",
    "pack_bits",
    "unpack_bits",
]


@_jit
def mul_shoup_rows(x: Any, w: Any, w_lo: Any, w_hi: Any, primes: Any, out: Any) -> None:
    """``out[k, i, :] = x[k, i, :] * w[i, :] mod primes[i]`` (Shoup quotient limbs)."""
    for k in range(x.shape[0]):
        for i in range(primes.size):
            q = primes[i]
            two_q = q + q
            xs, ws, lo, hi, res = x[k, i], w[i], w_lo[i], w_hi[i], out[k, i]
            for j in range(xs.size):
                r = _shoup(xs[j], ws[j], lo[j], hi[j], q)
                r = min(r, r - two_q)
                res[j] = min(r, r - q)


@_jit
def mul_shoup_flat(x: Any, w: Any, w_lo: Any, w_hi: Any, q: Any, out: Any) -> None:
    """``out = x * w mod q`` elementwise (``w`` and its quotient limbs of ``x``'s size, or of
    size 1)."""
    two_q = q + q
    if w.size == 1:
        c, c_lo, c_hi = w[0], w_lo[0], w_hi[0]
        for j in range(x.size):
            r = _shoup(x[j], c, c_lo, c_hi, q)
            r = min(r, r - two_q)
            out[j] = min(r, r - q)
    else:
        for j in range(x.size):
            r = _shoup(x[j], w[j], w_lo[j], w_hi[j], q)
            r = min(r, r - two_q)
            out[j] = min(r, r - q)


@_jit
def add_mod_rows(a: Any, b: Any, primes: Any, out: Any) -> None:
    """``out[k, i, :] = a[k, i, :] + b[k, i, :] mod primes[i]`` for reduced inputs."""
    for k in range(a.shape[0]):
        for i in range(primes.size):
            q = primes[i]
            xs, ys, res = a[k, i], b[k, i], out[k, i]
            for j in range(xs.size):
                r = xs[j] + ys[j]
                res[j] = min(r, r - q)


_GROUP = 4  # chunks per table of subset sums (16 entries)
_BLOCK = 64  # coefficients per block: the tables of 128 chunks take 256 KiB, within L2
_WIDE = 128  # int32 coefficients per block of binary_combination (its tables take 256 KiB)


@_jit
def _subset_index(w: Any, groups: int) -> Any:
    """For each row of ``w`` and each group of :data:`_GROUP` chunks, the bit mask of the chunks
    the row selects: the entry of the group's subset-sum table that row adds."""
    rows, chunks = w.shape
    index = np.zeros((rows, groups), dtype=np.int64)
    for j in range(rows):
        for k in range(chunks):
            if w[j, k]:
                index[j, k // _GROUP] |= 1 << (k % _GROUP)
    return index


@_jit
def combine_rows(w: Any, c1: Any, primes: Any, out: Any, subtract: Any) -> None:
    """``out[j, i, :] = sum over k with w[j, k] = 1 of c1[k, i, :] mod primes[i]`` for reduced
    ``c1``, or with ``subtract`` ``out[j, i, :] - that sum mod primes[i]`` (``out`` reduced).

    Method of the four Russians: per block of coefficients, the chunks in groups of 4 and each
    group's 16 subset sums tabulated (15 modular additions), so that a row adds one table entry
    per group (``V / 4`` additions instead of about ``V / 2``). Lazy reduction: from a reduced
    start, ``lazy = min(15, floor(2**64 / q) - 1)`` additions of reduced entries keep the sum
    below ``(lazy + 1) q <= 2**64``, then conditional subtractions of ``8q, 4q, 2q, q`` (those
    ``<= lazy q``) bring it back to ``[0, q)``."""
    rows, chunks = w.shape
    n = c1.shape[2]
    groups = (chunks + _GROUP - 1) // _GROUP
    index = _subset_index(w, groups)
    table = np.zeros((groups, 1 << _GROUP, _BLOCK), dtype=np.uint64)
    acc = np.empty(_BLOCK, dtype=np.uint64)
    for i in range(primes.size):
        q = primes[i]
        lazy = min(15, np.uint64(0xFFFFFFFFFFFFFFFF) // q - 1)
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            size = stop - start
            for g in range(groups):
                for m in range(1, 1 << _GROUP):
                    low = m & -m
                    k = g * _GROUP + _LOW_BIT[low]
                    prev, dst = table[g, m ^ low], table[g, m]
                    if k < chunks:  # else no row selects m (index has no such bit)
                        src = c1[k, i, start:stop]
                        for t in range(size):
                            r = prev[t] + src[t]
                            dst[t] = min(r, r - q)
            for j in range(rows):
                acc[:size] = 0
                pending = 0
                for g in range(groups):
                    m = index[j, g]
                    if m:
                        src = table[g, m]
                        for t in range(size):
                            acc[t] += src[t]
                        pending += 1
                        if pending == lazy:
                            _reduce_lazy(acc, size, q, lazy)
                            pending = 0
                _reduce_lazy(acc, size, q, pending)
                dst = out[j, i, start:stop]
                if subtract:
                    for t in range(size):
                        r = dst[t] + (q - acc[t])
                        dst[t] = min(r, r - q)
                else:
                    dst[:] = acc[:size]


@_jit
def binary_combination(w: Any, x: Any, out: Any) -> None:
    """``out[j, :] = sum over k with w[j, k] != 0 of x[k, :]`` for int32 ``x`` whose sums stay
    int32 (the caller bounds them), written as int64: :func:`combine_rows`' subset-sum tables
    without the modular reduction, on blocks of :data:`_WIDE` int32 coefficients (7.5 ms against
    float32 BLAS's 17 for the 192 x 123 x 8192 products of a 1e6-parameter proof)."""
    rows, chunks = w.shape
    n = x.shape[1]
    groups = (chunks + _GROUP - 1) // _GROUP
    index = _subset_index(w, groups)
    table = np.zeros((groups, 1 << _GROUP, _WIDE), dtype=np.int32)
    acc = np.empty(_WIDE, dtype=np.int32)
    for start in range(0, n, _WIDE):
        size = min(start + _WIDE, n) - start
        for g in range(groups):
            for m in range(1, 1 << _GROUP):
                low = m & -m
                k = g * _GROUP + _LOW_BIT[low]
                if k < chunks:  # else no row selects m
                    prev, dst, src = table[g, m ^ low], table[g, m], x[k, start : start + size]
                    for t in range(size):
                        dst[t] = prev[t] + src[t]
        for j in range(rows):
            acc[:size] = 0
            for g in range(groups):
                if index[j, g]:
                    src = table[g, index[j, g]]
                    for t in range(size):
                        acc[t] += src[t]
            dst64 = out[j, start : start + size]
            for t in range(size):
                dst64[t] = acc[t]


_LOW_BIT = np.array([0, 0, 1, 0, 2, 0, 0, 0, 3], dtype=np.int64)  # log2 of 1, 2, 4, 8


@njit(inline="always")
def _reduce_lazy(acc: Any, size: Any, q: Any, terms: Any) -> None:
    """``acc[:size]`` below ``(terms + 1) q`` (``terms <= 15``) to ``[0, q)``: a conditional
    subtraction of ``s q`` for each power of two ``s <= terms``, largest first."""
    s = 8
    while s >= 1:
        if s <= terms:
            step = np.uint64(s) * q
            for t in range(size):
                x = acc[t]
                acc[t] = min(x, x - step)
        s >>= 1


@_jit
def pack_bits(values: Any, width: Any, out: Any) -> None:
    """OR ``values`` (each below ``2**width``) into ``out`` as one little-endian bit stream of
    ``width`` bits each (``out`` zeroed by the caller)."""
    bit = 0
    for k in range(values.size):
        word, low = bit >> 6, bit & 63
        v = values[k]
        out[word] |= v << np.uint64(low)
        if low + width > 64:
            out[word + 1] |= v >> np.uint64(64 - low)
        bit += width


@_jit
def unpack_bits(words: Any, width: Any, out: Any) -> None:
    """Read ``out.size`` values of ``width`` bits from the little-endian bit stream ``words``."""
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - width)
    bit = 0
    for k in range(out.size):
        word, low = bit >> 6, bit & 63
        v = words[word] >> np.uint64(low)
        if low + width > 64:
            v |= words[word + 1] << np.uint64(64 - low)
        out[k] = v & mask
        bit += width


@_jit
def gaussian_pairs(
    radius: Any, cos: Any, sin: Any, m: Any, sigma: Any, tail: Any, out: Any, start: Any
) -> Any:
    """Box-Muller's ``z = radius * cos`` for every pair, then ``radius * sin``, the first ``m``
    of that sequence; each ``z`` with ``|z| <= tail`` is written as ``rint(z * sigma)`` (half to
    even) to ``out[start:]``. Returns the new end. The transcendental functions stay in numpy
    (vectorised, and the same as the numpy path's); this fuses the rest."""
    half = radius.size
    end = start
    for k in range(min(m, 2 * half)):
        z = radius[k] * cos[k] if k < half else radius[k - half] * sin[k - half]
        if abs(z) <= tail and end < out.size:
            out[end] = np.int64(np.rint(z * sigma))
            end += 1
    return end
