"""The test federation's parts: key holders' identities, the ceremony, clients, key holders."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fhe_agg import (
    AggregateEvidence,
    Aggregator,
    CeremonyMember,
    CeremonySpec,
    Client,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    HolderIdentity,
    KeyHolder,
    KeyShare,
    Layout,
    PartialDecryption,
    PrivacyAccountant,
    PublicKey,
    RoundCoordinator,
    SeededRandom,
    SigningKey,
    VerifyKey,
    generate_single_key,
    run_ceremony,
)
from fhe_agg.ckks._random import RandomSource
from fhe_agg.identity import AuditLog, SealingPrivateKey, Suite

# test keys come from SeededRandom for reproducibility; fhe_agg refuses that anywhere else
os.environ["FHE_AGG_TEST_ONLY_SEEDED_KEYS"] = "1"

_spools = itertools.count()

# -- the key holders' identities and the ceremony ------------------------------------------------


@dataclass
class Holders:
    """The key holders' long-term identities: ML-DSA signing keys, ML-KEM sealing keys."""

    ids: tuple[str, ...]
    signing: dict[str, SigningKey]
    sealing: dict[str, SealingPrivateKey]
    directory: dict[str, HolderIdentity]

    def members(
        self,
        spec: CeremonySpec,
        seed: int = 1,
        *,
        first: int = 0,
        audits: Mapping[int, AuditLog] | None = None,
        rngs: Mapping[str, RandomSource] | None = None,
    ) -> list[CeremonyMember]:
        """Ceremony members for ``spec``; member ``i`` (0-based) draws from
        ``SeededRandom(seed * 100 + first + i)`` unless ``rngs`` names its source, and holder
        index ``i + 1`` keeps ``audits[i + 1]`` if given."""
        audits = audits or {}
        return [
            CeremonyMember(
                spec=spec,
                holder_id=h,
                signing_key=self.signing[h],
                sealing_key=self.sealing[h],
                directory=self.directory,
                rng=rngs[h] if rngs is not None else SeededRandom(seed * 100 + first + i),
                audit=audits.get(i + 1),
            )
            for i, h in enumerate(self.ids)
        ]

    def ceremony(
        self, config: FederationConfig, *, epoch: int, consortium: str = "test-consortium"
    ) -> tuple[PublicKey, list[KeyShare]]:
        """A whole dealerless ceremony among these holders for ``config`` (seeded by epoch)."""
        return run_ceremony(self.members(self.spec(config, epoch, consortium), seed=epoch))

    def spec(self, config: FederationConfig, epoch: int, consortium: str) -> CeremonySpec:
        return CeremonySpec(
            consortium=consortium,
            epoch=epoch,
            preset=config.preset,
            holders=self.ids,
            threshold=config.threshold,
        )


def make_holders(
    holders: int | Sequence[str], *, seed: Callable[[str], bytes] | None = None
) -> Holders:
    """Identities for ``holders`` (a count: ``holder-1..n``; or the ids). With ``seed`` (label ->
    32 bytes) the keys are deterministic: ML-DSA from ``seed(id)``, ML-KEM from
    ``seed("seal-" + id)``; without it they are fresh."""
    ids = (
        tuple(f"holder-{i}" for i in range(1, holders + 1))
        if isinstance(holders, int)
        else tuple(holders)
    )
    if seed is None:
        signing = {h: SigningKey.generate() for h in ids}
        sealing = {h: SealingPrivateKey.generate(Suite.PQ_ONLY) for h in ids}
    else:
        signing = {h: SigningKey.from_seed(seed(h)) for h in ids}
        sealing = {
            h: SealingPrivateKey.generate(Suite.PQ_ONLY, random=SeededRandom(seed("seal-" + h)))
            for h in ids
        }
    directory = {h: HolderIdentity(signing[h].verify_key, sealing[h].public_key) for h in ids}
    return Holders(ids, signing, sealing, directory)


# -- the federation ------------------------------------------------------------------------------


@dataclass
class Federation:
    """One key epoch: config, joint key, the holders' shares (by holder index), signing clients
    with their weights and data (the same vector every round, as in a re-run)."""

    config: FederationConfig
    public_key: PublicKey
    shares: dict[int, KeyShare]
    signing: dict[str, SigningKey]
    weights: dict[str, float]
    layout: Layout
    data: dict[str, np.ndarray] = field(default_factory=dict)
    holder_signing: dict[int, SigningKey] = field(default_factory=dict)
    spool_root: Path | None = None
    clients: dict[str, Client] = field(init=False)  # kept: they remember what they sent
    _updates: dict[tuple[str, int], EncryptedUpdate] = field(default_factory=dict, repr=False)
    _seeds: Iterator[int] = field(default_factory=lambda: itertools.count(1000), repr=False)

    def __post_init__(self) -> None:
        self.clients = {c: self.client(c) for c in self.signing}

    @property
    def roster(self) -> dict[str, Any]:
        return {c: k.verify_key for c, k in self.signing.items()}

    @property
    def holder_keys(self) -> dict[int, VerifyKey]:
        """Holder index -> the ML-DSA identity key it signed the ceremony (and votes) with."""
        return {j: k.verify_key for j, k in self.holder_signing.items()}

    def client(self, cid: str) -> Client:
        """A fresh client object (a fresh memory of the updates it sent)."""
        return Client(
            client_id=cid,
            signing_key=self.signing[cid],
            config=self.config,
            public_key=self.public_key,
            holder_keys=self.holder_keys or None,
        )

    def update(self, cid: str, round_id: int) -> EncryptedUpdate:
        """``cid``'s update of its data for ``round_id`` (made once, then cached)."""
        key = (cid, round_id)
        if key not in self._updates:
            self._updates[key] = self.client(cid).encrypt_update(
                self.data[cid], round_id=round_id, weight=self.weights[cid]
            )
        return self._updates[key]

    def aggregator(
        self, round_id: int, audit: AuditLog | None = None, *, spool_dir: Path | None = None
    ) -> Aggregator:
        """A fresh aggregator of ``round_id`` (spooling under ``spool_root`` if set)."""
        if spool_dir is None and self.spool_root is not None:
            spool_dir = self.spool_root / f"spool-{next(_spools)}"
        return Aggregator(
            config=self.config,
            roster=self.roster,
            public_key=self.public_key,
            round_id=round_id,
            layout=self.layout,
            spool_dir=spool_dir,
            audit=audit,
        )

    def collect(
        self, round_id: int, who: Sequence[str] | None = None
    ) -> tuple[Aggregator, EncryptedAggregate]:
        """An honest aggregator's finalized round of ``who`` (default: every client)."""
        agg = self.aggregator(round_id)
        for cid in self.weights if who is None else who:
            agg.add(self.update(cid, round_id).to_bytes())
        return agg, agg.finalize()

    def fresh(self, round_id: int) -> tuple[Aggregator, np.ndarray]:
        """An aggregator holding a fresh update of every client (fresh data, prepared as a client
        does), not finalized, and the exact weighted mean."""
        rng = np.random.default_rng(next(self._seeds))
        agg = self.aggregator(round_id)
        prepared = {}
        for c, weight in self.weights.items():
            prepared[c], _ = self.clients[c].prepare(rng.uniform(-1, 1, self.layout.length))
            update = self.clients[c].encrypt_update(prepared[c], round_id=round_id, weight=weight)
            agg.add(update.to_bytes())
        expected = np.average(
            np.stack(list(prepared.values())), axis=0, weights=list(self.weights.values())
        )
        return agg, expected

    def round(
        self, round_id: int
    ) -> tuple[EncryptedAggregate, Callable[[tuple[int, ...]], AggregateEvidence], np.ndarray]:
        """A :meth:`fresh` round finalized by a coordinator: the aggregate, its evidence source
        and the exact weighted mean (for tests of one holder's steps, outside the order)."""
        agg, expected = self.fresh(round_id)
        coordinator = RoundCoordinator(agg, accountant=self.accountant())
        coordinator.finalize()
        return coordinator.aggregate, agg.evidence, expected

    def key_holder(
        self,
        j: int,
        *,
        holder_id: str | None = None,
        rng: RandomSource | None = None,
        audit: AuditLog | None = None,
    ) -> KeyHolder:
        """A fresh key holder object (empty decryption log) over holder ``j``'s share."""
        return KeyHolder(
            holder_id=holder_id or f"holder-{j}",
            config=self.config,
            public_key=self.public_key,
            key_share=self.shares[j],
            roster=self.roster,
            rng=rng,
            audit=audit,
            signing_key=self.holder_signing.get(j),
        )

    def key_holders(
        self, audits: Mapping[int, AuditLog] | None = None, *, seed: int | None = None
    ) -> dict[int, KeyHolder]:
        """Every holder, fresh; ``seed`` fixes holder ``j``'s randomness to
        ``SeededRandom(seed * 10 + j)``."""
        audits = audits or {}
        return {
            j: self.key_holder(
                j,
                rng=None if seed is None else SeededRandom(seed * 10 + j),
                audit=audits.get(j),
            )
            for j in self.shares
        }

    def partial(
        self,
        holder: KeyHolder,
        aggregate: EncryptedAggregate,
        evidence: Callable[[tuple[int, ...]], AggregateEvidence],
        members: tuple[int, ...],
    ) -> PartialDecryption:
        """``holder``'s partial of ``aggregate`` for ``members``, given the evidence it
        challenges for (a holder's two steps, outside any coordinator)."""
        return holder.partial_decrypt(
            aggregate,
            evidence(holder.challenge(aggregate)),
            layout=self.layout,
            decrypting_set=members,
        )

    def accountant(self) -> PrivacyAccountant | None:
        dp = self.config.dp
        return None if dp is None else PrivacyAccountant.for_policy(dp)

    def expected(self, who: Iterable[str]) -> np.ndarray:
        """The plaintext weighted mean of ``who``'s data."""
        ids = tuple(who)
        return np.average(
            np.stack([self.data[c] for c in ids]), axis=0, weights=[self.weights[c] for c in ids]
        )

    def tolerance(self, total_weight: float) -> float:
        """Ten standard deviations of the released noise on one real of the mean."""
        return 10.0 * self.config.released_noise_std / total_weight


def federation_from(
    config: FederationConfig,
    keys: tuple[PublicKey, Sequence[KeyShare]],
    *,
    weights: Mapping[str, float],
    params: int,
    data_seed: int,
    signing: Mapping[str, SigningKey] | None = None,
    holders: Holders | None = None,
    spool_root: Path | None = None,
) -> Federation:
    """A federation around a joint key: clients ``weights`` (fresh ML-DSA keys unless
    ``signing``), data of ``params`` reals each from ``data_seed``, and the holders' identity
    keys if ``holders`` (the ceremony's) is given."""
    public_key, shares = keys
    rng = np.random.default_rng(data_seed)
    return Federation(
        config=config,
        public_key=public_key,
        shares={s.holder_index: s for s in shares},
        signing=dict(signing) if signing else {c: SigningKey.generate() for c in weights},
        weights=dict(weights),
        layout=Layout.for_vector(params),
        data={c: rng.uniform(-1, 1, params) for c in weights},
        holder_signing={}
        if holders is None
        else {j: holders.signing[h] for j, h in enumerate(holders.ids, start=1)},
        spool_root=spool_root,
    )


def ceremony_federation(
    holders: Holders,
    config: FederationConfig,
    *,
    epoch: int,
    consortium: str = "test-consortium",
    **kw: Any,
) -> Federation:
    """A federation whose key comes from a real ceremony of ``holders`` (seeded by ``epoch``);
    ``kw`` as :func:`federation_from` (``data_seed`` defaults to ``epoch``)."""
    keys = holders.ceremony(config, epoch=epoch, consortium=consortium)
    kw.setdefault("data_seed", epoch)
    return federation_from(config, keys, holders=holders, **kw)


def single_key_federation(config: FederationConfig, *, key_seed: int, **kw: Any) -> Federation:
    """A 1-of-1 federation (one key holder, index 1) with a key from ``SeededRandom(key_seed)``."""
    public_key, share = generate_single_key(config.preset, rng=SeededRandom(key_seed))
    return federation_from(config, (public_key, [share]), **kw)
