"""Parameters of the amortised well-formedness proof, each next to its derivation.

The proof (:mod:`fhe_agg.hazmat.zkproof`) shows, for a batch of ``V <= PROOF_BATCH`` chunks, that
every ``c1_k = a*u_k + e1_k`` with short ``(u_k, e1_k)``. ``U`` rows each carry a Gaussian mask
``y_j = (y_u, y_e)`` and a response ``z_j = y_j + sum_k W_jk w_k`` for a binary challenge matrix
``W`` (``U x V``). Every number below is a function of the ring degree ``n`` only (the batch size
is fixed at ``PROOF_BATCH``), so the proven bounds never depend on the model size.

References:
[L12] V. Lyubashevsky, "Lattice signatures without trapdoors", EUROCRYPT 2012 (Lemma 4.4,
      Theorem 4.6: Gaussian rejection sampling).
[BDLN16] C. Baum, I. Damgard, K. G. Larsen, M. Nielsen, "How to prove knowledge of small
      secrets", CRYPTO 2016 (amortised proofs with binary challenge matrices).
[BL17] C. Baum, V. Lyubashevsky, "Simple amortized proofs of shortness for linear relations
      over polynomial rings", 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ALPHA",
    "PROOF_BATCH",
    "QUERY_BITS",
    "SOUNDNESS_BITS",
    "ZK_TAIL",
    "ExtractionBounds",
    "ProofParameters",
    "RejectionBounds",
    "derive_parameters",
    "error_variance",
    "extraction_bounds",
    "proof_parameters",
]

#: Chunks per proof. An update of ``C`` chunks carries ``ceil(C / PROOF_BATCH)`` proofs.
PROOF_BATCH = 128
#: Non-interactive soundness error ``<= 2**-SOUNDNESS_BITS`` ...
SOUNDNESS_BITS = 128
#: ... against a prover making up to ``2**QUERY_BITS`` hash (random-oracle) queries.
QUERY_BITS = 64
#: Failure probability of the tail bounds the honest prover relies on (it restarts then), and
#: the statistical distance allowed to each of the two sources of zero-knowledge error.
TAIL_BITS = 64
#: Tail multiplier ``r`` of [L12, Lemma 4.3 / Thm 4.6]: ``|<z, c>| <= r sigma ||c||`` except with
#: probability ``2 exp(-r^2/2) = 2**-TAIL_BITS`` (L12 takes ``r = 12`` for ``2**-100``; a smaller
#: distance here would be hidden by the ``2**-64`` of the restarts on ``T``): ``r = 9.49``.
ZK_TAIL = math.sqrt(2.0 * math.log(2.0 ** (TAIL_BITS + 1)))
#: ``sigma = ALPHA * T`` in [L12, Thm 4.6]: ``M = exp(r/ALPHA + 1/(2 ALPHA^2)) = 2.02`` expected
#: attempts. 13.5 is about the largest value that keeps the response widths at 21 and 23 bits
#: (a larger ALPHA costs fewer attempts, one more bit per coefficient and of extraction slack).
ALPHA = 13.5
#: Honest-case probability that a response coefficient overflows its encoding (prover restarts).
WIDTH_RESTART_BITS = 6

_TERNARY_VARIANCE = 2.0 / 3.0
_ERROR_SIGMA = 3.2  # fhe_agg.hazmat.encrypt.ENCRYPTION_ERROR_SIGMA (a test checks they agree)
_ERROR_TAIL = 6.0  # fhe_agg.hazmat.sampling.KEY_ERROR_TAIL (a test checks they agree)


def error_variance(sigma: float = _ERROR_SIGMA, tail: float = _ERROR_TAIL) -> float:
    """Exact variance of ``round(sigma * g)``, ``g`` standard normal conditioned on ``|g| <= tail``
    (the sampler of :func:`fhe_agg.hazmat.sampling.rounded_gaussian`)."""

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / (sigma * math.sqrt(2.0))))

    cut = tail * sigma
    mass = cdf(cut) - cdf(-cut)
    top = math.floor(cut + 0.5)
    total = 0.0
    for k in range(1, top + 1):
        p = cdf(min(k + 0.5, cut)) - cdf(k - 0.5)
        total += 2 * k * k * p
    return total / mass


@dataclass(frozen=True)
class ExtractionBounds:
    """What a verifying proof guarantees for *every* chunk of its batch: a preimage
    ``c1 = a*u' + e1'`` with ``||u'||_2 <= u_l2`` and ``||e1'||_2 <= e1_l2``."""

    u_l2: float
    e1_l2: float


@dataclass(frozen=True)
class RejectionBounds:
    """The honest prover's rejection constants for a batch of ``chunks`` chunks: restart when
    ``||W u|| > t_u`` or ``||W e1|| > t_e``; keep a response with probability
    ``D(z) / (repetitions * D_c(z))``."""

    chunks: int
    t_u: float
    t_e: float
    repetitions: float


@dataclass(frozen=True, kw_only=True)
class ProofParameters:
    """Every number of the protocol for one ring degree (see :func:`derive_parameters`)."""

    n: int
    batch: int
    rows: int
    alpha: float
    rejection_tail: float
    t_u: float
    t_e: float
    sigma_u: float
    sigma_e: float
    repetitions: float
    beta_u: float
    beta_e: float
    width_u: int
    width_e: int
    soundness_bits: float
    zk_distance_log2: float

    @property
    def extraction(self) -> ExtractionBounds:
        """The difference of two accepting responses of one row [BDLN16, §4]: ``2 * beta``."""
        return ExtractionBounds(u_l2=2.0 * self.beta_u, e1_l2=2.0 * self.beta_e)

    def rejection(self, chunks: int) -> RejectionBounds:
        """Rejection constants for a batch of ``1 <= chunks <= batch`` chunks.

        The masks' width ``sigma`` (and so everything a verifier checks) is sized for a full
        batch. A batch of ``V`` chunks shifts the masks by at most ``T_V <= T`` (the same
        :func:`witness_norm_bound` at ``V``), so [L12, Thm 4.6] holds with ``alpha_V = sigma /
        T_V >= alpha``: in the metric ``diag(sigma_u, sigma_e)`` the shift has norm ``d_V =
        hypot(T_u,V / sigma_u, T_e,V / sigma_e)`` and ``M_V = exp(r d_V + d_V^2 / 2)`` (``= M``
        at ``V = batch``). The output stays within ``2 exp(-r^2/2) / M_V`` of the witness-free
        Gaussian, so a one-chunk proof needs about 1.07 attempts instead of 2.02; ``V`` is public.
        """
        return _rejection(self, chunks)

    @property
    def slack_bits(self) -> tuple[float, float]:
        """log2 of the extraction bounds over an honest witness's typical norms,
        ``||u|| = sqrt(2n/3)`` and ``||e1|| = sqrt(n Var e1)``: what the flooding pays for
        proving instead of trusting."""
        bounds = self.extraction
        return (
            math.log2(bounds.u_l2 / math.sqrt(self.n * _TERNARY_VARIANCE)),
            math.log2(bounds.e1_l2 / math.sqrt(self.n * error_variance())),
        )


def rows_for(soundness_bits: int = SOUNDNESS_BITS, query_bits: int = QUERY_BITS) -> int:
    """Rows ``U`` of the challenge matrix.

    Fix the first message (all ``t_j``) and suppose chunk ``k`` has no preimage of norms
    ``(2 beta_u, 2 beta_e)``. For row ``j`` pair every challenge row ``b`` with ``b xor e_k``:
    responses ``z, z'`` passing both would give ``a*(z_u - z_u') + (z_e - z_e') = +-c1_k`` with
    norms ``<= 2 beta``, a contradiction; so at most half of the ``2**V`` challenge rows of row
    ``j`` can be answered. The rows of ``W`` are independent uniform (random oracle), so one
    hash query yields an answerable ``W`` with probability ``<= 2**-U``, and a prover making
    ``Q`` queries succeeds with probability ``<= Q * 2**-U`` (union bound). ``U = 128 + 64``
    gives ``2**-128`` for ``2**64`` queries.
    """
    return soundness_bits + query_bits


def _gaussian_tail_z(bits: int) -> float:
    """``z`` with ``P[N(0,1) > z] <= exp(-z^2/2) = 2**-bits``."""
    return math.sqrt(2.0 * bits * math.log(2.0))


def witness_norm_bound(n: int, rows: int, batch: int, variance: float, fourth: float) -> float:
    """``T`` with ``||(sum_k W_jk w_k)_j||_2 <= T`` over all rows, except with probability
    ``~2**-TAIL_BITS`` over uniform binary ``W`` and an honest witness (the prover restarts
    with fresh masks then, which changes ``W``).

    ``S = ||W w||^2 = sum_k n_k S_k + sum_{k != l} n_kl G_kl`` with ``n_k`` (``n_kl``) the rows
    choosing chunk ``k`` (``k`` and ``l``), ``S_k = ||w_k||^2``, ``G_kl = <w_k, w_l>``.
    ``E S = n v U V / 2``; its variance adds the spread of ``|W|_1`` (``(n v)^2 U V / 4``), of
    the ``S_k`` (``V E[n_k^2] n (mu4 - v^2)``) and of the ``G_kl`` (``2 V (V-1) E[n_kl^2] n v^2``).
    ``S`` is a sum of ``n U`` weakly dependent terms; ``T^2 = E S + z sd(S)`` with the Gaussian
    tail ``z`` for ``2**-TAIL_BITS`` (a central-limit estimate: it only decides when the
    honest prover restarts, never what a verifier accepts).
    """
    v, u_rows, size = variance, rows, batch
    mean = n * v * u_rows * size / 2.0
    e_nk2 = u_rows / 4.0 + u_rows * u_rows / 4.0
    e_nkl2 = u_rows * u_rows / 16.0 + 3.0 * u_rows / 16.0
    var = (
        (n * v) ** 2 * u_rows * size / 4.0
        + size * e_nk2 * n * (fourth - v * v)
        + 2.0 * size * (size - 1) * e_nkl2 * n * v * v
    )
    return math.sqrt(mean + _gaussian_tail_z(TAIL_BITS) * math.sqrt(var))


def norm_tail_factor(dim: int, log2_failure: float) -> float:
    """Smallest ``k > 1`` with ``k^m exp(m (1 - k^2) / 2) <= 2**log2_failure`` (``m = dim``):
    ``P[||z|| > k sigma sqrt(m)] < k^m e^{m(1-k^2)/2}`` for ``z ~ D_sigma^m`` [L12, Lemma 4.4]."""
    target = log2_failure * math.log(2.0)
    lo, hi = 1.0, 4.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if dim * (math.log(mid) + (1.0 - mid * mid) / 2.0) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def derive_parameters(
    n: int,
    *,
    batch: int = PROOF_BATCH,
    rows: int | None = None,
    alpha: float = ALPHA,
    rejection_tail: float = ZK_TAIL,
) -> ProofParameters:
    """All parameters for ring degree ``n``; keyword overrides exist for small test instances.

    * ``T_u, T_e``: :func:`witness_norm_bound` for ternary ``u`` and the encryption error.
    * ``sigma_x = alpha * sqrt(2) * T_x``: the masks are Gaussians of covariance
      ``diag(sigma_u^2, sigma_e^2)``; in the metric that makes them spherical the shift has norm
      ``sqrt(T_u^2/sigma_u^2 + T_e^2/sigma_e^2) = 1/alpha``, so [L12, Thm 4.6] applies with
      ``sigma' = 1``, ``T' = 1/alpha``: ``M = exp(r/alpha + 1/(2 alpha^2))`` expected attempts
      (``r = ZK_TAIL``) and statistical distance ``2 exp(-r^2/2) / M`` from responses that
      ignore the witness.
    * ``beta_x = k sigma_x sqrt(n)`` per row, ``k`` from [L12, Lemma 4.4] so that an honest
      response fails it with probability ``<= 2**-TAIL_BITS`` over all ``2U`` checks.
    * ``width_x``: signed bits with ``2**(width-1) - 1 >= tau sigma_x``, ``2 U n exp(-tau^2/2)
      <= 2**-WIDTH_RESTART_BITS`` [L12, Lemma 4.4(1)] (an honest overflow only restarts).
    * soundness: :func:`rows_for`; zero knowledge: ``2 exp(-r^2/2) / M_V <= 2**-64`` per
      accepted proof (``M_V >= 1``, :meth:`ProofParameters.rejection`) plus ``2**-TAIL_BITS`` for
      the restarts on ``T`` (they depend on the witness): ``2**-63`` in all.
    """
    u_rows = rows_for() if rows is None else rows
    e_var = error_variance()
    e_fourth = _error_fourth_moment()
    t_u = witness_norm_bound(n, u_rows, batch, _TERNARY_VARIANCE, _TERNARY_VARIANCE)
    t_e = witness_norm_bound(n, u_rows, batch, e_var, e_fourth)
    sigma_u = alpha * math.sqrt(2.0) * t_u
    sigma_e = alpha * math.sqrt(2.0) * t_e
    repetitions = math.exp(rejection_tail / alpha + 1.0 / (2.0 * alpha * alpha))
    k = norm_tail_factor(n, -TAIL_BITS - math.log2(2 * u_rows))
    # Rounding a continuous Gaussian adds variance 1/12 (the responses' effective sigma).
    beta_u = k * math.sqrt(sigma_u**2 + 1 / 12) * math.sqrt(n)
    beta_e = k * math.sqrt(sigma_e**2 + 1 / 12) * math.sqrt(n)
    tau = math.sqrt(2.0 * math.log(2 * u_rows * n * 2.0**WIDTH_RESTART_BITS))
    width_u = 1 + math.ceil(math.log2(tau * sigma_u + 1))
    width_e = 1 + math.ceil(math.log2(tau * sigma_e + 1))
    # worst case over batch sizes: M_V >= 1 (see ProofParameters.rejection)
    zk = math.log2(2.0 * math.exp(-(rejection_tail**2) / 2) + 2.0**-TAIL_BITS)
    return ProofParameters(
        n=n,
        batch=batch,
        rows=u_rows,
        alpha=alpha,
        rejection_tail=rejection_tail,
        t_u=t_u,
        t_e=t_e,
        sigma_u=sigma_u,
        sigma_e=sigma_e,
        repetitions=repetitions,
        beta_u=beta_u,
        beta_e=beta_e,
        width_u=width_u,
        width_e=width_e,
        soundness_bits=float(u_rows - QUERY_BITS),
        zk_distance_log2=zk,
    )


def _error_fourth_moment(sigma: float = _ERROR_SIGMA, tail: float = _ERROR_TAIL) -> float:
    """Fourth moment of the encryption error (as :func:`error_variance`)."""

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / (sigma * math.sqrt(2.0))))

    cut = tail * sigma
    mass = cdf(cut) - cdf(-cut)
    total = 0.0
    for k in range(1, math.floor(cut + 0.5) + 1):
        total += 2 * k**4 * (cdf(min(k + 0.5, cut)) - cdf(k - 0.5))
    return total / mass


@lru_cache(maxsize=1024)
def _rejection(p: ProofParameters, chunks: int) -> RejectionBounds:
    if not 1 <= chunks <= p.batch:
        raise ValueError(f"chunks: {chunks}, expected 1..{p.batch}")
    if chunks == p.batch:
        return RejectionBounds(chunks, p.t_u, p.t_e, p.repetitions)
    t_u = witness_norm_bound(p.n, p.rows, chunks, _TERNARY_VARIANCE, _TERNARY_VARIANCE)
    t_e = witness_norm_bound(p.n, p.rows, chunks, error_variance(), _error_fourth_moment())
    shift = math.hypot(t_u / p.sigma_u, t_e / p.sigma_e)
    repetitions = math.exp(p.rejection_tail * shift + shift * shift / 2.0)
    return RejectionBounds(chunks, t_u, t_e, repetitions)


@lru_cache(maxsize=8)
def proof_parameters(n: int) -> ProofParameters:
    """The production parameters for ring degree ``n`` (cached)."""
    return derive_parameters(n)


def extraction_bounds(n: int) -> ExtractionBounds:
    """ℓ2 bounds on the ``(u', e1')`` a verifying proof guarantees for every chunk of its batch."""
    return proof_parameters(n).extraction
