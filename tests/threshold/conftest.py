"""A real 3-of-5 federation: dealerless ceremony, ML-DSA clients, flooded threshold decryption."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from fhe_agg import (
    Aggregator,
    CeremonyMember,
    CeremonySpec,
    Client,
    EncryptedAggregate,
    FederationConfig,
    HolderIdentity,
    KeyHolder,
    KeyShare,
    Layout,
    PartialDecryption,
    PublicKey,
    SeededRandom,
    SigningKey,
    run_ceremony,
)
from fhe_agg.identity import SealingPrivateKey, Suite
from fhe_agg.protocol._evidence import AggregateEvidence

PARAMS = 3000  # one chunk: many fresh aggregates stay cheap
CLIENTS = ("ana", "ben", "cy")
WEIGHTS = (2.0, 5.0, 9.0)
_seeds = itertools.count(1000)


@dataclass
class Holders:
    ids: tuple[str, ...]
    signing: dict[str, SigningKey]
    sealing: dict[str, SealingPrivateKey]
    directory: dict[str, HolderIdentity]

    def members(self, spec: CeremonySpec, seed: int = 1) -> list[CeremonyMember]:
        return [
            CeremonyMember(
                spec=spec,
                holder_id=h,
                signing_key=self.signing[h],
                sealing_key=self.sealing[h],
                directory=self.directory,
                rng=SeededRandom(seed * 100 + i),
            )
            for i, h in enumerate(self.ids)
        ]


def make_holders(n: int) -> Holders:
    ids = tuple(f"holder-{i}" for i in range(1, n + 1))
    signing = {h: SigningKey.generate() for h in ids}
    sealing = {h: SealingPrivateKey.generate(Suite.PQ_ONLY) for h in ids}
    directory = {h: HolderIdentity(signing[h].verify_key, sealing[h].public_key) for h in ids}
    return Holders(ids, signing, sealing, directory)


@dataclass
class Federation:
    config: FederationConfig
    public_key: PublicKey
    shares: list[KeyShare]
    clients: dict[str, Client]
    roster: dict[str, object]
    layout: Layout = field(default_factory=lambda: Layout.for_vector(PARAMS))

    def key_holders(self, seed: int | None = None) -> dict[int, KeyHolder]:
        """Fresh holder objects (fresh decryption logs) over the ceremony's shares."""
        return {
            s.holder_index: KeyHolder(
                holder_id=f"holder-{s.holder_index}",
                config=self.config,
                public_key=self.public_key,
                key_share=s,
                roster=self.roster,  # type: ignore[arg-type]
                rng=SeededRandom(seed * 10 + s.holder_index) if seed is not None else None,
            )
            for s in self.shares
        }

    def partial(
        self,
        holder: KeyHolder,
        aggregate: EncryptedAggregate,
        evidence: Callable[[tuple[int, ...]], AggregateEvidence],
        members: tuple[int, ...],
    ) -> PartialDecryption:
        """``holder``'s partial decryption of ``aggregate`` for ``members``, with the evidence
        the holder challenges for."""
        return holder.partial_decrypt(
            aggregate,
            evidence(holder.challenge(aggregate)),
            layout=self.layout,
            decrypting_set=members,
        )

    def round(
        self, round_id: int, *, clip: bool = False
    ) -> tuple[EncryptedAggregate, Callable[[tuple[int, ...]], AggregateEvidence], np.ndarray]:
        """A fresh aggregate of every client, its evidence source and the exact weighted mean."""
        rng = np.random.default_rng(next(_seeds))
        vectors = {c: rng.uniform(-1, 1, PARAMS) for c in CLIENTS}
        agg = Aggregator(
            config=self.config,
            roster=self.roster,  # type: ignore[arg-type]
            public_key=self.public_key,
            round_id=round_id,
            layout=self.layout,
        )
        prepared = {}
        for c, w in zip(CLIENTS, WEIGHTS, strict=True):
            prepared[c], _ = self.clients[c].prepare(vectors[c])
            agg.add(
                self.clients[c].encrypt_update(prepared[c], round_id=round_id, weight=w).to_bytes()
            )
        aggregate = agg.finalize()
        expected = np.average(np.stack([prepared[c] for c in CLIENTS]), axis=0, weights=WEIGHTS)
        return aggregate, agg.evidence, expected


def make_federation(holders: Holders, config: FederationConfig, seed: int = 1) -> Federation:
    spec = CeremonySpec(
        consortium="test-consortium",
        epoch=seed,
        preset=config.preset,
        holders=holders.ids,
        threshold=config.threshold,
    )
    public_key, shares = run_ceremony(holders.members(spec, seed))
    signing = {c: SigningKey.generate() for c in CLIENTS}
    roster = {c: k.verify_key for c, k in signing.items()}
    clients = {
        c: Client(client_id=c, signing_key=k, config=config, public_key=public_key)
        for c, k in signing.items()
    }
    return Federation(config, public_key, shares, clients, roster)


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
