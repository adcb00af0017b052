"""RLWE key and decryption arithmetic on RNS/NTT arrays, matching SEAL's conventions.

SEAL decrypts ``c0 + c1 * s`` and its public key is ``(-(a*s + e), a)`` at the key level, all in
NTT form (``seal/util/rlwe.cpp``). Arrays are ``[prime, coefficient]``; the data level is the
first ``L`` rows of the key level (SEAL drops the special prime last).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.ntt import ntt_tables, stacked_tables
from fhe_agg.hazmat.rns import (
    U64,
    add_mod,
    mul_shoup,
    neg_mod,
    shoup_quotient,
    signed_to_residues,
    split32,
)
from fhe_agg.hazmat.sampling import WideNoise

_FLOOD_BLOCK = 32  # ciphertexts per block of mul_fixed_plus_noise (measured: 16-64 all close)
_NTT_BLOCK = 4  # polynomials per batched NTT: large enough to amortize numpy, small for the cache

__all__ = [
    "FixedOperand",
    "add_polys",
    "encrypt_ntt",
    "mul_fixed",
    "ntt_mul_add",
    "public_key_share",
    "to_ntt",
    "to_ntt_batch",
    "wide_to_ntt_batch",
]


def to_ntt(coeffs: NDArray[np.int64], n: int, primes: tuple[int, ...]) -> U64:
    """Signed integer polynomial -> NTT form under each prime, shape ``(len(primes), n)``."""
    out: U64 = to_ntt_batch(coeffs[None], n, primes)[0]
    return out


def to_ntt_batch(coeffs: NDArray[np.int64], n: int, primes: tuple[int, ...]) -> U64:
    """Signed polynomials ``coeffs[k, n]`` -> NTT form, shape ``(k, len(primes), n)``."""
    out = np.empty((coeffs.shape[0], len(primes), n), dtype=np.uint64)
    kernels = _accel.kernels(coeffs.size * len(primes))
    if kernels is not None:
        signed = np.ascontiguousarray(coeffs, dtype=np.int64)
        kernels.ntt_forward_signed(signed, *stacked_tables(n, primes), out)
        return out
    for start in range(0, coeffs.shape[0], _NTT_BLOCK):
        residues = signed_to_residues(coeffs[start : start + _NTT_BLOCK], primes)
        for i, q in enumerate(primes):
            out[start : start + _NTT_BLOCK, i, :] = ntt_tables(n, q).forward(residues[i])
    return out


@dataclass(frozen=True, eq=False, repr=False)
class FixedOperand:
    """A polynomial that multiplies many others (a key share), with its Shoup quotients."""

    value: U64
    quotient: U64

    @classmethod
    def of(cls, value: U64, primes: tuple[int, ...]) -> FixedOperand:
        quot = np.stack([shoup_quotient(value[i], q) for i, q in enumerate(primes)])
        return cls(value, quot)

    @cached_property
    def _kernel_arrays(self) -> tuple[U64, U64, U64]:
        lo, hi = split32(self.quotient)
        return (
            np.ascontiguousarray(self.value, dtype=np.uint64),
            np.ascontiguousarray(lo),
            np.ascontiguousarray(hi),
        )

    def kernel_rows(self, count: int) -> tuple[U64, U64, U64]:
        """The value and the 32-bit limbs of its Shoup quotients for the first ``count`` primes,
        contiguous, as the compiled kernels take them: made at the first call and kept as long as
        the operand (for the public key's operands, which encrypt every chunk)."""
        value, lo, hi = self._kernel_arrays
        return value[:count], lo[:count], hi[:count]

    def rows(self, count: int) -> FixedOperand:
        """The first ``count`` primes (e.g. the data level of a key-level polynomial)."""
        return FixedOperand(self.value[:count], self.quotient[:count])

    def __repr__(self) -> str:
        return "FixedOperand(<secret>)"


def mul_fixed(x: U64, fixed: FixedOperand, primes: tuple[int, ...]) -> U64:
    """Pointwise ``x * fixed mod q_i`` for ``x`` of shape ``(..., len(primes), n)``."""
    kernels = _accel.kernels(x.size)
    if kernels is not None:
        flat = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1, *x.shape[-2:])
        result = np.empty_like(flat)
        kernels.mul_shoup_rows(
            flat,
            *fixed.kernel_rows(len(primes)),
            np.array(primes, dtype=np.uint64),
            result,
        )
        return result.reshape(x.shape)
    out = np.empty_like(x)
    for i, q in enumerate(primes):
        out[..., i, :] = mul_shoup(x[..., i, :], fixed.value[i], fixed.quotient[i], q)
    return out


def ntt_mul_add(
    x: NDArray[np.int64], fixed: FixedOperand, y: NDArray[np.int64], n: int, primes: tuple[int, ...]
) -> U64:
    """``NTT(x) * fixed + NTT(y)`` for signed polynomials ``x[k, n]``, ``y[k, n]``, shape
    ``(k, len(primes), n)``; compiled, one row at a time (no intermediate arrays)."""
    kernels = _accel.kernels(x.size * len(primes))
    if kernels is None or x.shape != y.shape:
        return add_polys(
            mul_fixed(to_ntt_batch(x, n, primes), fixed, primes), to_ntt_batch(y, n, primes), primes
        )
    out = np.empty((x.shape[0], len(primes), n), dtype=np.uint64)
    kernels.ntt_mul_add(
        np.ascontiguousarray(x, dtype=np.int64),
        np.ascontiguousarray(y, dtype=np.int64),
        *stacked_tables(n, primes),
        *fixed.kernel_rows(len(primes)),
        out,
    )
    return out


def encrypt_ntt(
    u: NDArray[np.int64],
    e0: NDArray[np.int64],
    e1: NDArray[np.int64],
    plain: U64,
    pk0: FixedOperand,
    a: FixedOperand,
    primes: tuple[int, ...],
) -> U64:
    """``(NTT(u)*pk0 + NTT(e0) + plain, NTT(u)*a + NTT(e1))`` for signed polynomials ``u, e0,
    e1`` (length ``n``) and the NTT-form ``plain`` (``(L, n)``): shape ``(2, L, n)``, reduced.
    Compiled, one prime at a time and the NTT of ``u`` made once, where :mod:`._accel` allows."""
    n = u.shape[0]
    count = len(primes)
    kernels = _accel.kernels(3 * n * count)
    if kernels is None:
        u_ntt, e0_ntt, e1_ntt = to_ntt_batch(np.stack([u, e0, e1]), n, primes)
        c0 = add_polys(mul_fixed(u_ntt, pk0, primes), e0_ntt, primes)
        c1 = add_polys(mul_fixed(u_ntt, a, primes), e1_ntt, primes)
        return np.stack([add_polys(c0, plain, primes), c1])
    out = np.empty((2, count, n), dtype=np.uint64)
    kernels.encrypt_rows(
        np.ascontiguousarray(u, dtype=np.int64),
        np.ascontiguousarray(e0, dtype=np.int64),
        np.ascontiguousarray(e1, dtype=np.int64),
        np.ascontiguousarray(plain, dtype=np.uint64),
        *stacked_tables(n, primes),
        *pk0.kernel_rows(count),
        *a.kernel_rows(count),
        out,
    )
    return out


def wide_to_ntt_batch(noise: WideNoise, n: int, primes: tuple[int, ...]) -> U64:
    """``step * high + low`` (polynomials ``[k, n]``) in NTT form: ``step * NTT(high) + NTT(low)``
    (the NTT is linear), shape ``(k, len(primes), n)``; compiled, the residues are combined
    first and transformed once."""
    if noise.step == 1:
        return to_ntt_batch(noise.high, n, primes)
    step = np.array([[noise.step % q] for q in primes], dtype=np.uint64)
    quotient = np.stack([shoup_quotient(step[i], q) for i, q in enumerate(primes)])
    shape = (len(primes), n)
    fixed = FixedOperand(np.broadcast_to(step, shape), np.broadcast_to(quotient, shape))
    kernels = _accel.kernels(noise.high.size * len(primes))
    if kernels is None:
        high = mul_fixed(to_ntt_batch(noise.high, n, primes), fixed, primes)
        return add_polys(high, to_ntt_batch(noise.low, n, primes), primes)
    out = np.empty((noise.high.shape[0], len(primes), n), dtype=np.uint64)
    kernels.ntt_forward_wide(
        np.ascontiguousarray(noise.high, dtype=np.int64),
        np.ascontiguousarray(noise.low, dtype=np.int64),
        *fixed.kernel_rows(len(primes)),
        *stacked_tables(n, primes),
        out,
    )
    return out


def mul_fixed_plus_noise(
    x: U64,
    fixed: FixedOperand,
    noise: Callable[[int], NDArray[np.int64] | WideNoise] | None,
    n: int,
    primes: tuple[int, ...],
) -> U64:
    """``x * fixed + NTT(e) mod q_i`` for ``x`` of shape ``(k, len(primes), n)``, where
    ``noise(m)`` returns ``m`` fresh signed polynomials ``e`` (shape ``(m, n)``, as int64 or
    :class:`WideNoise`); ``None`` adds nothing. Works in blocks of :data:`_FLOOD_BLOCK` so the
    noise, its NTT and the sum stay in cache: 1.8x faster than whole arrays at 1e7 parameters."""
    out = np.empty_like(x)
    for start in range(0, x.shape[0], _FLOOD_BLOCK):
        block = mul_fixed(x[start : start + _FLOOD_BLOCK], fixed, primes)
        if noise is not None:
            drawn = noise(block.shape[0])
            if isinstance(drawn, WideNoise):
                ntt = wide_to_ntt_batch(drawn, n, primes)
            else:
                ntt = to_ntt_batch(drawn, n, primes)
            block = add_polys(block, ntt, primes)
        out[start : start + _FLOOD_BLOCK] = block
    return out


def add_polys(a: U64, b: U64, primes: tuple[int, ...], *, out: U64 | None = None) -> U64:
    """Pointwise ``a + b mod q_i`` for arrays of shape ``(..., len(primes), n)``; into ``out``
    (C-contiguous, ``a``'s shape; may be ``a`` itself) when given: a running sum then costs
    no fresh pages."""
    if out is not None and (out.shape != a.shape or not out.flags.c_contiguous):
        raise ValueError(f"out: expected a C-contiguous array of shape {a.shape}")
    kernels = _accel.kernels(a.size)
    if kernels is not None and a.shape == b.shape:
        flat_a = np.ascontiguousarray(a, dtype=np.uint64).reshape(-1, *a.shape[-2:])
        flat_b = np.ascontiguousarray(b, dtype=np.uint64).reshape(-1, *a.shape[-2:])
        result = np.empty_like(flat_a) if out is None else out.reshape(flat_a.shape)
        kernels.add_mod_rows(flat_a, flat_b, np.array(primes, dtype=np.uint64), result)
        return result.reshape(a.shape)
    target = np.empty_like(a) if out is None else out
    for i, q in enumerate(primes):
        target[..., i, :] = add_mod(a[..., i, :], b[..., i, :], q)
    return target


def public_key_share(a: U64, secret: FixedOperand, error_ntt: U64, primes: tuple[int, ...]) -> U64:
    """``-(a*s + e)`` at the key level: one party's share of the joint public key's first half."""
    summed = add_polys(mul_fixed(a, secret, primes), error_ntt, primes)
    return np.stack([neg_mod(summed[i], q) for i, q in enumerate(primes)])
