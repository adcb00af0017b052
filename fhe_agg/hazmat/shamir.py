"""Shamir secret sharing of RNS polynomials over ``R_Q``. You can hurt yourself here.

A secret polynomial ``s`` (shape ``[prime, coefficient]``, usually NTT form) is shared
``t``-of-``n`` with the sharing polynomial in a *separate* variable, the holder index::

    S(Y) = s + r_1 * Y + ... + r_{t-1} * Y^{t-1},    share_j = S(j),  j = 1..n,

where each ``r_k`` is uniform over ``R_Q``. Because ``Y`` is a scalar, evaluation is pointwise per
prime and coefficient, so it commutes with the NTT and with the RNS decomposition: sharing each
prime row independently mod ``q_i`` is sharing over ``R_Q`` (Mouchet, Bertrand, Hubaux,
"An Efficient Threshold Access-Structure for RLWE-Based Multiparty Homomorphic Encryption",
eprint 2022/780, §4; Lattigo ``multiparty/threshold.go``). Reconstruction at zero uses Lagrange
coefficients ``lambda_j = prod_{k in T, k != j} k / (k - j) mod q_i``; a key holder multiplies its
*key share* by ``lambda_j`` (:func:`scale_share`), never its output share (threshold-ckks.md §4.4).

Invertibility: every point ``j`` and every difference ``k - j`` must be a unit mod every prime,
which holds when all points are distinct and below ``min(primes)`` (threshold-ckks.md §4.5).

:func:`share_polynomial` overwrites its random coefficients with zeros before returning; it does
not erase, seal or authenticate the shares it returns: that is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fhe_agg.ckks._random import RandomSource, key_random
from fhe_agg.hazmat.rns import U64, add_mod, mul_shoup, shoup_quotient
from fhe_agg.hazmat.sampling import uniform_mod

__all__ = ["lagrange_coefficients", "scale_share", "share_polynomial"]

_MAX_PRIME = 1 << 61


def _check_primes(primes: tuple[int, ...]) -> None:
    if not isinstance(primes, tuple) or not primes:
        raise TypeError("primes: expected a non-empty tuple of int")
    for q in primes:
        if isinstance(q, bool) or not isinstance(q, int):
            raise TypeError(f"primes: expected int entries, got {type(q).__name__}")
        if not 2 < q < _MAX_PRIME:
            raise ValueError(f"primes: each prime must lie in (2, 2**61), got {q}")


def _check_poly(value: object, primes: tuple[int, ...], name: str) -> U64:
    if not isinstance(value, np.ndarray) or value.dtype != np.uint64:
        raise TypeError(f"{name}: expected a numpy uint64 array")
    if value.ndim != 2 or value.shape[0] != len(primes) or value.shape[1] == 0:
        raise ValueError(
            f"{name}: expected shape ({len(primes)}, N) for {len(primes)} primes, got {value.shape}"
        )
    for i, q in enumerate(primes):
        if int(value[i].max()) >= q:
            raise ValueError(f"{name}: row {i} holds a value not reduced mod its prime")
    return value


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected int, got {type(value).__name__}")
    return value


def _scalar(value: int, q: int) -> tuple[U64, U64]:
    """A one-element operand ``value mod q`` and its Shoup quotient (broadcasts over a row)."""
    w = np.array([value % q], dtype=np.uint64)
    return w, shoup_quotient(w, q)


def share_polynomial(
    secret: U64,
    *,
    threshold: int,
    holders: int,
    primes: tuple[int, ...],
    rng: RandomSource,
) -> dict[int, U64]:
    """Split ``secret`` into ``holders`` Shamir shares, any ``threshold`` of which reconstruct it.

    ``secret`` has shape ``(len(primes), N)`` with row ``i`` reduced mod ``primes[i]``. Holder ``j``
    (``j = 1..holders``) receives ``S(j)`` of the same shape; the ``threshold - 1`` higher
    coefficients of ``S`` are drawn uniformly mod each prime from ``rng`` (Mouchet et al., eprint
    2022/780, §4: any ``threshold - 1`` shares are then independent of ``secret``). With
    ``threshold == 1`` every share equals the secret.

    Raises ``TypeError`` for wrong types and ``ValueError`` naming the argument unless
    ``1 <= threshold <= holders < min(primes)`` and ``secret`` is shaped and reduced as above.
    The returned arrays are secret: the caller must seal them per holder and erase them.
    """
    _check_primes(primes)
    poly = _check_poly(secret, primes, "secret")
    t = _check_count(threshold, "threshold")
    n = _check_count(holders, "holders")
    if n < 1:
        raise ValueError(f"holders: must be at least 1, got {n}")
    if not 1 <= t <= n:
        raise ValueError(f"threshold: need 1 <= threshold <= holders ({n}), got {t}")
    if n >= min(primes):
        raise ValueError(f"holders: must be below the smallest prime ({min(primes)}), got {n}")

    rng = key_random(rng, "Shamir coefficients of a key share")
    width = poly.shape[1]
    # coefficients[k - 1][i] is r_k mod primes[i]
    coefficients = [[uniform_mod(width, q, rng) for q in primes] for _ in range(t - 1)]
    shares: dict[int, U64] = {}
    for j in range(1, n + 1):
        share = np.empty_like(poly)
        for i, q in enumerate(primes):
            w, w_quot = _scalar(j, q)
            # Horner in Y: ((r_{t-1} * j + r_{t-2}) * j + ... + r_1) * j + s
            acc = np.zeros(width, dtype=np.uint64)
            for k in range(t - 1, 0, -1):
                step = add_mod(acc, coefficients[k - 1][i], q)
                acc.fill(0)
                acc = mul_shoup(step, w, w_quot, q)
                step.fill(0)
            share[i] = add_mod(acc, poly[i], q)
            acc.fill(0)
        shares[j] = share
    for row in coefficients:  # erase S's random coefficients (numpy buffers, in place)
        for r in row:
            r.fill(0)
    return shares


def lagrange_coefficients(
    indices: Sequence[int], primes: tuple[int, ...]
) -> dict[int, tuple[int, ...]]:
    """Lagrange coefficients at zero for the holder set ``indices``, one residue per prime.

    ``lambda_j = prod_{k in T, k != j} k * (k - j)^-1 mod q_i`` (threshold-ckks.md §3.5.3), so that
    ``sum_j lambda_j * S(j) = S(0)`` for any polynomial ``S`` of degree below ``len(indices)``.

    Raises ``ValueError`` on an empty, repeated or out-of-range index (each must satisfy
    ``1 <= j < min(primes)``, which makes every ``k - j`` a unit).
    """
    _check_primes(primes)
    points = list(indices)
    if not points:
        raise ValueError("indices: must not be empty")
    for j in points:
        _check_count(j, "indices")
        if not 1 <= j < min(primes):
            raise ValueError(f"indices: each must lie in [1, {min(primes)}), got {j}")
    if len(set(points)) != len(points):
        raise ValueError("indices: must be distinct")

    result: dict[int, tuple[int, ...]] = {}
    for j in points:
        per_prime: list[int] = []
        for q in primes:
            num, den = 1, 1
            for k in points:
                if k != j:
                    num = num * k % q
                    den = den * (k - j) % q
            per_prime.append(num * pow(den, -1, q) % q)
        result[j] = tuple(per_prime)
    return result


def scale_share(share: U64, coefficient: tuple[int, ...], primes: tuple[int, ...]) -> U64:
    """Multiply row ``i`` of ``share`` by ``coefficient[i] mod primes[i]`` (Shoup multiplication).

    Used to turn a Shamir share ``S(j)`` into the additive share ``lambda_j * S(j)``. ``share`` has
    shape ``(len(primes), N)`` and is reduced; ``coefficient`` has one entry in ``[0, q_i)`` per
    prime (as returned by :func:`lagrange_coefficients`). Raises ``ValueError`` otherwise.
    """
    _check_primes(primes)
    poly = _check_poly(share, primes, "share")
    if not isinstance(coefficient, tuple) or len(coefficient) != len(primes):
        raise ValueError(f"coefficient: expected a tuple of {len(primes)} residues")
    out = np.empty_like(poly)
    for i, (c, q) in enumerate(zip(coefficient, primes, strict=True)):
        _check_count(c, "coefficient")
        if not 0 <= c < q:
            raise ValueError(f"coefficient: entry {i} must lie in [0, q_{i})")
        w, w_quot = _scalar(c, q)
        out[i] = mul_shoup(poly[i], w, w_quot, q)
    return out
