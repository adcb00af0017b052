"""Negacyclic number-theoretic transform, bit-compatible with SEAL's ``ntt_negacyclic_harvey``.

SEAL represents CKKS polynomials in NTT form: evaluations at the odd powers of a primitive 2N-th
root of unity ``psi`` (the *minimal* one mod q), in bit-reversed order. Pointwise products in this
form are products in ``Z_q[X]/(X^N + 1)``. A secret key or noise polynomial sampled here must be
transformed exactly as SEAL transforms ciphertexts, or decryption is garbage; the tests check
this against SEAL itself.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.rns import U64, csub, mul_shoup_lazy, shoup_quotient, split32

__all__ = ["NttTables", "kernel_twiddle_order", "ntt_tables", "stacked_tables"]

_DENSE_GAP = 32


def _bit_reverse(i: int, bits: int) -> int:
    return int(f"{i:0{bits}b}"[::-1], 2) if bits else 0


def _minimal_primitive_root(two_n: int, q: int) -> int:
    """The smallest primitive ``two_n``-th root of unity mod prime ``q``."""
    if (q - 1) % two_n:
        raise ValueError(f"q = {q} is not 1 mod {two_n}")
    exponent = (q - 1) // two_n
    for candidate in range(2, q):
        g = pow(candidate, exponent, q)
        if pow(g, two_n // 2, q) == q - 1:  # order exactly two_n
            break
    else:  # pragma: no cover - impossible for a prime q = 1 mod 2N
        raise ValueError("no primitive root found")
    g_sq = g * g % q
    best, power = g, g
    for _ in range(two_n // 2 - 1):
        power = power * g_sq % q
        best = min(best, power)
    return best


class NttTables:
    """Twiddle factors for one prime ``q`` and ring degree ``n`` (power of two)."""

    def __init__(self, n: int, q: int) -> None:
        self.n, self.q = n, q
        bits = n.bit_length() - 1
        root = _minimal_primitive_root(2 * n, q)
        powers = np.empty(n, dtype=np.uint64)
        value = 1
        for i in range(n):
            powers[_bit_reverse(i, bits)] = value
            value = value * root % q
        self._powers = powers
        self._quot_lo, self._quot_hi = split32(shoup_quotient(powers, q))
        order = kernel_twiddle_order(n)  # the compiled kernels' layout of the same tables
        self._kernel = (powers[order], self._quot_lo[order], self._quot_hi[order])
        # Stages whose butterflies pair coefficients at most _DENSE_GAP apart run on contiguous
        # copies with each twiddle repeated ``gap`` times: numpy is slow on short inner runs.
        self._dense: dict[int, tuple[U64, U64, U64]] = {}
        m, gap = 1, n // 2
        while m < n:
            if 1 < gap <= _DENSE_GAP:
                rows = slice(m, 2 * m)
                self._dense[m] = (
                    np.repeat(powers[rows], gap),
                    np.repeat(self._quot_lo[rows], gap),
                    np.repeat(self._quot_hi[rows], gap),
                )
            m, gap = m * 2, gap // 2

    def forward(self, coeffs: U64) -> U64:
        """NTT of polynomials ``coeffs[..., n]`` with coefficients in ``[0, q)``; a new array.

        Leading axes are a batch: every stage runs over all polynomials at once. Butterflies
        are Harvey's lazy ones (values stay in ``[0, 4q)``, ``4q < 2**63``), reduced once at
        the end: D. Harvey, "Faster arithmetic for number-theoretic transforms", 2014, Alg. 4.
        """
        a = np.array(coeffs, dtype=np.uint64, copy=True, order="C")
        n, q = self.n, self.q
        flat = a.reshape(-1, n)
        kernels = _accel.kernels(flat.size)
        if kernels is not None:
            kernels.ntt_forward_rows(flat, *self._kernel, np.uint64(q))
            return a
        batch = flat.shape[0]
        m, gap = 1, n // 2
        while m < n:
            view = flat.reshape(batch, m, 2, gap)
            x, y = view[:, :, 0, :], view[:, :, 1, :]
            if m in self._dense:
                xs = np.ascontiguousarray(x).reshape(batch, m * gap)
                ys = np.ascontiguousarray(y).reshape(batch, m * gap)
                _butterflies(xs, ys, *self._dense[m], q)
                x[...] = xs.reshape(batch, m, gap)
                y[...] = ys.reshape(batch, m, gap)
            else:
                rows = slice(m, 2 * m)
                _butterflies(
                    x,
                    y,
                    self._powers[rows, None],
                    self._quot_lo[rows, None],
                    self._quot_hi[rows, None],
                    q,
                )
            m, gap = m * 2, gap // 2
        csub(csub(flat, 2 * q), q)
        return flat.reshape(a.shape)


def _butterflies(x: U64, y: U64, w: U64, w_quot_lo: U64, w_quot_hi: U64, q: int) -> None:
    """In place: ``x, y <- x + w*y, x - w*y`` (lazy: inputs and outputs in ``[0, 4q)``)."""
    t = mul_shoup_lazy(y, w, w_quot_lo, w_quot_hi, q)  # [0, 2q)
    csub(x, 2 * q)  # [0, 2q)
    np.add(x, np.uint64(2 * q), out=y)
    y -= t  # x - t + 2q in (0, 4q)
    x += t  # [0, 4q)


def kernel_twiddle_order(n: int) -> NDArray[np.intp]:
    """The order of the twiddle table in which the compiled kernels read it.

    Their last three stages (butterflies 4, 2 and 1 apart) work on the coefficients transposed
    to 8 rows of ``n / 8`` (row ``j`` holds coefficients ``j, j + 8, ...``), so that every
    butterfly loop runs over ``n / 8`` contiguous values with its own twiddle each: stage 4's
    twiddles ``n/8 + b`` are contiguous already; stage 2 reads ``n/4 + 2b + s`` and stage 1
    ``n/2 + 4b + s`` for block ``b`` and sub-block ``s``, laid out here as ``s`` rows of ``b``.
    Entries below ``n / 4`` keep their place. Identity for ``n < 8`` (no transposed stages)."""
    order = np.arange(n, dtype=np.intp)
    if n >= 8:
        blocks = np.arange(n // 8, dtype=np.intp)
        for start, per_block in ((n // 4, 2), (n // 2, 4)):
            order[start : start + n // 8 * per_block] = np.concatenate(
                [start + per_block * blocks + s for s in range(per_block)]
            )
    return order


@lru_cache(maxsize=16)
def ntt_tables(n: int, q: int) -> NttTables:
    """Cached :class:`NttTables` for ``(n, q)``."""
    return NttTables(n, q)


@lru_cache(maxsize=16)
def stacked_tables(n: int, primes: tuple[int, ...]) -> tuple[U64, U64, U64, U64]:
    """The primes, twiddles ``(L, n)`` and the 32-bit limbs of their Shoup quotients
    ``(L, n)`` of a prime chain, as the compiled kernels take them (in
    :func:`kernel_twiddle_order`)."""
    tables = [ntt_tables(n, q) for q in primes]
    return (
        np.array(primes, dtype=np.uint64),
        np.stack([t._kernel[0] for t in tables]),
        np.stack([t._kernel[1] for t in tables]),
        np.stack([t._kernel[2] for t in tables]),
    )
