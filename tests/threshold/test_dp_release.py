"""Distributed DP inside partial decryptions, central mode, and the privacy accountant."""

from __future__ import annotations

import numpy as np
import pytest
from federation import Round

from fhe_agg import (
    DecryptionSession,
    DpPolicy,
    PartialRequest,
    PrivacyAccountant,
    PrivacyBudgetExceeded,
    SeededRandom,
)
from fhe_agg.ckks._params import PRESETS

from .conftest import WEIGHTS, Federation, Holders, make_federation, threshold_config

PINNED_EPSILON_Z1_THREE_ROUNDS = 9.009958991683897  # dp_accounting RDP, delta 1e-5


def _dp_federation(holders: Holders, mode: str = "distributed") -> Federation:
    policy = DpPolicy(clip=1.0, noise_multiplier=1.0, mode=mode)
    return make_federation(holders, threshold_config(preset=PRESETS["dp"], dp=policy), seed=21)


def _release(
    fed: Federation, round_id: int, accountant: PrivacyAccountant, seed: int | None = None
):
    """A fresh round of ``fed`` released by holders 1, 3, 5 through the coordinator."""
    agg, expected = fed.fresh(round_id)
    members = (1, 3, 5)
    carried = Round(
        agg, fed.key_holders(seed=seed), accountant=accountant, rng=SeededRandom(round_id)
    )
    replies = carried.record(PartialRequest, members)
    mean = carried.run(members)
    return mean, expected, [r.partial for r in replies]  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["distributed", "central"])
def test_released_noise_matches_the_configured_std(five_holders: Holders, mode: str) -> None:
    fed = _dp_federation(five_holders, mode)
    accountant = PrivacyAccountant.for_policy(fed.config.dp)  # type: ignore[arg-type]
    mean, expected, _ = _release(fed, 1, accountant)
    measured = float(np.std(mean - expected))
    wanted = fed.config.released_noise_std / sum(WEIGHTS)
    assert measured == pytest.approx(wanted, rel=0.1)
    assert fed.config.flooding_security_bits >= 40
    if mode == "central":  # the holders added only flooding: far below the DP noise
        assert fed.config.holder_noise_sigma < fed.config.central_noise_std * fed.config.scale


def test_dp_noise_comes_from_the_seeded_csprng_seam(five_holders: Holders) -> None:
    fed = _dp_federation(five_holders)
    aggregate, evidence, _ = fed.round(2)
    members = (1, 2, 3)

    def partial(seed: int) -> np.ndarray:
        h = fed.key_holders(seed=seed)[1]
        return fed.partial(h, aggregate, evidence, members).data

    assert np.array_equal(partial(5), partial(5))
    assert not np.array_equal(partial(5), partial(6))


def test_three_releases_spend_the_pinned_epsilon(five_holders: Holders) -> None:
    fed = _dp_federation(five_holders)
    assert fed.config.noise_multiplier == pytest.approx(1.0)
    accountant = PrivacyAccountant.for_policy(fed.config.dp)  # type: ignore[arg-type]
    for round_id in (10, 11, 12):
        _release(fed, round_id, accountant)
    assert accountant.rounds == 3
    assert accountant.epsilon == pytest.approx(PINNED_EPSILON_Z1_THREE_ROUNDS, rel=1e-9)


def test_a_release_beyond_max_epsilon_is_refused_before_any_partial(five_holders: Holders) -> None:
    fed = _dp_federation(five_holders)
    accountant = PrivacyAccountant(delta=1e-5, max_epsilon=0.5)
    aggregate, _, _ = fed.round(20)
    with pytest.raises(PrivacyBudgetExceeded, match="no partial"):
        DecryptionSession(
            aggregate,
            config=fed.config,
            layout=fed.layout,
            decrypting_set=(1, 2, 3),
            accountant=accountant,
        )
    assert accountant.rounds == 0
    with pytest.raises(ValueError, match="accountant"):
        DecryptionSession(aggregate, config=fed.config, layout=fed.layout, decrypting_set=(1, 2, 3))


def test_clients_clip_to_the_federation_norm(five_holders: Holders) -> None:
    fed = _dp_federation(five_holders)
    client = next(iter(fed.clients.values()))
    clipped, _ = client.prepare(np.full(3000, 0.5))
    assert np.linalg.norm(clipped) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="clip"):
        client.prepare(np.full(3000, 0.5), clip=2.0)
