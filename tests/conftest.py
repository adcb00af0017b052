"""Shared fixtures: a 1-of-1 federation from :mod:`federation` (real SEAL keys, real ML-DSA keys)
and its parts under the names the tests use."""

from __future__ import annotations

import numpy as np
import pytest
from federation import Federation, single_key_federation

from fhe_agg import (
    Aggregator,
    Client,
    EncryptedUpdate,
    FederationConfig,
    KeyHolder,
    KeyShare,
    Layout,
    PublicKey,
    SeededRandom,
    SigningKey,
)

PARAMS = 20_000  # three chunks at N = 8192: exercises chunking and padding
CLIENT_IDS = ("alpha", "bravo", "charlie", "delta")
WEIGHTS = (3.0, 11.0, 7.5, 20.0)


@pytest.fixture(scope="session")
def config() -> FederationConfig:
    return FederationConfig(min_clients=3, max_clients=8, max_weight=100.0, value_bound=4.0)


@pytest.fixture(scope="session")
def single(config: FederationConfig) -> Federation:
    """The 1-of-1 federation: key from SeededRandom(7), four clients, data from seed 1234."""
    weights = dict(zip(CLIENT_IDS, WEIGHTS, strict=True))
    return single_key_federation(config, key_seed=7, weights=weights, params=PARAMS, data_seed=1234)


@pytest.fixture(scope="session")
def keypair(single: Federation) -> tuple[PublicKey, KeyShare]:
    return single.public_key, single.shares[1]


@pytest.fixture(scope="session")
def signing_keys(single: Federation) -> dict[str, SigningKey]:
    return single.signing


@pytest.fixture(scope="session")
def roster(single: Federation) -> dict[str, object]:
    return single.roster


@pytest.fixture(scope="session")
def layout(single: Federation) -> Layout:
    return single.layout


@pytest.fixture(scope="session")
def vectors(single: Federation) -> dict[str, np.ndarray]:
    return single.data


@pytest.fixture
def clients(single: Federation) -> dict[str, Client]:
    """Fresh client objects per test: a client remembers the updates it sent (and refuses to
    send one for another round), which must not leak from one test into the next."""
    return {cid: single.client(cid) for cid in CLIENT_IDS}


@pytest.fixture(scope="session")
def updates(single: Federation) -> dict[str, EncryptedUpdate]:
    """Round-1 updates of every client, with distinct weights and values."""
    return {cid: single.update(cid, 1) for cid in CLIENT_IDS}


@pytest.fixture
def make_aggregator(single: Federation, tmp_path):
    def make(round_id: int = 1) -> Aggregator:
        return single.aggregator(round_id, spool_dir=tmp_path / f"spool-{round_id}")

    return make


@pytest.fixture
def holder(single: Federation) -> KeyHolder:
    return single.key_holder(1, holder_id="holder", rng=SeededRandom(99))


def weighted_mean(vectors: dict[str, np.ndarray], ids: tuple[str, ...]) -> np.ndarray:
    weights = dict(zip(CLIENT_IDS, WEIGHTS, strict=True))
    return np.average(
        np.stack([vectors[c] for c in ids]), axis=0, weights=[weights[c] for c in ids]
    )
