"""DP and flooding noise is not cut at 6 sigma: its tail reaches 14 sigma, and the accounting
adds exactly what the 14-sigma cut costs to delta."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from fhe_agg.ckks._dp import MAX_NOISE_DRAWS, PrivacyAccountant, truncation_delta
from fhe_agg.ckks._random import SeededRandom
from fhe_agg.hazmat.sampling import (
    KEY_ERROR_TAIL,
    MAX_RADIUS,
    NOISE_TAIL,
    rounded_gaussian,
    tail_mass,
)

SIGMA = 2.0**40  # the size of a flooding Gaussian


class Scripted:
    """A RandomSource that plays given 53-bit words (as the sampler reads them), then a seeded
    stream: it stands for the rare draws a CSPRNG makes once in ``2**53``."""

    def __init__(self, *words: int) -> None:
        self._script = b"".join(struct.pack("<Q", w << 11) for w in words)
        self._rest = SeededRandom(1)

    def bytes(self, n: int) -> bytes:
        head, self._script = self._script[:n], self._script[n:]
        return head + self._rest.bytes(n - len(head))


def _radius_words(r: float) -> tuple[int, int, int]:
    """Words that make Box-Muller's first uniform ``e**(-r**2 / 2)`` (for ``r > 8.6``)."""
    u1 = math.exp(-(r**2) / 2)
    assert u1 < 2.0**-53
    return 0, round(u1 * 2.0**106), 0  # w0 = 0 (the rare case), then w1, w2


def test_a_draw_far_beyond_six_sigma_is_kept() -> None:
    w0, w1, w2 = _radius_words(9.0)
    # draw order: u1 words for the pair, its refinement (w1, w2), then u2 = 2**-53 (cos ~ 1)
    sample = rounded_gaussian(2, SIGMA, Scripted(w0, w1, w2, 0))
    assert sample[0] / SIGMA == pytest.approx(9.0, abs=1e-6)  # 9 sigma, kept (was redrawn)
    assert abs(sample[1]) / SIGMA < 1e-3  # sin(2 pi 2**-53) ~ 0


def test_a_draw_beyond_the_noise_tail_is_redrawn_and_key_errors_stay_at_six() -> None:
    w0, w1, w2 = _radius_words(14.5)  # within MAX_RADIUS, beyond NOISE_TAIL
    assert NOISE_TAIL < 14.5 < MAX_RADIUS
    sample = rounded_gaussian(2, SIGMA, Scripted(w0, w1, w2, 0))
    assert np.all(np.abs(sample) <= NOISE_TAIL * SIGMA)
    assert abs(sample[0]) / SIGMA < 7.0  # the next, ordinary draw
    w0, w1, w2 = _radius_words(9.0)
    key_error = rounded_gaussian(2, 3.2, Scripted(w0, w1, w2, 0), tail=KEY_ERROR_TAIL)
    assert np.all(np.abs(key_error) <= 6 * 3.2)
    with pytest.raises(ValueError, match="tail"):
        rounded_gaussian(2, SIGMA, SeededRandom(1), tail=15.0)  # the sampler cannot reach it


def test_the_tail_of_many_seeded_draws_has_gaussian_mass() -> None:
    draws = rounded_gaussian(2_000_000, 1.0e6, SeededRandom(20)).astype(np.float64) / 1.0e6
    for t in (3.0, 4.0):
        expected = tail_mass(t) * draws.size
        got = int(np.sum(np.abs(draws) > t))
        assert abs(got - expected) < 5 * math.sqrt(expected), (t, got, expected)


def test_the_accounted_delta_is_what_the_sampler_cuts() -> None:
    eta_1 = math.erfc(NOISE_TAIL / math.sqrt(2))  # the sampler's cut, recomputed
    assert tail_mass(NOISE_TAIL) == eta_1 < 2e-44
    accountant = PrivacyAccountant(delta=1e-5)
    assert accountant.truncation_delta == 0.0
    for _ in range(3):
        accountant.spend(1.0)
    eps = accountant.epsilon
    expected = (1 + math.exp(eps)) * 3 * MAX_NOISE_DRAWS * eta_1
    assert accountant.truncation_delta == pytest.approx(expected, rel=1e-12)
    assert accountant.total_delta == accountant.delta + accountant.truncation_delta
    assert truncation_delta(eps, 3) < 1e-20  # negligible, and stated
    # the 6-sigma cut it replaces cost more than delta = 1e-5 in one release at z = 0.5
    assert tail_mass(6.0 - 1 / 0.5) - tail_mass(6.0) > 3e-5
    assert truncation_delta(800.0, 1) == 1.0 and truncation_delta(800.0, 0) == 0.0
