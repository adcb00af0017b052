"""Every parameter of the well-formedness proof, recomputed independently of zkparams.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fhe_agg import SeededRandom
from fhe_agg.ckks._flooding import KEY_ERROR_SIGMA
from fhe_agg.ckks._params import get_preset
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.encrypt import ENCRYPTION_ERROR_MAX, ENCRYPTION_ERROR_SIGMA
from fhe_agg.hazmat.sampling import KEY_ERROR_TAIL, rounded_gaussian, ternary
from fhe_agg.hazmat.zkparams import (
    PROOF_BATCH,
    error_variance,
    extraction_bounds,
    proof_parameters,
)
from fhe_agg.hazmat.zkproof import _small_product, challenge_matrix, proof_size_bound

N = 8192
P = proof_parameters(N)


def test_soundness_rows_and_bits() -> None:
    # one hash query answers all U rows w.p. <= 2**-U; 2**64 queries: 2**(64 - U) <= 2**-128
    assert P.rows == 192
    assert 64 - P.rows <= -128
    assert P.soundness_bits == 128


def test_error_variance_matches_a_riemann_sum_and_the_sampler() -> None:
    sigma, cut = 3.2, 6 * 3.2
    x = np.linspace(-cut, cut, 2_000_001)
    density = np.exp(-(x**2) / (2 * sigma**2))
    rounded = np.rint(x)
    expected = float(np.sum(rounded**2 * density) / np.sum(density))
    assert error_variance() == pytest.approx(expected, rel=1e-4)
    draws = rounded_gaussian(400_000, sigma, SeededRandom(3), tail=KEY_ERROR_TAIL)
    assert float(np.var(draws)) == pytest.approx(error_variance(), rel=0.02)
    assert int(np.max(np.abs(draws))) <= ENCRYPTION_ERROR_MAX == math.floor(6 * 3.2 + 0.5)
    assert ENCRYPTION_ERROR_SIGMA == KEY_ERROR_SIGMA == 3.2
    assert KEY_ERROR_TAIL == 6.0  # the cut error_variance() assumes


def test_shift_bound_t_holds_with_room_for_honest_witnesses() -> None:
    """E||W w||^2 = n v U V / 2, and T^2 lies a CLT tail above it; measured on real draws."""
    rng = SeededRandom(9)
    u = np.stack([ternary(N, rng) for _ in range(PROOF_BATCH)])
    e = np.stack([rounded_gaussian(N, 3.2, rng, tail=KEY_ERROR_TAIL) for _ in range(PROOF_BATCH)])
    mean_u = N * (2 / 3) * P.rows * PROOF_BATCH / 2
    mean_e = N * error_variance() * P.rows * PROOF_BATCH / 2
    assert mean_u < P.t_u**2 < 1.15 * mean_u
    assert mean_e < P.t_e**2 < 1.15 * mean_e
    for trial in range(3):
        w = challenge_matrix(bytes([trial]) * 32, P.rows, PROOF_BATCH)
        norm_u = float((_small_product(w, u).astype(float) ** 2).sum())
        norm_e = float((_small_product(w, e).astype(float) ** 2).sum())
        assert norm_u == pytest.approx(mean_u, rel=0.03)
        assert norm_e == pytest.approx(mean_e, rel=0.03)
        assert norm_u < P.t_u**2 and norm_e < P.t_e**2


def test_gaussian_width_and_repetitions() -> None:
    # L12 Thm 4.6 in the metric diag(sigma_u, sigma_e): ||c||_Sigma <= 1/alpha, alpha = 13.5
    assert P.sigma_u == pytest.approx(13.5 * math.sqrt(2) * P.t_u)
    assert P.sigma_e == pytest.approx(13.5 * math.sqrt(2) * P.t_e)
    assert math.hypot(P.t_u / P.sigma_u, P.t_e / P.sigma_e) == pytest.approx(1 / 13.5)
    # r with 2 exp(-r^2/2) = 2**-64 (L12 Lemma 4.3), M = exp(r/alpha + 1/(2 alpha^2))
    r = P.rejection_tail
    assert 2 * math.exp(-r * r / 2) == pytest.approx(2.0**-64)
    assert P.repetitions == pytest.approx(math.exp(r / 13.5 + 1 / (2 * 13.5**2)))
    assert 2.0 < P.repetitions < 2.05
    # statistical distance: 2**-64 / M_V (rejection tail, M_V >= 1 for every batch size) plus
    # 2**-64 (restarts on T)
    assert P.zk_distance_log2 == pytest.approx(math.log2(2.0**-64 + 2.0**-64))
    assert P.zk_distance_log2 <= -63 + 1e-9


def test_smaller_batches_reject_less_with_the_same_masks() -> None:
    """L12 Thm 4.6 with alpha_V = sigma / T_V: M_V = exp(r d_V + d_V^2 / 2), d_V the shift bound
    in the metric diag(sigma_u, sigma_e); the masks (what a verifier checks) never change."""
    r = P.rejection_tail
    previous = 0.0
    for chunks in range(1, PROOF_BATCH + 1):
        bounds = P.rejection(chunks)
        d = math.sqrt((bounds.t_u / P.sigma_u) ** 2 + (bounds.t_e / P.sigma_e) ** 2)
        assert bounds.repetitions == pytest.approx(math.exp(r * d + d * d / 2))
        assert previous < bounds.t_u <= P.t_u and bounds.t_e <= P.t_e
        previous = bounds.t_u
    full = P.rejection(PROOF_BATCH)
    assert (full.t_u, full.t_e, full.repetitions) == (P.t_u, P.t_e, P.repetitions)
    assert 1.07 < P.rejection(1).repetitions < 1.09
    with pytest.raises(ValueError, match="chunks"):
        P.rejection(PROOF_BATCH + 1)
    with pytest.raises(ValueError, match="chunks"):
        P.rejection(0)


def test_one_chunk_shift_bound_holds_for_honest_witnesses() -> None:
    rng = SeededRandom(12)
    bounds = P.rejection(1)
    for trial in range(8):
        u = ternary(N, rng)[None, :]
        e = rounded_gaussian(N, 3.2, rng, tail=KEY_ERROR_TAIL)[None, :]
        w = challenge_matrix(bytes([trial]) * 32, P.rows, 1)
        assert float((_small_product(w, u).astype(float) ** 2).sum()) < bounds.t_u**2
        assert float((_small_product(w, e).astype(float) ** 2).sum()) < bounds.t_e**2


def test_acceptance_rate_is_one_over_m_v() -> None:
    """A shift at the honest bound is kept with probability 1/M_V (up to the 2**-64 tail)."""
    from fhe_agg.hazmat.zkparams import derive_parameters
    from fhe_agg.hazmat.zkproof import _accept

    small = derive_parameters(64, batch=16, rows=24)
    bounds = small.rejection(2)
    gen = np.random.default_rng(4)
    rng = SeededRandom(5)
    trials, kept = 3000, 0
    for _ in range(trials):
        shift_u = np.zeros((small.rows, small.n), dtype=np.int64)
        shift_e = np.zeros((small.rows, small.n), dtype=np.int64)
        shift_u[0, 0] = math.floor(bounds.t_u / math.sqrt(2))  # d = 1/alpha_V, the worst case
        shift_e[0, 0] = math.floor(bounds.t_e / math.sqrt(2))
        y_u = np.rint(gen.normal(0, small.sigma_u, shift_u.shape)).astype(np.int64)
        y_e = np.rint(gen.normal(0, small.sigma_e, shift_e.shape)).astype(np.int64)
        kept += _accept(small, bounds, (y_u + shift_u, shift_u), (y_e + shift_e, shift_e), rng)
    rate, expected = kept / trials, 1 / bounds.repetitions
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / trials)


def test_row_norm_bound_is_the_smallest_with_a_2_pow_64_honest_failure() -> None:
    def log2_tail(k: float) -> float:  # L12 Lemma 4.4: P[||z|| > k sigma sqrt(m)]
        return N * (math.log(k) + (1 - k * k) / 2) / math.log(2)

    k = P.beta_u / (math.sqrt(P.sigma_u**2 + 1 / 12) * math.sqrt(N))
    assert k == pytest.approx(P.beta_e / (math.sqrt(P.sigma_e**2 + 1 / 12) * math.sqrt(N)))
    assert log2_tail(k) + math.log2(2 * P.rows) <= -64 + 1e-6
    assert log2_tail(k - 1e-4) + math.log2(2 * P.rows) > -64
    assert 1.05 < k < 1.1


def test_widths_are_the_smallest_that_fit_the_tail() -> None:
    tau = math.sqrt(2 * math.log(2 * P.rows * N * 2**6))  # 2**-6: an honest overflow restarts
    for width, sigma in ((P.width_u, P.sigma_u), (P.width_e, P.sigma_e)):
        assert (1 << (width - 1)) - 1 >= tau * sigma
        assert (1 << (width - 2)) - 1 < tau * sigma
    assert (P.width_u, P.width_e) == (21, 23)


def test_extraction_bounds_and_slack() -> None:
    bounds = extraction_bounds(N)
    assert bounds.u_l2 == pytest.approx(2 * P.beta_u)
    assert bounds.e1_l2 == pytest.approx(2 * P.beta_e)
    honest_u, honest_e = math.sqrt(N * 2 / 3), math.sqrt(N * error_variance())
    slack_u = math.log2(bounds.u_l2 / honest_u)
    slack_e = math.log2(bounds.e1_l2 / honest_e)
    assert 18.5 < slack_u < 19 and 18.5 < slack_e < 19
    assert P.slack_bits == pytest.approx((slack_u, slack_e))
    # the extracted relation is an integer one: 2 beta far below every data prime
    assert bounds.e1_l2 < 2.0**30


@pytest.mark.parametrize(("preset", "limit"), [("precise", 0.5), ("dp", 0.6)])
def test_proof_size_against_the_ciphertexts(preset: str, limit: float) -> None:
    backend = backend_for(get_preset(preset))
    size = proof_size_bound(N, backend.data_primes)
    assert size == 4 + 32 + P.rows * N * (P.width_u + P.width_e) // 8
    ratio = size / (PROOF_BATCH * backend.ciphertext_bytes)
    assert ratio <= limit
