"""numba-compiled loops behind :mod:`fhe_agg.hazmat._accel`; imported only on first use.

Each kernel computes exactly what its pure-numpy counterpart computes (the tests compare them bit
for bit): the NTT and the Shoup products end fully reduced in ``[0, q)``, where representatives
are unique, so the exact 128-bit high word used here (Harvey's remainder in ``[0, 2q)``) and the
lazy 32-bit-limb one of :mod:`.rns` (``[0, 4q)``, one more conditional subtraction) agree.

Compiled lazily, one function at its first call, and cached on disk (``cache=True``: numba's
``__pycache__`` beside this file, else its per-user cache directory); where no cache location is
writable a function is compiled in memory on every run instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "add_mod_rows",
    "gaussian_pairs",
    "mul_shoup_flat",
    "mul_shoup_rows",
    "ntt_forward_rows",
    "ntt_forward_signed",
    "pack_bits",
    "unpack_bits",
]


def _jit(fn: Callable[..., Any]) -> Any:
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location: compile in memory
        return njit(cache=False, nogil=True)(fn)


def _mulhi_typing(typingctx: Any, a: Any, b: Any) -> Any:
    """The high 64-bit word of the 128-bit product ``a * b`` (one ``mul`` on x86-64)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))

    return sig, codegen


_mulhi: Any = intrinsic(_mulhi_typing)


@_jit
def _forward_row(a: Any, powers: Any, quot: Any, q: Any) -> None:
    """In place: Harvey's lazy forward butterflies over one row, then reduction to ``[0, q)``."""
    n = a.size
    two_q = q + q
    m, gap = 1, n >> 1
    while m < n:
        for i in range(m):
            w, wq = powers[m + i], quot[m + i]
            start = 2 * i * gap
            for j in range(start, start + gap):
                x = a[j]
                if x >= two_q:
                    x -= two_q
                y = a[j + gap]
                t = y * w - _mulhi(y, wq) * q  # exact Shoup remainder: [0, 2q)
                a[j] = x + t
                a[j + gap] = x - t + two_q
        m, gap = m << 1, gap >> 1
    for j in range(n):
        x = a[j]
        if x >= two_q:
            x -= two_q
        if x >= q:
            x -= q
        a[j] = x


@_jit
def ntt_forward_rows(rows: Any, powers: Any, quot: Any, q: Any) -> None:
    """In place: the forward NTT of every row of ``rows[k, n]`` (residues in ``[0, q)``)."""
    for r in range(rows.shape[0]):
        _forward_row(rows[r], powers, quot, q)


@_jit
def ntt_forward_signed(coeffs: Any, primes: Any, powers: Any, quot: Any, out: Any) -> None:
    """``out[k, i, :]`` = NTT of signed ``coeffs[k, :]`` reduced mod ``primes[i]`` (tables
    ``powers[i]``, ``quot[i]``)."""
    n = coeffs.shape[1]
    for k in range(coeffs.shape[0]):
        for i in range(primes.size):
            q = primes[i]
            qi = np.int64(q)
            row = out[k, i]
            for j in range(n):
                x = coeffs[k, j] % qi
                if x < 0:
                    x += qi
                row[j] = np.uint64(x)
            _forward_row(row, powers[i], quot[i], q)


@_jit
def mul_shoup_rows(x: Any, w: Any, w_quot: Any, primes: Any, out: Any) -> None:
    """``out[k, i, :] = x[k, i, :] * w[i, :] mod primes[i]`` (Shoup quotients ``w_quot``)."""
    for k in range(x.shape[0]):
        for i in range(primes.size):
            q = primes[i]
            for j in range(x.shape[2]):
                y, c = x[k, i, j], w[i, j]
                r = y * c - _mulhi(y, w_quot[i, j]) * q  # [0, 2q)
                if r >= q:
                    r -= q
                out[k, i, j] = r


@_jit
def mul_shoup_flat(x: Any, w: Any, w_quot: Any, q: Any, out: Any) -> None:
    """``out = x * w mod q`` elementwise (``w``, ``w_quot`` of ``x``'s size, or of size 1)."""
    one = w.size == 1
    for j in range(x.size):
        c, cq = (w[0], w_quot[0]) if one else (w[j], w_quot[j])
        y = x[j]
        r = y * c - _mulhi(y, cq) * q  # [0, 2q)
        if r >= q:
            r -= q
        out[j] = r


@_jit
def add_mod_rows(a: Any, b: Any, primes: Any, out: Any) -> None:
    """``out[k, i, :] = a[k, i, :] + b[k, i, :] mod primes[i]`` for reduced inputs."""
    for k in range(a.shape[0]):
        for i in range(primes.size):
            q = primes[i]
            for j in range(a.shape[2]):
                r = a[k, i, j] + b[k, i, j]
                if r >= q:
                    r -= q
                out[k, i, j] = r


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
