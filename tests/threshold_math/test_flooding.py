"""Flooding sizing pinned on the worked example of threshold-ckks.md §3.6."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import pytest

from fhe_agg._flooding import (
    FloodingPolicy,
    ciphertext_noise_bound,
    flooding_security_bits,
    flooding_sigma,
    slot_noise_std,
)

# threshold-ckks.md §3.6: N = 8192, n = 5 holders, 100 clients, s = 40, tau = 2**15.
EXAMPLE = {"n": 8192, "holders": 5, "clients": 100}
POLICY = FloodingPolicy(statistical_bits=40, budget=2**15)


def test_noise_bound_special_prime_matches_formula_and_example() -> None:
    bound = ciphertext_noise_bound(**EXAMPLE, special_prime=True)
    expected = 6 * math.sqrt(100) * math.sqrt((1 + 8192 * 10 / 3) / 12)
    assert bound == pytest.approx(expected, rel=1e-12)
    assert math.log2(bound) == pytest.approx(11.5, abs=0.1)  # "B_ct ≈ 2^11.5"


def test_noise_bound_without_special_prime() -> None:
    bound = ciphertext_noise_bound(**EXAMPLE, special_prime=False)
    err = 3.2**2
    variance = 8192 * (2 / 3) * 5 * err + err + 8192 * (10 / 3) * err
    assert bound == pytest.approx(6 * 10 * math.sqrt(variance), rel=1e-12)
    # No rounding by a special prime: the key errors stay, ~3.9 bits more noise.
    assert math.log2(bound) == pytest.approx(15.45, abs=0.05)


def test_noise_bound_scales_with_clients_and_holders() -> None:
    one = ciphertext_noise_bound(8192, 5, 1, special_prime=True)
    assert ciphertext_noise_bound(8192, 5, 400, special_prime=True) == pytest.approx(20 * one)
    assert ciphertext_noise_bound(8192, 10, 1, special_prime=True) > one


def test_flooding_sigma_worked_example() -> None:
    bound = ciphertext_noise_bound(**EXAMPLE, special_prime=True)
    sigma = flooding_sigma(POLICY, bound)
    assert math.log2(sigma) == pytest.approx(40.8, abs=0.5)  # "σ_flood ≈ 2^40.8"
    assert sigma == pytest.approx(math.sqrt(12 * 2**15) * 2**20 * bound, rel=1e-12)
    # Without a special prime the same policy needs ~2^44.7.
    plain = flooding_sigma(POLICY, ciphertext_noise_bound(**EXAMPLE, special_prime=False))
    assert math.log2(plain) == pytest.approx(44.7, abs=0.1)


def test_slot_noise_worked_example() -> None:
    # One honest party at 2^40.8 gives slot std 2^40.8 * 64 / Δ ≈ 0.87 at Δ = 2^47.
    std = slot_noise_std(2**40.8, 8192, 1) / 2**47
    assert std == pytest.approx(0.87, abs=0.01)
    assert slot_noise_std(2.0, 8192, 4) == pytest.approx(2.0 * 2 * 64)


@pytest.mark.parametrize("bits", [1, 40, 64, 128])
@pytest.mark.parametrize("budget", [1, 2**10, 2**16])
def test_security_bits_round_trip(bits: int, budget: int) -> None:
    bound = ciphertext_noise_bound(4096, 3, 17, special_prime=False)
    sigma = flooding_sigma(FloodingPolicy(statistical_bits=bits, budget=budget), bound)
    assert flooding_security_bits(sigma, bound, budget) == pytest.approx(bits, abs=1e-9)


def test_security_bits_floor_at_zero_and_monotone() -> None:
    bound = 1000.0
    assert flooding_security_bits(1.0, bound, 2**15) == 0.0
    low = flooding_security_bits(2.0**35, bound, 2**15)
    high = flooding_security_bits(2.0**36, bound, 2**15)
    assert high - low == pytest.approx(2.0)  # one more bit of sigma: two more bits of s
    assert flooding_security_bits(2.0**36, bound, 2**16) < high


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
        ciphertext_noise_bound(8192, 5, 0, special_prime=True)
    with pytest.raises(ValueError, match="holders"):
        ciphertext_noise_bound(8192, 0, 1, special_prime=True)
    with pytest.raises(ValueError, match="noise_bound"):
        flooding_sigma(POLICY, 0.0)
    with pytest.raises(ValueError, match="noise_bound"):
        flooding_sigma(POLICY, math.inf)
    with pytest.raises(ValueError, match="sigma"):
        flooding_security_bits(math.nan, 1.0, 1)
    with pytest.raises(ValueError, match="parties"):
        slot_noise_std(1.0, 8192, 0)
