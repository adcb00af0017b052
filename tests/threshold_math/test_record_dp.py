"""Record-level DP accounting: a pinned epsilon, the honest-site assumption, and refusals."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import pytest

from fhe_agg.ckks._record_dp import (
    RecordDpPolicy,
    RecordPrivacyAccountant,
    calibrate_noise_multiplier,
    record_epsilon,
    require_sites,
)
from fhe_agg.errors import PrivacyBudgetExceeded, ThresholdNotMet

# Poisson-subsampled Gaussian, q = 1/4, sigma = 1.5, 20 steps, delta = 1e-5, add/remove one:
# dp_accounting 0.6.0's RdpAccountant at its *default* orders (computed once with it).
Q, SIGMA, STEPS, DELTA = 0.25, 1.5, 20, 1e-5
PINNED_EPSILON = 4.739392381852909


def test_pinned_epsilon() -> None:
    assert record_epsilon(
        noise_multiplier=SIGMA, sample_rate=Q, steps=STEPS, delta=DELTA
    ) == pytest.approx(PINNED_EPSILON, rel=1e-9)
    # 5 rounds of 4 local steps each, one honest site: the same 20 releases
    policy = RecordDpPolicy(clip=1.0, noise_multiplier=SIGMA, sample_rate=Q, local_steps=4)
    accountant = RecordPrivacyAccountant(policy)
    for _ in range(5):
        accountant.spend_round(sites=1)
    assert (accountant.rounds, accountant.steps) == (5, 20)
    assert accountant.epsilon == pytest.approx(PINNED_EPSILON, rel=1e-9)


def test_pinned_epsilon_recomputed_independently() -> None:
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.rdp import RdpAccountant

    direct = RdpAccountant()  # default orders, default add/remove-one adjacency
    direct.compose(
        dp_accounting.PoissonSampledDpEvent(Q, dp_accounting.GaussianDpEvent(SIGMA)), STEPS
    )
    assert direct.get_epsilon(DELTA) == pytest.approx(PINNED_EPSILON, rel=1e-9)
    # Opacus's own RDP analysis (another implementation, other orders) agrees to 0.1%
    accountants = pytest.importorskip("opacus.accountants")
    opacus_rdp = accountants.RDPAccountant()
    opacus_rdp.history = [(SIGMA, Q, STEPS)]
    assert opacus_rdp.get_epsilon(DELTA) == pytest.approx(PINNED_EPSILON, rel=1e-3)
    # without subsampling the same noise costs far more: the amplification is counted
    full = record_epsilon(noise_multiplier=SIGMA, sample_rate=1.0, steps=STEPS, delta=DELTA)
    assert full > 3 * PINNED_EPSILON


def _policy(sigma: float, h: int, *, local_steps: int = 1) -> RecordDpPolicy:
    return RecordDpPolicy(
        clip=1.0, noise_multiplier=sigma, sample_rate=Q, honest_sites=h, local_steps=local_steps
    )


def _epsilon(policy: RecordDpPolicy, rounds: int) -> float:
    return RecordPrivacyAccountant(policy).epsilon_after(rounds)


def test_one_fewer_honest_site_gives_larger_epsilon_for_the_same_site_noise() -> None:
    # Each site adds noise 0.9 * C. Assuming h honest sites, the sum carries 0.9 * sqrt(h).
    per_site = 0.9
    eps = {h: _epsilon(_policy(per_site * math.sqrt(h), h), 10) for h in (2, 3, 4)}
    assert eps[4] < eps[3] < eps[2]
    assert _policy(per_site * 2, 4).site_noise_multiplier == pytest.approx(per_site)


def test_one_fewer_honest_site_needs_more_site_noise_for_the_same_epsilon() -> None:
    sigma = calibrate_noise_multiplier(target_epsilon=3.0, sample_rate=Q, rounds=10)
    # the total sigma does not depend on h (one local step); each site's share does
    site = {h: _policy(sigma, h).site_noise_multiplier for h in (2, 3, 4)}
    assert site[2] > site[3] > site[4]
    assert site[3] == pytest.approx(sigma / math.sqrt(3))


def test_calibration_meets_the_target_tightly() -> None:
    sigma = calibrate_noise_multiplier(target_epsilon=2.0, sample_rate=Q, rounds=8)
    at = record_epsilon(noise_multiplier=sigma, sample_rate=Q, steps=8, delta=DELTA)
    below = record_epsilon(noise_multiplier=0.99 * sigma, sample_rate=Q, steps=8, delta=DELTA)
    assert at <= 2.0 < below
    # several local steps: only the site's own sigma / sqrt(h) is counted, per step
    many = calibrate_noise_multiplier(
        target_epsilon=2.0, sample_rate=Q, rounds=4, honest_sites=4, local_steps=2
    )
    assert many / 2 == pytest.approx(sigma, rel=2e-3)


def test_several_local_steps_count_only_the_site_own_noise() -> None:
    one = _policy(2.0, 4)
    assert one.accounted_noise_multiplier == 2.0 and one.site_noise_multiplier == 1.0
    several = _policy(2.0, 4, local_steps=3)
    assert several.accounted_noise_multiplier == 1.0
    accountant = RecordPrivacyAccountant(several)
    accountant.spend_round(sites=4)
    own = record_epsilon(noise_multiplier=1.0, sample_rate=Q, steps=3, delta=DELTA)
    assert accountant.epsilon == pytest.approx(own) == pytest.approx(accountant.own_noise_epsilon)


def test_own_noise_floor_when_only_the_record_site_is_honest() -> None:
    accountant = RecordPrivacyAccountant(_policy(2.0, 4))
    for _ in range(5):
        accountant.spend_round(sites=6)
    assert accountant.own_noise_epsilon == pytest.approx(
        record_epsilon(noise_multiplier=1.0, sample_rate=Q, steps=5, delta=DELTA)
    )
    assert accountant.own_noise_epsilon > 2 * accountant.epsilon
    single = RecordPrivacyAccountant(_policy(2.0, 1))
    single.spend_round(sites=1)
    assert single.own_noise_epsilon == single.epsilon


def test_refuses_more_honest_sites_than_sites_in_the_round() -> None:
    policy = _policy(2.0, 3)
    accountant = RecordPrivacyAccountant(policy)
    accountant.spend_round(sites=3)
    before = accountant.epsilon
    with pytest.raises(ThresholdNotMet, match="sites: 2 in the round, fewer than the 3"):
        accountant.spend_round(sites=2)
    assert (accountant.rounds, accountant.epsilon) == (1, before)
    assert require_sites(policy, 3) == 3
    with pytest.raises(ThresholdNotMet):
        require_sites(policy, 2)
    with pytest.raises(ValueError, match="sites"):
        require_sites(policy, 0)


def test_budget_exceeded_records_nothing() -> None:
    budget = RecordPrivacyAccountant(_policy(2.0, 1)).epsilon_after(3)
    accountant = RecordPrivacyAccountant(_policy(2.0, 1), max_epsilon=budget)
    spent = [accountant.spend_round(sites=1) for _ in range(3)]
    assert spent == sorted(spent) and spent[-1] == budget
    with pytest.raises(PrivacyBudgetExceeded, match="record-level epsilon"):
        accountant.spend_round(sites=1)
    assert (accountant.rounds, accountant.epsilon) == (3, budget)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("clip", 0.0, ValueError),
        ("noise_multiplier", math.inf, ValueError),
        ("sample_rate", 0.3, ValueError),  # not 1/k: Opacus could not sample at it
        ("sample_rate", 1.5, ValueError),
        ("delta", 1.0, ValueError),
        ("honest_sites", 0, ValueError),
        ("honest_sites", True, TypeError),
        ("local_steps", 1.0, TypeError),
    ],
)
def test_policy_validation_names_the_field(field: str, value: object, error: type) -> None:
    kwargs: dict[str, object] = {"clip": 1.0, "noise_multiplier": 1.0, "sample_rate": 0.5}
    kwargs[field] = value
    with pytest.raises(error, match=field):
        RecordDpPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_frozen_and_zero_steps_cost_nothing() -> None:
    policy = _policy(1.0, 2)
    with pytest.raises(FrozenInstanceError):
        policy.honest_sites = 1  # type: ignore[misc]
    assert policy.batches_per_epoch == 4
    assert RecordPrivacyAccountant(policy).epsilon == 0.0
    with pytest.raises(TypeError, match="policy"):
        RecordPrivacyAccountant(object())  # type: ignore[arg-type]
