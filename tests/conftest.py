"""Shared fixtures: real SEAL keys, real ML-DSA keys, and a helper that runs a round."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest

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
    generate_single_key,
)

# Tests make keys from SeededRandom for reproducibility; fhe_agg refuses that anywhere else.
os.environ["FHE_AGG_TEST_ONLY_SEEDED_KEYS"] = "1"

PARAMS = 20_000  # three chunks at N = 8192: exercises chunking and padding
CLIENT_IDS = ("alpha", "bravo", "charlie", "delta")
WEIGHTS = (3.0, 11.0, 7.5, 20.0)


@pytest.fixture(scope="session")
def config() -> FederationConfig:
    return FederationConfig(min_clients=3, max_clients=8, max_weight=100.0, value_bound=4.0)


@pytest.fixture(scope="session")
def keypair(config: FederationConfig) -> tuple[PublicKey, KeyShare]:
    return generate_single_key(config.preset, rng=SeededRandom(7))


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, SigningKey]:
    return {cid: SigningKey.generate() for cid in CLIENT_IDS}


@pytest.fixture(scope="session")
def roster(signing_keys: dict[str, SigningKey]) -> dict[str, object]:
    return {cid: key.verify_key for cid, key in signing_keys.items()}


@pytest.fixture(scope="session")
def layout() -> Layout:
    return Layout.for_vector(PARAMS)


@pytest.fixture(scope="session")
def vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    return {cid: rng.uniform(-1, 1, PARAMS) for cid in CLIENT_IDS}


def _clients(config, keypair, signing_keys) -> dict[str, Client]:
    public_key, _ = keypair
    return {
        cid: Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        for cid, key in signing_keys.items()
    }


@pytest.fixture
def clients(config, keypair, signing_keys) -> dict[str, Client]:
    """Fresh client objects per test: a client remembers the updates it sent (and refuses to
    send one for another round), which must not leak from one test into the next."""
    return _clients(config, keypair, signing_keys)


@pytest.fixture(scope="session")
def updates(config, keypair, signing_keys, vectors) -> dict[str, EncryptedUpdate]:
    """Round-1 updates of every client, with distinct weights and values."""
    senders = _clients(config, keypair, signing_keys)
    return {
        cid: senders[cid].encrypt_update(vectors[cid], round_id=1, weight=w)
        for cid, w in zip(CLIENT_IDS, WEIGHTS, strict=True)
    }


@dataclass
class Round:
    aggregator: Aggregator
    holder: KeyHolder
    layout: Layout
    expected: np.ndarray
    extra: dict[str, object] = field(default_factory=dict)


@pytest.fixture
def make_aggregator(config, keypair, roster, layout, tmp_path):
    def make(round_id: int = 1) -> Aggregator:
        return Aggregator(
            config=config,
            roster=roster,
            public_key=keypair[0],
            round_id=round_id,
            layout=layout,
            spool_dir=tmp_path / f"spool-{round_id}",
        )

    return make


@pytest.fixture
def holder(config, keypair, roster) -> KeyHolder:
    public_key, share = keypair
    return KeyHolder(
        holder_id="holder",
        config=config,
        public_key=public_key,
        key_share=share,
        roster=roster,
        rng=SeededRandom(99),
    )


def weighted_mean(vectors: dict[str, np.ndarray], ids: tuple[str, ...]) -> np.ndarray:
    weights = dict(zip(CLIENT_IDS, WEIGHTS, strict=True))
    return np.average(
        np.stack([vectors[c] for c in ids]), axis=0, weights=[weights[c] for c in ids]
    )
