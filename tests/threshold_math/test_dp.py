"""Distributed DP: per-holder noise, the noise actually achieved, and a pinned epsilon."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from fhe_agg.ckks._dp import (
    DpPolicy,
    PrivacyAccountant,
    achieved_noise_multiplier,
    holder_coefficient_sigma,
    per_holder_slot_sigma,
)
from fhe_agg.ckks._flooding import slot_noise_std
from fhe_agg.ckks._random import SeededRandom
from fhe_agg.errors import FheAggError, PrivacyBudgetExceeded
from fhe_agg.hazmat.sampling import rounded_gaussian

# Gaussian mechanism, z = 1, composed 3 times, delta = 1e-5, dp_accounting 0.6.0 RDP accountant
# with its default orders (optimal order 3.6). Computed once with dp_accounting.
PINNED_EPSILON = 9.009958991683897
DEFAULT_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]


def improved_rdp_to_dp(rdp: float, alpha: float, delta: float) -> float:
    """Canonne–Kamath–Steinke 2020 / Balle et al. 2020 conversion used by dp_accounting."""
    return rdp + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)


def test_pinned_epsilon() -> None:
    accountant = PrivacyAccountant(delta=1e-5)
    for _ in range(3):
        accountant.spend(1.0)
    assert accountant.rounds == 3
    assert accountant.epsilon == pytest.approx(PINNED_EPSILON, rel=1e-6)


def test_pinned_epsilon_matches_analytic_rdp() -> None:
    # Gaussian RDP (Mironov 2017, Prop. 7): 3 * alpha / (2 z^2) for three releases at z = 1.
    improved = min(improved_rdp_to_dp(1.5 * a, a, 1e-5) for a in DEFAULT_ORDERS)
    assert improved == pytest.approx(PINNED_EPSILON, rel=1e-9)
    # The classic conversion eps = min_alpha rdp + log(1/delta) / (alpha - 1) is looser, but close.
    alphas = np.linspace(1.01, 100.0, 200_000)
    classic = float(np.min(1.5 * alphas + math.log(1e5) / (alphas - 1)))
    assert PINNED_EPSILON < classic < 1.1 * PINNED_EPSILON


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    accountant = PrivacyAccountant(delta=1e-5)
    assert accountant.epsilon == 0.0
    eps = [accountant.spend(1.0) for _ in range(4)]
    assert eps == sorted(eps) and len(set(eps)) == 4
    noisy = PrivacyAccountant(delta=1e-5)
    for _ in range(4):
        noisy.spend(2.0)
    assert noisy.epsilon < accountant.epsilon
    mixed = PrivacyAccountant(delta=1e-5)
    mixed.spend(1.0)
    mixed.spend(2.0)
    assert noisy.epsilon < mixed.epsilon < accountant.epsilon
    assert dict(mixed.releases) == {1.0: 1, 2.0: 1}


def test_budget_refusal_leaves_state_unchanged() -> None:
    accountant = PrivacyAccountant(delta=1e-5, max_epsilon=8.0)
    first = accountant.spend(1.0)
    second = accountant.spend(1.0)
    assert first < second < 8.0
    with pytest.raises(PrivacyBudgetExceeded) as info:
        accountant.spend(1.0)  # three releases: 9.01 > 8
    assert isinstance(info.value, FheAggError)
    assert accountant.rounds == 2
    assert accountant.epsilon == second
    assert dict(accountant.releases) == {1.0: 2}
    # A noisier release still fits and is recorded.
    assert accountant.spend(20.0) <= 8.0
    assert accountant.rounds == 3


def test_epsilon_after_does_not_record() -> None:
    accountant = PrivacyAccountant(delta=1e-5)
    accountant.spend(1.0)
    preview = accountant.epsilon_after(1.0)
    assert accountant.rounds == 1
    assert accountant.spend(1.0) == preview


def test_accountant_validation() -> None:
    with pytest.raises(ValueError, match="delta"):
        PrivacyAccountant(delta=0.0)
    with pytest.raises(ValueError, match="delta"):
        PrivacyAccountant(delta=1.0)
    with pytest.raises(ValueError, match="max_epsilon"):
        PrivacyAccountant(delta=1e-5, max_epsilon=-1.0)
    accountant = PrivacyAccountant(delta=1e-5)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="noise_multiplier"):
            accountant.spend(bad)
    assert accountant.rounds == 0
    policy = DpPolicy(clip=1.0, noise_multiplier=1.0, delta=1e-6)
    assert PrivacyAccountant.for_policy(policy).delta == 1e-6


def test_policy_validation() -> None:
    policy = DpPolicy(clip=1.0, noise_multiplier=0.8)
    assert (policy.delta, policy.honest_holders) == (1e-5, 1)
    with pytest.raises(FrozenInstanceError):
        policy.clip = 2.0  # type: ignore[misc]
    bad: list[tuple[dict[str, object], str]] = [
        ({"clip": 0.0}, "clip"),
        ({"clip": math.inf}, "clip"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": math.nan}, "noise_multiplier"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.5}, "delta"),
        ({"honest_holders": 0}, "honest_holders"),
    ]
    for override, name in bad:
        kwargs: dict[str, object] = {"clip": 1.0, "noise_multiplier": 1.0, **override}
        with pytest.raises(ValueError, match=name):
            DpPolicy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="honest_holders"):
        DpPolicy(clip=1.0, noise_multiplier=1.0, honest_holders=1.5)  # type: ignore[arg-type]


def test_per_holder_sigma_trust_split() -> None:
    one = DpPolicy(clip=2.0, noise_multiplier=1.5)
    assert per_holder_slot_sigma(one, 2.0) == pytest.approx(3.0)
    two = DpPolicy(clip=2.0, noise_multiplier=1.5, honest_holders=4)
    sigma = per_holder_slot_sigma(two, 2.0)
    assert sigma == pytest.approx(1.5)
    # Any 4 honest holders together reach z * sensitivity.
    assert math.sqrt(4) * sigma == pytest.approx(3.0)
    with pytest.raises(ValueError, match="sensitivity"):
        per_holder_slot_sigma(one, 0.0)


def test_holder_sigma_flooding_or_dp_and_achieved_multiplier() -> None:
    n, scale = 8192, 2.0**47
    policy = DpPolicy(clip=1.0, noise_multiplier=0.5)
    # §3.6 example: flooding alone (2^40.8) already gives z ≈ 0.87 at C = 1.
    flood = 2.0**40.8
    sigma = holder_coefficient_sigma(policy, 1.0, n=n, scale=scale, flooding_sigma=flood)
    assert sigma == flood
    z = achieved_noise_multiplier(sigma, n=n, scale=scale, honest_holders=1, sensitivity=1.0)
    assert z == pytest.approx(0.87, abs=0.01)
    # A larger requested z takes over and is achieved exactly.
    strict = DpPolicy(clip=1.0, noise_multiplier=3.0, honest_holders=2)
    sigma = holder_coefficient_sigma(strict, 1.0, n=n, scale=scale, flooding_sigma=flood)
    assert sigma > flood
    z = achieved_noise_multiplier(sigma, n=n, scale=scale, honest_holders=2, sensitivity=1.0)
    assert z == pytest.approx(3.0, rel=1e-12)


def test_rounded_gaussian_coefficients_give_the_predicted_slot_std() -> None:
    # Empirical check of slot_noise_std: CSPRNG coefficient noise from three holders, mapped
    # through the canonical embedding X -> zeta^(2k+1), zeta = exp(i pi / N).
    n, sigma, parties = 1024, 1000.0, 3
    rng = SeededRandom(42)
    coefficients = sum(
        (rounded_gaussian(n, sigma, rng).astype(np.float64) for _ in range(parties)),
        start=np.zeros(n),
    )
    twist = np.exp(1j * np.pi * np.arange(n) / n)
    slots = np.fft.fft(coefficients * twist)[: n // 2]  # one of each conjugate pair
    reals = np.concatenate([slots.real, slots.imag])
    predicted = slot_noise_std(sigma, n, parties)
    assert float(np.std(reals)) == pytest.approx(predicted, rel=0.1)
    assert float(np.std(reals)) != pytest.approx(predicted * math.sqrt(2), rel=0.1)
