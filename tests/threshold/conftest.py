"""A real 3-of-5 federation: dealerless ceremony, ML-DSA clients, flooded threshold decryption
(built by :mod:`federation`)."""

from __future__ import annotations

import pytest
from federation import Federation, Holders, ceremony_federation, make_holders

from fhe_agg import FederationConfig

__all__ = ["CLIENTS", "PARAMS", "WEIGHTS", "Federation", "Holders", "make_federation"]
__all__ += ["make_holders", "threshold_config"]

PARAMS = 3000  # one chunk: many fresh aggregates stay cheap
CLIENTS = ("ana", "ben", "cy")
WEIGHTS = (2.0, 5.0, 9.0)


def make_federation(holders: Holders, config: FederationConfig, seed: int = 1) -> Federation:
    """Three clients around a ceremony of ``holders`` (epoch ``seed``)."""
    return ceremony_federation(
        holders, config, epoch=seed, weights=dict(zip(CLIENTS, WEIGHTS, strict=True)), params=PARAMS
    )


def threshold_config(holders: int = 5, threshold: int = 3, **kw: object) -> FederationConfig:
    args: dict[str, object] = {
        "min_clients": 3,
        "max_clients": 4,
        "max_weight": 10.0,
        "value_bound": 1.0,
        "holders": holders,
        "threshold": threshold,
        **kw,
    }
    return FederationConfig(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def five_holders() -> Holders:
    return make_holders(5)


@pytest.fixture(scope="session")
def fed(five_holders: Holders) -> Federation:
    return make_federation(five_holders, threshold_config())
