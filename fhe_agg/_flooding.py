"""Noise-flooding sizing for threshold CKKS decryption (pure math, no state).

Releasing a CKKS decryption (or a partial decryption) without extra noise leaks the secret key
(Li–Micciancio, EUROCRYPT'21). Li, Micciancio, Schultz and Sorrell ("Securing Approximate
Homomorphic Encryption Using Differential Privacy", CRYPTO'22, eprint 2022/816) show that adding
Gaussian noise of standard deviation

    sigma = sqrt(12 * tau) * 2**(s / 2) * B_ct

to each of ``tau`` released decryptions, whose ciphertext noise is bounded by ``B_ct`` in every
coefficient, keeps ``s`` bits of statistical security. In threshold decryption every member of the
decrypting set adds it (the others may collude), so ``sigma`` is *per party*
(threshold-ckks.md §3.6). The bound ``B_ct`` must be a worst-case analytic bound, not a measured
estimate (threshold-ckks.md §4.11).

All sizes here are coefficient-domain integers unless a name says "slot".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fhe_agg._validate import positive_finite, positive_int

__all__ = [
    "KEY_ERROR_SIGMA",
    "TAIL_SIGMAS",
    "FloodingPolicy",
    "ciphertext_noise_bound",
    "flooding_security_bits",
    "flooding_sigma",
    "slot_noise_std",
]

#: Standard deviation of RLWE key errors (HE standard; SEAL's default, cut at 6 sigma).
KEY_ERROR_SIGMA = 3.2

#: How many standard deviations the coefficient bound ``B_ct`` covers.
TAIL_SIGMAS = 6.0

_TERNARY_VARIANCE = 2.0 / 3.0


@dataclass(frozen=True, kw_only=True)
class FloodingPolicy:
    """Target of the flooding noise: ``statistical_bits`` of security over ``budget`` decryptions.

    ``budget`` is ``tau`` of LMSS'22: the number of ciphertexts decrypted under one key epoch; a
    new key ceremony is due when it is spent (threshold-ckks.md §3.6).
    """

    statistical_bits: int = 40
    budget: int = 2**16

    def __post_init__(self) -> None:
        positive_int(self.statistical_bits, "statistical_bits")
        positive_int(self.budget, "budget")


def ciphertext_noise_bound(n: int, holders: int, clients: int, *, special_prime: bool) -> float:
    """Worst-case coefficient bound ``B_ct`` of the sum of ``clients`` fresh public-key encryptions.

    The joint secret is ``s = s_1 + ... + s_holders`` with ternary ``s_i``, so each coefficient of
    ``s`` has variance ``Var s = 2 * holders / 3``; key errors have ``sigma = 3.2``. SEAL decrypts
    ``c0 + c1 * s`` and encrypts ``c = v * pk + (Delta*m + e0, e1)`` with ``pk = (-(a*s + e), a)``
    and ternary ``v`` (threshold-ckks.md §3.2).

    * ``special_prime=True``: SEAL encrypts at the key level ``QP`` and divides by ``P`` with
      rounding. The key-level noise ``-v*e + e0 + e1*s`` shrinks by ``P`` (negligible for
      ``P >= 2**20``) and what remains is the rounding error ``r0 + r1 * s`` with ``r0, r1``
      uniform on ``[-1/2, 1/2]`` (variance 1/12), so one coefficient has variance
      ``(1 + N * Var s) / 12`` (a product of ring elements sums ``N`` independent terms).
    * ``special_prime=False``: the key level is the data level and the fresh noise is
      ``-v * e + e0 + e1 * s`` with ``e`` the joint key error (the sum of ``holders`` errors, each
      coefficient of variance ``holders * 3.2**2``): variance
      ``N * (2/3) * holders * 3.2**2 + 3.2**2 + N * Var s * 3.2**2``.

    Independent encryptions add variances, so the sum has ``sqrt(clients)`` times that standard
    deviation; ``B_ct = 6 * sqrt(clients) * std`` (a 6-sigma tail, the same cut SEAL uses for its
    error sampler). The Gaussian shape is the central-limit approximation of the ring products.
    """
    n = positive_int(n, "n")
    holders = positive_int(holders, "holders")
    clients = positive_int(clients, "clients")
    secret_variance = _TERNARY_VARIANCE * holders
    if special_prime:
        variance = (1.0 + n * secret_variance) / 12.0
    else:
        err = KEY_ERROR_SIGMA**2
        variance = n * _TERNARY_VARIANCE * holders * err + err + n * secret_variance * err
    return TAIL_SIGMAS * math.sqrt(clients) * math.sqrt(variance)


def flooding_sigma(policy: FloodingPolicy, noise_bound: float) -> float:
    """Per-party flooding standard deviation ``sqrt(12 * tau) * 2**(s/2) * B_ct`` (LMSS'22).

    ``noise_bound`` is ``B_ct`` from :func:`ciphertext_noise_bound`; the result is in coefficient
    units and is what *each* member of the decrypting set adds (threshold-ckks.md §3.6).
    """
    bound = positive_finite(noise_bound, "noise_bound")
    return math.sqrt(12.0 * policy.budget) * math.pow(2.0, policy.statistical_bits / 2) * bound


def flooding_security_bits(sigma: float, noise_bound: float, budget: int) -> float:
    """Statistical security bits ``s`` achieved by per-party flooding ``sigma`` (inverse of
    :func:`flooding_sigma`): ``s = 2 * log2(sigma / (sqrt(12 * budget) * B_ct))``, floored at 0."""
    sigma = positive_finite(sigma, "sigma")
    bound = positive_finite(noise_bound, "noise_bound")
    budget = positive_int(budget, "budget")
    bits = 2.0 * math.log2(sigma / (math.sqrt(12.0 * budget) * bound))
    return max(0.0, bits)


def slot_noise_std(coefficient_sigma: float, n: int, parties: int) -> float:
    """Standard deviation of each decoded real caused by iid coefficient noise, before ``/ scale``.

    ``parties`` independent additions of iid coefficient noise of standard deviation
    ``coefficient_sigma`` give coefficient variance ``parties * sigma**2``. The canonical
    embedding is ``sqrt(N)`` times a unitary map, so each complex slot has variance
    ``N * parties * sigma**2``, split evenly between its real and imaginary parts; with two reals
    packed per slot each real has standard deviation ``sigma * sqrt(parties) * sqrt(N / 2)``
    (threshold-ckks.md §3.7). Divide by the CKKS scale to get model units.
    """
    sigma = positive_finite(coefficient_sigma, "coefficient_sigma")
    n = positive_int(n, "n")
    parties = positive_int(parties, "parties")
    return sigma * math.sqrt(parties) * math.sqrt(n / 2)
