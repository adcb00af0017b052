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

from fhe_agg.hazmat.rns import U64, add_mod, mul_shoup, shoup_quotient, sub_mod

__all__ = ["NttTables", "ntt_tables"]


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
        self._quot = shoup_quotient(powers, q)

    def forward(self, coeffs: U64) -> U64:
        """NTT of polynomials ``coeffs[..., n]`` with coefficients in ``[0, q)``; a new array.

        Leading axes are a batch: every stage runs over all polynomials at once.
        """
        a = np.array(coeffs, dtype=np.uint64, copy=True)
        n, q = self.n, self.q
        flat = a.reshape(-1, n)
        m, gap = 1, n // 2
        while m < n:
            view = flat.reshape(-1, m, 2, gap)
            w = self._powers[m : 2 * m, None]
            wq = self._quot[m : 2 * m, None]
            u = view[:, :, 0, :].copy()
            v = mul_shoup(view[:, :, 1, :], w, wq, q)
            view[:, :, 0, :] = add_mod(u, v, q)
            view[:, :, 1, :] = sub_mod(u, v, q)
            m, gap = m * 2, gap // 2
        return flat.reshape(a.shape)


@lru_cache(maxsize=16)
def ntt_tables(n: int, q: int) -> NttTables:
    """Cached :class:`NttTables` for ``(n, q)``."""
    return NttTables(n, q)
