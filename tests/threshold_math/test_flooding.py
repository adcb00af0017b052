"""Flooding sized from proven bounds in the KL notion: every number recomputed from its derivation.

The derivation is in :mod:`fhe_agg.ckks._flooding` and ``docs/key-safety.md`` §flooding. The worked
example is the issue's target run: N = 8192, 5 key holders, threshold 3, 8 clients,
s = 40, tau = 2**16 per holder.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from fhe_agg import DpPolicy, FederationConfig, SeededRandom, UnsupportedParameters
from fhe_agg.ckks._flooding import (
    KEY_TAIL_BITS,
    FloodingPolicy,
    chunk_noise_linf,
    ciphertext_noise_bound,
    flooding_kl,
    flooding_security_bits,
    flooding_sigma,
    gaussian_tail_sigmas,
    key_l2_bounds,
    proven_noise_l2,
    releases_per_epoch,
    slot_noise_std,
    subgaussian_norm_bound,
)
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import to_ntt_batch, wide_to_ntt_batch
from fhe_agg.hazmat.sampling import (
    EXACT_SIGMA_BITS,
    MAX_RADIUS,
    NOISE_TAIL,
    WideNoise,
    flooding_gaussian,
    flooding_step,
    rounded_gaussian,
    ternary,
)
from fhe_agg.hazmat.zkproof import extraction_bounds

N, HOLDERS, THRESHOLD, CLIENTS, TAU, S = 8192, 5, 3, 8, 2**16, 40
POLICY = FloodingPolicy(statistical_bits=S, budget=TAU)


def _hkz(dim: int, proxy: float, bits: int) -> float:
    t = bits * math.log(2)
    return math.sqrt(proxy * (dim + 2 * math.sqrt(dim * t) + 2 * t))


def test_key_norm_bounds_recomputed_and_they_hold_for_sampled_keys() -> None:
    s_l2, e_l2 = key_l2_bounds(N, HOLDERS)
    assert s_l2 == pytest.approx(_hkz(N, HOLDERS, 64), rel=1e-12)
    assert e_l2 == pytest.approx(_hkz(N, HOLDERS * 3.7**2, 64), rel=1e-12)
    assert (round(s_l2), round(e_l2)) == (218, 806)
    assert subgaussian_norm_bound(N, HOLDERS, KEY_TAIL_BITS) == s_l2
    rng = SeededRandom(5)
    for _ in range(5):  # the joint key of 5 holders: sums of their ternary secrets and errors
        s = sum(ternary(N, rng) for _ in range(HOLDERS))
        e = sum(rounded_gaussian(N, 3.2, rng) for _ in range(HOLDERS))
        assert np.linalg.norm(s) <= s_l2 and np.linalg.norm(e) <= e_l2
        # not loose beyond the proxy-vs-variance gap and the 2**-64 tail
        assert np.linalg.norm(s) > s_l2 / 1.6 and np.linalg.norm(e) > e_l2 / 1.4
    # one holder: capped by nothing; many: never above the worst case
    assert key_l2_bounds(16, 1)[0] <= 4.0 and key_l2_bounds(16, 1)[1] <= 19 * 4.0


def _negacyclic(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    n = f.size
    full = np.convolve(f, g)
    out = full[:n].copy()
    out[: n - 1] -= full[n:]
    return out


def test_a_negacyclic_coefficient_is_bounded_by_cauchy_schwarz_and_it_is_tight() -> None:
    rng = np.random.default_rng(1)
    n = 64
    for _ in range(50):
        f, g = rng.integers(-99, 100, n), rng.integers(-9, 10, n)
        prod = _negacyclic(f, g)
        assert np.max(np.abs(prod)) <= np.linalg.norm(f) * np.linalg.norm(g) + 1e-9
    # f aligned with g's signed reversal reaches the bound at coefficient n - 1
    g = rng.integers(-9, 10, n)
    f = g[::-1].copy()
    assert _negacyclic(f, g)[n - 1] == pytest.approx(np.linalg.norm(f) * np.linalg.norm(g))


def test_proven_noise_of_the_target_run() -> None:
    bounds = extraction_bounds(N)
    s_l2, e_l2 = key_l2_bounds(N, HOLDERS)
    linf = bounds.u_l2 * e_l2 + bounds.e1_l2 * s_l2
    assert chunk_noise_linf(bounds.u_l2, bounds.e1_l2, n=N, holders=HOLDERS) == pytest.approx(linf)
    b2 = proven_noise_l2(N, HOLDERS, CLIENTS, bounds.u_l2, bounds.e1_l2)
    assert b2 == pytest.approx(CLIENTS * math.sqrt(N) * linf, rel=1e-12)
    assert math.log2(b2) == pytest.approx(45.0, abs=0.5)  # moves with the proof parameters
    # an honest chunk's own term is ~2**16.5 in l2 (u ternary, e1 ~ 3.2): the slack is ~2**28
    honest = math.sqrt(2 * N / 3) * e_l2 + 3.2 * math.sqrt(N) * s_l2
    assert math.log2(CLIENTS * math.sqrt(N) * honest / b2) == pytest.approx(-18.7, abs=0.5)


def test_releases_per_epoch_and_the_sigma_of_the_target_run() -> None:
    releases = releases_per_epoch(TAU, HOLDERS, THRESHOLD)
    assert releases == 5 * 2**16 // 3 == 109_226
    bounds = extraction_bounds(N)
    b2 = proven_noise_l2(N, HOLDERS, CLIENTS, bounds.u_l2, bounds.e1_l2)
    sigma = flooding_sigma(POLICY, b2, releases, n=N)
    step = flooding_step(sigma)
    assert step == 2 ** (math.ceil(math.log2(sigma)) - EXACT_SIGMA_BITS) == 2**28
    expected = (b2 + step * math.sqrt(N)) * math.sqrt(releases / 2) * 2**20
    assert sigma == pytest.approx(expected, rel=1e-12)
    assert math.log2(sigma) == pytest.approx(73.0, abs=0.5)
    kl = releases * (b2 + step * math.sqrt(N)) ** 2 / (2 * sigma**2)
    assert flooding_kl(sigma, b2, releases, n=N) == pytest.approx(kl) == pytest.approx(2.0**-40)
    assert flooding_security_bits(sigma, b2, releases, n=N) == pytest.approx(40.0, abs=1e-9)


def test_the_former_formula_gave_31_6_to_36_8_bits_in_this_notion() -> None:
    """sigma = sqrt(12 tau) 2**(s/2) B_ct with a per-coefficient B_ct (a 6-sigma bound): over tau
    releases of N coefficients the KL is tau ||x||**2 / (2 sigma**2) with ||x||**2 = N B_ct**2 at
    worst, N (B_ct / 6)**2 on average."""
    b_ct = ciphertext_noise_bound(N, 5, 100, special_prime=True)  # threshold-ckks.md §3.6
    old = math.sqrt(12 * TAU) * 2**20 * b_ct
    worst = -math.log2(TAU * N * b_ct**2 / (2 * old**2))
    average = -math.log2(TAU * N * (b_ct / 6) ** 2 / (2 * old**2))
    assert worst == pytest.approx(40 - math.log2(N / 24)) == pytest.approx(31.58, abs=0.01)
    assert average == pytest.approx(40 - math.log2(N / 24 / 36)) == pytest.approx(36.75, abs=0.01)


@pytest.mark.parametrize("bits", [1, 40, 56])
@pytest.mark.parametrize("releases", [1, 2**10, 109_226])
def test_security_bits_invert_sigma(bits: int, releases: int) -> None:
    b2 = proven_noise_l2(4096, 3, 17, 1e6, 4e6)
    sigma = flooding_sigma(FloodingPolicy(statistical_bits=bits, budget=1), b2, releases, n=4096)
    assert flooding_security_bits(sigma, b2, releases, n=4096) == pytest.approx(bits, abs=1e-6)
    # twice the noise: two bits more, less what the sampler's coarser step costs
    assert bits + 1.4 < flooding_security_bits(sigma * 2, b2, releases, n=4096) <= bits + 2 + 1e-9


def test_the_two_level_sampler_caps_the_reachable_security() -> None:
    """``step ~ sigma / 2**45`` costs ``R (step sqrt(N))**2 / (2 sigma**2) ~ R 2**-77`` of KL
    whatever ``sigma``: 128 bits are out of reach, and a configuration asking for them is
    refused rather than silently weaker."""
    b2 = proven_noise_l2(N, HOLDERS, CLIENTS, 1e6, 4e6)
    sigma = flooding_sigma(FloodingPolicy(statistical_bits=128, budget=1), b2, 2**10, n=N)
    assert flooding_security_bits(sigma, b2, 2**10, n=N) < 70
    with pytest.raises(UnsupportedParameters, match="bits of flooding security"):
        _target(flooding=FloodingPolicy(statistical_bits=128))


def test_security_bits_floor_at_zero_and_fall_with_releases() -> None:
    assert flooding_security_bits(1.0, 1000.0, 2**15, n=N) == 0.0
    high = flooding_security_bits(2.0**40, 1000.0, 2**15, n=N)
    assert flooding_security_bits(2.0**40, 1000.0, 2**16, n=N) == pytest.approx(high - 1)


def test_a_real_tail_over_every_coefficient_of_the_epoch() -> None:
    k = gaussian_tail_sigmas(2**29, 40)
    assert 2**29 * math.erfc(k / math.sqrt(2)) == pytest.approx(2.0**-40, rel=1e-6)
    assert k == pytest.approx(9.52, abs=0.01)  # the Chernoff bound 2 exp(-k^2/2) gives 9.85
    assert math.sqrt(2 * math.log(2 * 2**69)) == pytest.approx(9.85, abs=0.01)
    assert k > 6.0 and gaussian_tail_sigmas(1, 40) == pytest.approx(7.1, abs=0.05)


def test_wide_flooding_noise_has_its_sigma_and_reaches_ntt_exactly() -> None:
    assert flooding_step(2.0**45) == 1 and flooding_step(2.0**45 * 1.01) == 2
    rng = SeededRandom(9)
    noise = flooding_gaussian(200_000, 2.0**50, rng)
    assert noise.step == 32
    values = noise.high.astype(np.float64) * noise.step + noise.low
    assert np.std(values) == pytest.approx(2.0**50, rel=0.01)
    assert np.all((noise.low >= -16) & (noise.low < 16))
    small = WideNoise(noise.high[:2048].reshape(1, 2048), noise.low[:2048].reshape(1, 2048), 32)
    primes = backend_for(PRESETS["precise"]).data_primes
    exact = small.high * 32 + small.low  # fits int64 at this size
    assert np.array_equal(wide_to_ntt_batch(small, 2048, primes), to_ntt_batch(exact, 2048, primes))


def test_the_flooding_sampler_is_cut_at_the_noise_tail() -> None:
    """The coarse part is the project's rounded Gaussian at its default cut (14 sigma, whose
    radius a refined uniform can reach); the offset never leaves its step."""
    noise = flooding_gaussian(10_000, 1000.0, SeededRandom(3))
    assert np.max(np.abs(noise.high)) <= NOISE_TAIL * 1000 and noise.step == 1
    assert not noise.low.any() and MAX_RADIUS > NOISE_TAIL


# -- the configuration ----------------------------------------------------------------------------


def _target(**kw: object) -> FederationConfig:
    args: dict[str, object] = {
        "preset": PRESETS["precise"],
        "min_clients": 3,
        "max_clients": CLIENTS,
        "max_weight": 85.0,  # fhe-agg simulate: weights 15..85, total 400
        "value_bound": 1.0,
        "holders": HOLDERS,
        "threshold": THRESHOLD,
        **kw,
    }
    return FederationConfig(**args)  # type: ignore[arg-type]


def test_the_target_run_keeps_40_bits_and_1e_6() -> None:
    config = _target()
    assert config.flooding_security_bits == pytest.approx(40.0, abs=1e-9)
    assert math.log2(config.holder_noise_sigma) == pytest.approx(73.0, abs=0.5)
    # 120-bit q: 3 bits of headroom, 9.9 bits for 8 x 85 x 1 x sqrt(2), the rest is scale
    assert config.scale_bits == math.floor(120 - 3 - math.log2(8 * 85 * math.sqrt(2))) == 107
    std = slot_noise_std(config.holder_noise_sigma, N, THRESHOLD) / 2**107 / 400
    assert config.released_noise_std / 400 == pytest.approx(std)
    assert math.log2(std) == pytest.approx(-36.0, abs=0.5)  # ~1.5e-11 per real of the mean
    assert 5.5 * std < 1e-10  # the largest of 1e6 reals stays within ~5.3 std
    # compact holds it too, at lower precision; the former 60-bit compact could not
    assert _target(preset=PRESETS["compact"]).released_noise_std / 400 < 2e-5


def test_a_modulus_too_small_for_the_proven_flooding_is_refused() -> None:
    with pytest.raises(UnsupportedParameters, match="does not fit"):
        _target(preset=PRESETS["compact"], max_clients=10**8, min_clients=3)


def test_dp_only_carries_a_budget_and_refuses_too_little_noise() -> None:
    """Issue 15 item 2: with dp and flooding=None the budget used to be None and any noise was
    accepted (32 bits at tau = 2**16 for max_clients 1000, z = 0.5, in the old notion)."""
    weak = {"max_clients": 1000, "dp": DpPolicy(clip=1.0, noise_multiplier=0.5), "flooding": None}
    with pytest.raises(UnsupportedParameters, match="bits of flooding security"):
        _target(preset=PRESETS["dp"], max_weight=1.0, **weak)
    strong = _target(
        preset=PRESETS["dp"],
        max_weight=1.0,
        flooding=None,
        dp=DpPolicy(clip=1.0, noise_multiplier=1e6),
    )
    assert strong.decryption_budget == FloodingPolicy().budget
    assert strong.flooding_policy == FloodingPolicy()
    assert strong.flooding_security_bits >= 40


def test_central_dp_without_flooding_is_refused_for_a_threshold_key() -> None:
    with pytest.raises(UnsupportedParameters, match="flooding"):
        _target(flooding=None, dp=DpPolicy(clip=1.0, noise_multiplier=1.0, mode="central"))


def test_policy_defaults_frozen_and_validated() -> None:
    policy = FloodingPolicy()
    assert (policy.statistical_bits, policy.budget) == (40, 2**16)
    with pytest.raises(FrozenInstanceError):
        policy.budget = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="statistical_bits"):
        FloodingPolicy(statistical_bits=0)
    with pytest.raises(ValueError, match="budget"):
        FloodingPolicy(budget=0)
    with pytest.raises(TypeError, match="budget"):
        FloodingPolicy(budget=2.0**16)  # type: ignore[arg-type]


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="clients"):
        proven_noise_l2(N, 5, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="holders"):
        key_l2_bounds(N, 0)
    with pytest.raises(ValueError, match="noise_l2"):
        flooding_sigma(POLICY, 0.0, 1, n=N)
    with pytest.raises(ValueError, match="noise_l2"):
        flooding_sigma(POLICY, math.inf, 1, n=N)
    with pytest.raises(ValueError, match="sigma"):
        flooding_security_bits(math.nan, 1.0, 1, n=N)
    with pytest.raises(ValueError, match="parties"):
        slot_noise_std(1.0, N, 0)
    with pytest.raises(ValueError, match="threshold"):
        releases_per_epoch(1, 1, 0)


def test_honest_noise_estimate_without_special_prime() -> None:
    bound = ciphertext_noise_bound(8192, 5, 100, special_prime=False)
    err = 3.2**2
    variance = 8192 * (2 / 3) * 5 * err + err + 8192 * (10 / 3) * err
    assert bound == pytest.approx(6 * 10 * math.sqrt(variance), rel=1e-12)


def test_a_policy_beyond_any_modulus_is_a_value_error_not_an_overflow() -> None:
    """2**(s/2) of a huge s overflowed a float inside FederationConfig (OverflowError)."""
    with pytest.raises(ValueError, match="statistical_bits: 5000 exceeds 256"):
        FloodingPolicy(statistical_bits=5000)
    with pytest.raises(ValueError, match=r"budget: .* exceeds"):
        FloodingPolicy(budget=2**63)
    FloodingPolicy(statistical_bits=256, budget=2**40)  # the largest accepted
