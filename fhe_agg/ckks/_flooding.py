"""Noise-flooding sizing for threshold CKKS decryption from *proven* bounds (pure math, no state).

Notion: KL divergence, as in Micciancio–Walter ("On the bit security of cryptographic
primitives", EUROCRYPT'18; "Gaussian sampling over the integers", CRYPTO'17, §3).

What must be hidden. A key holder decrypts ``c0 + c1*s`` of a sum of ``max_clients`` ciphertexts,
each with a verified proof that ``c1 = a*u' + e1'`` with ``||u'||_2 <= u_l2``,
``||e1'||_2 <= e1_l2`` (:func:`fhe_agg.hazmat.zkproof.extraction_bounds`, extraction slack
included). With ``pk0 = -(a*s + e)``: ``c0 + c1*s = (c0 - u'*pk0) + (-u'*e + e1'*s)``. The first
part is known to whoever made the ciphertext (``c0`` is unproven: it only moves that client's
own plaintext, and the encoder's rounding and ``e0`` are inside it); the second part
``x = sum over clients of (-u'*e + e1'*s)`` is the only key-dependent term, and flooding hides it.
Holders cannot tell honest clients from malicious ones, so every one of the ``max_clients`` slots
is sized at the proven bound.

Bound on ``x``. A coefficient of a negacyclic product ``f*g`` is ``sum_j +-f_j g_(i-j)``, so by
Cauchy–Schwarz ``|(u'*e)_i| <= ||u'||_2 ||e||_2``: per client, every coefficient of ``x`` is at most
``u_l2 ||e||_2 + e1_l2 ||s||_2`` (:func:`chunk_noise_linf`), and
``||x||_2 <= B2 = max_clients * sqrt(N) * that`` (:func:`proven_noise_l2`). ``||s||_2`` and
``||e||_2`` of the joint key (sums over ``holders`` of ternary secrets and of rounded Gaussians of
``sigma = 3.2`` cut at ``6 sigma``) are bounded by :func:`key_l2_bounds`, each failing with
probability ``<= 2**-KEY_TAIL_BITS`` over the ceremony's randomness.

Size of the flooding. A spherical Gaussian of standard deviation ``sigma`` shifted by ``x`` is at
KL divergence ``||x||_2**2 / (2 sigma**2)`` from the unshifted one; rounding both to integers is
post-processing (``x`` is integral) and cannot increase it. KL adds over independent releases:
one key epoch releases at most ``R = floor(holders * tau / threshold)`` ciphertexts (each holder
decrypts at most ``tau`` = its budget and every release takes ``threshold`` holders), so
``KL <= R * B2**2 / (2 sigma**2) <= 2**-s`` gives ``sigma = B2 * sqrt(R / 2) * 2**(s / 2)``.
It is **per party**: every member of a decrypting set adds it, because all the others may be
colluding and the one honest holder's noise alone must hide ``x`` (threshold-ckks.md §3.6).

Samplers. Noise this wide does not fit 64-bit floats: a holder draws
``step * round(sigma/step * z) + uniform[-step/2, step/2)`` (``step`` a power of two,
:func:`fhe_agg.hazmat.sampling.flooding_step`). Shifted by ``x``, that is a shift of the coarse
Gaussian by ``x_i / step`` or ``x_i / step + 1`` cells, so the KL is at most
``||x||_2 + step * sqrt(N)`` in place of ``||x||_2`` (:func:`flooding_security_bits` counts it).
The Gaussian is cut at ``14 sigma`` (statistical distance ``1.6e-44`` per coefficient).

All sizes here are coefficient-domain integers unless a name says "slot".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fhe_agg._validate import positive_finite, positive_int
from fhe_agg.hazmat.sampling import flooding_step

__all__ = [
    "KEY_ERROR_BOUND",
    "KEY_ERROR_SIGMA",
    "KEY_TAIL_BITS",
    "TAIL_SIGMAS",
    "FloodingPolicy",
    "chunk_noise_linf",
    "ciphertext_noise_bound",
    "flooding_kl",
    "flooding_security_bits",
    "flooding_sigma",
    "gaussian_tail_sigmas",
    "key_l2_bounds",
    "proven_noise_l2",
    "releases_per_epoch",
    "slot_noise_std",
    "subgaussian_norm_bound",
]

#: Standard deviation of RLWE key errors (HE standard; SEAL's default, cut at 6 sigma).
KEY_ERROR_SIGMA = 3.2

#: Largest |coefficient| of one holder's key error: ``round(3.2 * 6) = 19``.
KEY_ERROR_BOUND = 19

#: The key-norm bounds fail with probability at most ``2**-KEY_TAIL_BITS`` each.
KEY_TAIL_BITS = 64

#: Tail of the *honest* fresh-noise estimate :func:`ciphertext_noise_bound` (correctness only).
TAIL_SIGMAS = 6.0

_TERNARY_VARIANCE = 2.0 / 3.0


#: Largest statistical security a policy may ask for: 2**(s/2) must stay a float, and far
#: fewer bits already exceed every preset (the constructor of FederationConfig says by how much).
MAX_STATISTICAL_BITS = 256
#: Largest decryption budget per key epoch (a key ceremony is cheap next to 2**40 releases).
MAX_BUDGET = 2**40


@dataclass(frozen=True, kw_only=True)
class FloodingPolicy:
    """Target of the flooding noise: ``statistical_bits`` of security over ``budget`` decryptions.

    ``budget`` is ``tau``: the number of ciphertexts *each holder* may partially decrypt under one
    key epoch (a new key ceremony is due when it is spent); the epoch then releases at most
    :func:`releases_per_epoch` ciphertexts, and the KL of all of them is at most
    ``2**-statistical_bits``.
    """

    statistical_bits: int = 40
    budget: int = 2**16

    def __post_init__(self) -> None:
        positive_int(self.statistical_bits, "statistical_bits")
        positive_int(self.budget, "budget")
        if self.statistical_bits > MAX_STATISTICAL_BITS:
            raise ValueError(
                f"statistical_bits: {self.statistical_bits} exceeds {MAX_STATISTICAL_BITS}; "
                "no modulus within the security tables holds such flooding"
            )
        if self.budget > MAX_BUDGET:
            raise ValueError(f"budget: {self.budget} exceeds {MAX_BUDGET} decryptions per key")


def releases_per_epoch(budget: int, holders: int, threshold: int) -> int:
    """At most ``floor(holders * budget / threshold)`` ciphertexts are released under one key:
    each release spends one unit of ``threshold`` holders' budgets of ``budget`` each."""
    budget = positive_int(budget, "budget")
    holders = positive_int(holders, "holders")
    threshold = positive_int(threshold, "threshold")
    return holders * budget // threshold


def subgaussian_norm_bound(dim: int, proxy_variance: float, failure_bits: int) -> float:
    """``r`` with ``P[||X||_2 > r] <= 2**-failure_bits`` for ``X`` of ``dim`` independent centred
    coordinates, each sub-Gaussian with variance proxy ``v``: ``r**2 = v (dim + 2 sqrt(dim t) + 2t)``,
    ``t = failure_bits * ln 2`` (Hsu–Kakade–Zhang, "A tail inequality for quadratic forms of
    subgaussian random vectors", 2012, Thm 1 with ``A = I``; Laurent–Massart for Gaussians)."""
    dim = positive_int(dim, "dim")
    v = positive_finite(proxy_variance, "proxy_variance")
    t = positive_int(failure_bits, "failure_bits") * math.log(2.0)
    return math.sqrt(v * (dim + 2.0 * math.sqrt(dim * t) + 2.0 * t))


def key_l2_bounds(n: int, holders: int) -> tuple[float, float]:
    """``(||s||_2, ||e||_2)`` bounds of the joint key, each failing w.p. ``<= 2**-KEY_TAIL_BITS``.

    A coefficient of ``s`` sums ``holders`` uniform ternaries: each lies in ``[-1, 1]``, so it is
    sub-Gaussian with proxy 1 (Hoeffding's lemma) and the sum has proxy ``holders``. A coefficient
    of ``e`` sums ``holders`` values ``round(3.2 g)`` with ``g`` normal cut at 6: cutting a centred
    Gaussian symmetrically lowers ``E cosh``, so ``3.2 g`` has proxy ``3.2**2``; rounding adds
    ``|r| <= 1/2`` and sub-Gaussian norms add, so proxy ``(3.2 + 1/2)**2`` each. Each bound is
    also capped at its worst case (``holders * sqrt(N)``, ``holders * 19 * sqrt(N)``).
    """
    n = positive_int(n, "n")
    holders = positive_int(holders, "holders")
    s = subgaussian_norm_bound(n, float(holders), KEY_TAIL_BITS)
    e = subgaussian_norm_bound(n, holders * (KEY_ERROR_SIGMA + 0.5) ** 2, KEY_TAIL_BITS)
    root = math.sqrt(n)
    return min(s, holders * root), min(e, holders * KEY_ERROR_BOUND * root)


def chunk_noise_linf(u_l2: float, e1_l2: float, *, n: int, holders: int) -> float:
    """Bound on every coefficient of ``-u'*e + e1'*s`` for one proven chunk:
    ``u_l2 ||e||_2 + e1_l2 ||s||_2`` (Cauchy–Schwarz on each coefficient of a negacyclic product)."""
    u_l2 = positive_finite(u_l2, "u_l2")
    e1_l2 = positive_finite(e1_l2, "e1_l2")
    s_l2, e_l2 = key_l2_bounds(n, holders)
    return u_l2 * e_l2 + e1_l2 * s_l2


def proven_noise_l2(n: int, holders: int, clients: int, u_l2: float, e1_l2: float) -> float:
    """``B2``: an ℓ2 bound of the key-dependent noise ``x`` of a sum of ``clients`` proven chunks,
    ``clients * sqrt(N) * chunk_noise_linf`` (a worst case: malicious clients may align theirs)."""
    clients = positive_int(clients, "clients")
    linf = chunk_noise_linf(u_l2, e1_l2, n=n, holders=holders)
    return clients * math.sqrt(positive_int(n, "n")) * linf


def flooding_kl(sigma: float, noise_l2: float, releases: int, *, n: int) -> float:
    """KL divergence over ``releases`` releases of per-party noise ``sigma`` (with the sampler's
    ``step``) hiding a key-dependent term of ℓ2 norm ``noise_l2``:
    ``releases * (noise_l2 + step * sqrt(N))**2 / (2 sigma**2)``."""
    sigma = positive_finite(sigma, "sigma")
    bound = positive_finite(noise_l2, "noise_l2")
    releases = positive_int(releases, "releases")
    shift = bound + flooding_step(sigma) * math.sqrt(positive_int(n, "n"))
    return releases * shift * shift / (2.0 * sigma * sigma)


def flooding_sigma(policy: FloodingPolicy, noise_l2: float, releases: int, *, n: int) -> float:
    """Per-party standard deviation with ``flooding_kl <= 2**-s``:
    ``(B2 + step * sqrt(N)) * sqrt(R / 2) * 2**(s / 2)`` with ``step = flooding_step(result)``.

    When ``sqrt(N R / 2) 2**(s/2)`` exceeds about ``2**EXACT_SIGMA_BITS`` the step term grows
    with ``sigma`` and no ``sigma`` reaches ``s`` (about 60 bits at ``N = 8192``, ``R = 2**17``);
    the result then falls short, which :func:`flooding_security_bits` reports.
    """
    bound = positive_finite(noise_l2, "noise_l2")
    factor = math.sqrt(positive_int(releases, "releases") / 2.0)
    factor *= math.pow(2.0, policy.statistical_bits / 2)
    root = math.sqrt(positive_int(n, "n"))
    step = flooding_step(bound * factor)
    sigma = (bound + step * root) * factor
    while flooding_step(sigma) > step and step * root < bound:  # else out of reach: stop
        step = flooding_step(sigma)
        sigma = (bound + step * root) * factor
    return sigma


def flooding_security_bits(sigma: float, noise_l2: float, releases: int, *, n: int) -> float:
    """``s = -log2(flooding_kl)``, floored at 0: the inverse of :func:`flooding_sigma`."""
    return max(0.0, -math.log2(flooding_kl(sigma, noise_l2, releases, n=n)))


def gaussian_tail_sigmas(count: int, failure_bits: int) -> float:
    """Smallest ``k`` with ``count * P[|Z| > k] <= 2**-failure_bits`` for standard normal ``Z``
    (union bound over ``count`` coefficients; ``P[|Z| > k] = erfc(k / sqrt 2)``)."""
    count = positive_int(count, "count")
    target = 2.0 ** -positive_int(failure_bits, "failure_bits") / count
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if math.erfc(mid / math.sqrt(2.0)) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def ciphertext_noise_bound(n: int, holders: int, clients: int, *, special_prime: bool) -> float:
    """An *honest* estimate of the coefficient noise of a sum of ``clients`` fresh encryptions
    (correctness and precision estimates only; flooding uses :func:`proven_noise_l2`).

    * ``special_prime=True``: SEAL encrypts at ``QP`` and divides by ``P``: the rounding error
      ``r0 + r1 * s`` remains, variance ``(1 + N * Var s) / 12``, ``Var s = 2 * holders / 3``.
    * ``special_prime=False`` (data-level encryption): ``-u*e + e0 + e1*s``, variance
      ``N (2/3) holders 3.2**2 + 3.2**2 + N Var s 3.2**2``.

    ``B_ct = 6 * sqrt(clients) * std`` (central-limit estimate, a 6-sigma tail).
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
