"""Shamir sharing over R_Q: every t-subset reconstructs exactly, every (t-1)-subset does not."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from fhe_agg.ckks._random import SeededRandom
from fhe_agg.hazmat.rns import U64, add_mod
from fhe_agg.hazmat.sampling import uniform_mod
from fhe_agg.hazmat.shamir import lagrange_coefficients, scale_share, share_polynomial

# Real SEAL primes (1 mod 2N for N = 8192): one 60-bit, two 50-bit.
Q60 = 1152921504606748673
Q50A = 1125899906629633
Q50B = 1125899906826241
PRIMES = (Q60, Q50A, Q50B)
N = 64


def random_poly(primes: tuple[int, ...], seed: int) -> U64:
    rng = SeededRandom(seed)
    return np.stack([uniform_mod(N, q, rng) for q in primes])


def combine(shares: dict[int, U64], subset: tuple[int, ...], primes: tuple[int, ...]) -> U64:
    lambdas = lagrange_coefficients(subset, primes)
    total = np.zeros_like(shares[subset[0]])
    for j in subset:
        scaled = scale_share(shares[j], lambdas[j], primes)
        total = np.stack([add_mod(total[i], scaled[i], q) for i, q in enumerate(primes)])
    return total


@pytest.mark.parametrize("primes", [PRIMES, (Q60,), (Q50A, Q50B)])
def test_three_of_five_every_subset(primes: tuple[int, ...]) -> None:
    secret = random_poly(primes, 1)
    shares = share_polynomial(secret, threshold=3, holders=5, primes=primes, rng=SeededRandom(2))
    assert sorted(shares) == [1, 2, 3, 4, 5]
    for j, share in shares.items():
        assert share.shape == secret.shape and share.dtype == np.uint64
        assert not np.array_equal(share, secret), j
        for i, q in enumerate(primes):
            assert int(share[i].max()) < q
    for subset in combinations(range(1, 6), 3):
        np.testing.assert_array_equal(combine(shares, subset, primes), secret)
    for pair in combinations(range(1, 6), 2):
        wrong = combine(shares, pair, primes)
        # A (t-1)-subset's combination is unrelated to the secret: no row matches, and
        # almost no coefficient does (probability ~ N / q per prime).
        assert not np.array_equal(wrong, secret)
        assert int(np.sum(wrong == secret)) == 0


def test_larger_subsets_also_reconstruct() -> None:
    secret = random_poly(PRIMES, 3)
    shares = share_polynomial(secret, threshold=3, holders=5, primes=PRIMES, rng=SeededRandom(4))
    for size in (4, 5):
        for subset in combinations(range(1, 6), size):
            np.testing.assert_array_equal(combine(shares, subset, PRIMES), secret)


def test_threshold_equals_holders() -> None:
    secret = random_poly(PRIMES, 5)
    shares = share_polynomial(secret, threshold=4, holders=4, primes=PRIMES, rng=SeededRandom(6))
    np.testing.assert_array_equal(combine(shares, (1, 2, 3, 4), PRIMES), secret)
    for subset in combinations(range(1, 5), 3):
        assert not np.array_equal(combine(shares, subset, PRIMES), secret)


def test_threshold_one_shares_are_the_secret() -> None:
    secret = random_poly(PRIMES, 7)
    shares = share_polynomial(secret, threshold=1, holders=3, primes=PRIMES, rng=SeededRandom(8))
    for share in shares.values():
        np.testing.assert_array_equal(share, secret)
    assert lagrange_coefficients([2], PRIMES) == {2: (1, 1, 1)}


def test_shares_depend_on_randomness_only_through_rng() -> None:
    secret = random_poly(PRIMES, 9)
    a = share_polynomial(secret, threshold=2, holders=3, primes=PRIMES, rng=SeededRandom(10))
    b = share_polynomial(secret, threshold=2, holders=3, primes=PRIMES, rng=SeededRandom(10))
    c = share_polynomial(secret, threshold=2, holders=3, primes=PRIMES, rng=SeededRandom(11))
    for j in a:
        np.testing.assert_array_equal(a[j], b[j])
        assert not np.array_equal(a[j], c[j])


def test_lagrange_known_answer() -> None:
    # T = {1, 2, 3}: lambda = (3, -3, 1) at zero, as integers.
    q = 97
    assert lagrange_coefficients((1, 2, 3), (q,)) == {1: (3,), 2: (q - 3,), 3: (1,)}
    # T = {2, 5}: lambda_2 = 5/3, lambda_5 = -2/3.
    lam = lagrange_coefficients([2, 5], (q,))
    assert lam[2][0] * 3 % q == 5 and lam[5][0] * 3 % q == q - 2


def test_scale_share_matches_python_integers() -> None:
    share = random_poly(PRIMES, 12)
    coefficient = (Q60 - 1, 123456789, Q50B - 2)
    out = scale_share(share, coefficient, PRIMES)
    for i, q in enumerate(PRIMES):
        expected = [int(x) * coefficient[i] % q for x in share[i]]
        assert out[i].tolist() == expected


def test_small_prime_accepts_holders_just_below_it() -> None:
    primes = (17,)
    secret = np.array([[5, 0, 16, 3]], dtype=np.uint64)
    shares = share_polynomial(secret, threshold=16, holders=16, primes=primes, rng=SeededRandom(1))
    np.testing.assert_array_equal(combine(shares, tuple(range(1, 17)), primes), secret)
    with pytest.raises(ValueError, match="holders"):
        share_polynomial(secret, threshold=2, holders=17, primes=primes, rng=SeededRandom(1))


@pytest.mark.parametrize(
    ("threshold", "holders", "name"),
    [(0, 5, "threshold"), (6, 5, "threshold"), (-1, 5, "threshold"), (1, 0, "holders")],
)
def test_share_rejects_bad_counts(threshold: int, holders: int, name: str) -> None:
    secret = random_poly(PRIMES, 13)
    with pytest.raises(ValueError, match=name):
        share_polynomial(
            secret, threshold=threshold, holders=holders, primes=PRIMES, rng=SeededRandom(1)
        )


def test_share_rejects_bad_secret() -> None:
    good = random_poly(PRIMES, 14)
    rng = SeededRandom(1)
    with pytest.raises(ValueError, match="secret"):
        share_polynomial(good[:2], threshold=2, holders=3, primes=PRIMES, rng=rng)
    with pytest.raises(ValueError, match="secret"):
        share_polynomial(good[0], threshold=2, holders=3, primes=PRIMES, rng=rng)
    unreduced = good.copy()
    unreduced[1, 0] = np.uint64(Q50A)
    with pytest.raises(ValueError, match="secret"):
        share_polynomial(unreduced, threshold=2, holders=3, primes=PRIMES, rng=rng)
    with pytest.raises(TypeError, match="secret"):
        share_polynomial(good.astype(np.int64), threshold=2, holders=3, primes=PRIMES, rng=rng)
    with pytest.raises(TypeError, match="threshold"):
        share_polynomial(good, threshold=2.0, holders=3, primes=PRIMES, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="primes"):
        share_polynomial(good, threshold=2, holders=3, primes=(Q60, Q50A, 1 << 62), rng=rng)


def test_lagrange_rejects_bad_indices() -> None:
    with pytest.raises(ValueError, match="indices"):
        lagrange_coefficients([], PRIMES)
    with pytest.raises(ValueError, match="indices"):
        lagrange_coefficients([1, 2, 2], PRIMES)
    with pytest.raises(ValueError, match="indices"):
        lagrange_coefficients([0, 1], PRIMES)
    with pytest.raises(ValueError, match="indices"):
        lagrange_coefficients([1, 17], (17,))


def test_scale_share_rejects_bad_coefficient() -> None:
    share = random_poly(PRIMES, 15)
    with pytest.raises(ValueError, match="coefficient"):
        scale_share(share, (1, 2), PRIMES)
    with pytest.raises(ValueError, match="coefficient"):
        scale_share(share, (1, Q50A, 3), PRIMES)
    with pytest.raises(ValueError, match="share"):
        scale_share(share[:1], (1, 2, 3), PRIMES)
