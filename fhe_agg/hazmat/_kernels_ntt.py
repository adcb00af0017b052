"""numba-compiled NTT kernels (forward transforms, and the products and encryption built on
them) behind :mod:`fhe_agg.hazmat._accel`, re-exported by :mod:`fhe_agg.hazmat._kernels`; the
same bits as their pure-numpy counterparts (``tests/test_kernels.py``).

Shoup products whose high word comes from 32-bit limbs (:func:`fhe_agg.hazmat.rns.mulhi_lazy`:
remainder in ``[0, 4q)``), Harvey's lazy butterflies, and conditional subtractions as
``min(x, x - b)``, written per element over contiguous slices so that LLVM vectorises them.
Twiddle tables come in :func:`fhe_agg.hazmat.ntt.kernel_twiddle_order`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "encrypt_rows",
    "ntt_forward_rows",
    "ntt_forward_signed",
    "ntt_forward_wide",
    "ntt_mul_add",
]

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _jit(fn: Callable[..., Any]) -> Any:
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location: compile in memory
        return njit(cache=False, nogil=True)(fn)


@njit(inline="always")
def _shoup(y: Any, w: Any, w_lo: Any, w_hi: Any, q: Any) -> Any:
    """``y * w - hi * q`` in ``[0, 4q)`` with :func:`~fhe_agg.hazmat.rns.mulhi_lazy`'s ``hi``."""
    y0, y1 = y & _M32, y >> _S32
    hi = y1 * w_hi + ((y0 * w_hi) >> _S32) + ((y1 * w_lo) >> _S32)
    return y * w - hi * q


@njit(inline="always")
def _butterfly_run(x: Any, y: Any, w: Any, w_lo: Any, w_hi: Any, q: Any) -> None:
    """Harvey's lazy butterflies ``x, y <- x + w*y, x - w*y`` elementwise (twiddle per element;
    values in ``[0, 4q)``)."""
    two_q = q + q
    for b in range(x.size):
        xv = x[b]
        xv = min(xv, xv - two_q)  # [0, 2q)
        t = _shoup(y[b], w[b], w_lo[b], w_hi[b], q)
        t = min(t, t - two_q)  # [0, 2q)
        x[b] = xv + t
        y[b] = xv - t + two_q


@_jit
def _forward_row(a: Any, powers: Any, quot_lo: Any, quot_hi: Any, q: Any, scratch: Any) -> None:
    """In place: the forward NTT of one row, reduced to ``[0, q)`` at the end; tables in
    :func:`~fhe_agg.hazmat.ntt.kernel_twiddle_order`, ``scratch``: ``(8, n / 8)`` uint64.

    The stages whose butterflies pair coefficients at least 8 apart run on contiguous slices
    (vectorised). The last three would run 4, 2 or 1 values at a time, scalar: 68 % of the
    time. They run instead on the row transposed to ``scratch`` (row ``j``: coefficients ``j,
    j + 8, ...``), where each is a run of ``n / 8`` butterflies: the NTT takes half the time."""
    n = a.size
    two_q = q + q
    m, gap = 1, n >> 1
    last_gap = 8 if n >= 8 else 1  # from n = 8 on, the stages below 8 run transposed
    while gap >= last_gap:
        for i in range(m):
            w, w_lo, w_hi = powers[m + i], quot_lo[m + i], quot_hi[m + i]
            start = 2 * i * gap
            xs, ys = a[start : start + gap], a[start + gap : start + 2 * gap]
            for j in range(gap):
                x = xs[j]
                x = min(x, x - two_q)  # [0, 2q)
                t = _shoup(ys[j], w, w_lo, w_hi, q)
                t = min(t, t - two_q)  # [0, 2q)
                xs[j] = x + t
                ys[j] = x - t + two_q
        m, gap = m << 1, gap >> 1
    if n >= 8:
        blocks = n >> 3
        for b in range(blocks):
            for j in range(8):
                scratch[j, b] = a[8 * b + j]
        for stage_gap, first in ((4, n >> 3), (2, n >> 2), (1, n >> 1)):
            per_block = 4 // stage_gap  # butterfly groups per block of 8 (twiddle rows)
            for s in range(per_block):
                tw = slice(first + s * blocks, first + (s + 1) * blocks)
                for j in range(2 * stage_gap * s, 2 * stage_gap * s + stage_gap):
                    _butterfly_run(
                        scratch[j], scratch[j + stage_gap], powers[tw], quot_lo[tw], quot_hi[tw], q
                    )
        for b in range(blocks):
            for j in range(8):
                x = scratch[j, b]
                x = min(x, x - two_q)
                a[8 * b + j] = min(x, x - q)
    else:
        for j in range(n):
            x = a[j]
            x = min(x, x - two_q)
            a[j] = min(x, x - q)


@njit(inline="always")
def _transpose_scratch(n: Any) -> Any:
    """The scratch :func:`_forward_row` transposes a row into."""
    return np.empty((8, max(n >> 3, 1)), dtype=np.uint64)


@_jit
def ntt_forward_rows(rows: Any, powers: Any, quot_lo: Any, quot_hi: Any, q: Any) -> None:
    """In place: the forward NTT of every row of ``rows[k, n]`` (residues in ``[0, q)``)."""
    scratch = _transpose_scratch(rows.shape[1])
    for r in range(rows.shape[0]):
        _forward_row(rows[r], powers, quot_lo, quot_hi, q, scratch)


@njit(inline="always")
def _reduce_signed(src: Any, q: Any, dst: Any) -> None:
    """``dst = src mod q`` for signed ``src`` (in ``[0, q)``)."""
    qi = np.int64(q)
    for j in range(src.size):
        x = src[j]
        if x >= qi or x <= -qi:
            x %= qi  # Python's sign rule: in [0, q)
        elif x < 0:
            x += qi
        dst[j] = np.uint64(x)


@_jit
def ntt_forward_signed(
    coeffs: Any, primes: Any, powers: Any, quot_lo: Any, quot_hi: Any, out: Any
) -> None:
    """``out[k, i, :]`` = NTT of signed ``coeffs[k, :]`` reduced mod ``primes[i]`` (tables
    ``powers[i]``, ``quot_lo[i]``, ``quot_hi[i]``)."""
    scratch = _transpose_scratch(coeffs.shape[1])
    for k in range(coeffs.shape[0]):
        for i in range(primes.size):
            _reduce_signed(coeffs[k], primes[i], out[k, i])
            _forward_row(out[k, i], powers[i], quot_lo[i], quot_hi[i], primes[i], scratch)


@_jit
def ntt_forward_wide(
    high: Any,
    low: Any,
    steps: Any,
    steps_lo: Any,
    steps_hi: Any,
    primes: Any,
    powers: Any,
    quot_lo: Any,
    quot_hi: Any,
    out: Any,
) -> None:
    """``out[k, i, :]`` = NTT of ``step * high[k] + low[k]`` mod ``primes[i]`` for signed
    ``high``, ``low`` (``steps[i]``: a row of ``step mod primes[i]``, with its Shoup quotient
    limbs): combined before one NTT, the same residues as ``step * NTT(high) + NTT(low)``."""
    scratch = np.empty(high.shape[1], dtype=np.uint64)
    transposed = _transpose_scratch(high.shape[1])
    for k in range(high.shape[0]):
        for i in range(primes.size):
            q, row = primes[i], out[k, i]
            _reduce_signed(high[k], q, scratch)
            _reduce_signed(low[k], q, row)
            _mul_add_row(scratch, steps[i], steps_lo[i], steps_hi[i], q, row)
            _forward_row(row, powers[i], quot_lo[i], quot_hi[i], q, transposed)


@njit(inline="always")
def _mul_add_row(x: Any, w: Any, w_lo: Any, w_hi: Any, q: Any, row: Any) -> None:
    """``row = x * w + row mod q`` for reduced ``x``, ``row`` (Shoup quotient limbs of ``w``)."""
    two_q = q + q
    for j in range(row.size):
        r = _shoup(x[j], w[j], w_lo[j], w_hi[j], q)
        r = min(r, r - two_q)
        r = min(r, r - q) + row[j]
        row[j] = min(r, r - q)


@_jit
def ntt_mul_add(
    x: Any,
    y: Any,
    primes: Any,
    powers: Any,
    quot_lo: Any,
    quot_hi: Any,
    w: Any,
    w_lo: Any,
    w_hi: Any,
    out: Any,
) -> None:
    """``out[k, i, :] = NTT(x[k]) * w[i] + NTT(y[k]) mod primes[i]`` for signed ``x``, ``y``:
    ``add_polys(mul_fixed(to_ntt_batch(x), w), to_ntt_batch(y))`` one row at a time."""
    scratch = np.empty(x.shape[1], dtype=np.uint64)
    transposed = _transpose_scratch(x.shape[1])
    for k in range(x.shape[0]):
        for i in range(primes.size):
            q, row = primes[i], out[k, i]
            _reduce_signed(x[k], q, scratch)
            _forward_row(scratch, powers[i], quot_lo[i], quot_hi[i], q, transposed)
            _reduce_signed(y[k], q, row)
            _forward_row(row, powers[i], quot_lo[i], quot_hi[i], q, transposed)
            _mul_add_row(scratch, w[i], w_lo[i], w_hi[i], q, row)


@_jit
def encrypt_rows(
    u: Any,
    e0: Any,
    e1: Any,
    plain: Any,
    primes: Any,
    powers: Any,
    quot_lo: Any,
    quot_hi: Any,
    pk0: Any,
    pk0_lo: Any,
    pk0_hi: Any,
    a: Any,
    a_lo: Any,
    a_hi: Any,
    out: Any,
) -> None:
    """Public-key encryption of one chunk: ``out[0, i] = NTT(u) * pk0[i] + NTT(e0) + plain[i]``
    and ``out[1, i] = NTT(u) * a[i] + NTT(e1) mod primes[i]`` for signed ``u, e0, e1`` (the NTT
    of ``u`` made once per prime; ``*_lo``, ``*_hi``: limbs of the Shoup quotients)."""
    scratch = np.empty(u.size, dtype=np.uint64)
    transposed = _transpose_scratch(u.size)
    for i in range(primes.size):
        q = primes[i]
        _reduce_signed(u, q, scratch)
        _forward_row(scratch, powers[i], quot_lo[i], quot_hi[i], q, transposed)
        c0, c1, m = out[0, i], out[1, i], plain[i]
        _reduce_signed(e0, q, c0)
        _forward_row(c0, powers[i], quot_lo[i], quot_hi[i], q, transposed)
        _mul_add_row(scratch, pk0[i], pk0_lo[i], pk0_hi[i], q, c0)
        for j in range(c0.size):
            r = c0[j] + m[j]
            c0[j] = min(r, r - q)
        _reduce_signed(e1, q, c1)
        _forward_row(c1, powers[i], quot_lo[i], quot_hi[i], q, transposed)
        _mul_add_row(scratch, a[i], a_lo[i], a_hi[i], q, c1)
