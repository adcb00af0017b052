"""The dealerless key ceremony run in one process: for simulations, tests and examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fhe_agg._errors import CeremonyError
from fhe_agg.ceremony._ceremony import CeremonyMember
from fhe_agg.ceremony._messages import CeremonyMessage, CeremonySpec, HolderIdentity
from fhe_agg.ckks._keys import KeyShare, PublicKey
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.identity import Identity, SealingPrivateKey, Suite
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey, VerifyKey

__all__ = ["holder_signing_keys", "holder_verify_keys", "local_key_ceremony", "run_ceremony"]


def run_ceremony(members: Sequence[CeremonyMember]) -> tuple[PublicKey, list[KeyShare]]:
    """Drive a whole ceremony in one process, passing every message through its wire bytes.

    For simulations and tests; a deployment runs the same phases over its own transport.
    Returns the joint public key (every member must agree on it) and each member's key share.
    """

    def relay(messages: Sequence[CeremonyMessage]) -> list[CeremonyMessage]:
        return [CeremonyMessage.from_bytes(m.to_bytes()) for m in messages]

    commits = relay([m.seed_commitment() for m in members])
    seeds = relay([m.reveal_seed(commits) for m in members])
    key_commits = relay([m.key_commitment(seeds) for m in members])
    key_shares = relay([m.reveal_public_share(key_commits) for m in members])
    confirmations = relay([m.confirm(key_shares) for m in members])
    dealt = relay([msg for m in members for msg in m.deal(confirmations)])
    results = [m.finish([d for d in dealt if d.recipient == m.index]) for m in members]
    public_key = results[0][0]
    if any(pk.blob != public_key.blob for pk, _ in results):
        raise CeremonyError("holders derived different public keys")
    return public_key, [share for _, share in results]


def holder_signing_keys(holders: int) -> dict[str, SigningKey]:
    """Fresh ML-DSA identity keys for ``holders`` key holders named ``holder-1`` ... (in
    ceremony order), to pass to :func:`local_key_ceremony` and keep for abort votes."""
    return {f"holder-{i}": SigningKey.generate() for i in range(1, holders + 1)}


def holder_verify_keys(signing_keys: Mapping[str, SigningKey]) -> dict[int, VerifyKey]:
    """Holder index (ceremony order, from 1) -> verify key: what clients check votes with."""
    return {i: k.verify_key for i, k in enumerate(signing_keys.values(), start=1)}


def local_key_ceremony(
    config: FederationConfig,
    rng: RandomSource | None = None,
    *,
    identities: Mapping[str, Identity] | None = None,
    consortium: str = "simulation",
    epoch: int = 1,
    signing_keys: Mapping[str, SigningKey] | None = None,
) -> tuple[PublicKey, list[KeyShare]]:
    """The whole key ceremony of ``config.holders`` key holders, in-process: with their
    ``identities`` (pq-only, in ceremony order), or with fresh ones named ``holder-1`` ...

    ``signing_keys`` (without ``identities``): the holders' ML-DSA identity keys, in ceremony
    order (holder index 1, 2, ...), instead of fresh ones the caller never sees. A holder needs
    its key again to sign abort votes (``KeyHolder(signing_key=...)``), and clients need the
    verify keys to check abort certificates (see :func:`holder_verify_keys`).

    For simulations, benchmarks, tests and examples, where every holder lives in one process; a
    deployment runs one :class:`CeremonyMember` per holder and relays the same messages.
    """
    rng = rng or default_random()
    if identities is not None and signing_keys is not None:
        raise ValueError("signing_keys: give identities or signing_keys, not both")
    if signing_keys is not None:
        if len(signing_keys) != config.holders:
            raise ValueError(
                f"signing_keys: {len(signing_keys)} keys for {config.holders} key holders"
            )
        ids = tuple(signing_keys)
        signing = dict(signing_keys)
        sealing = {h: SealingPrivateKey.generate(Suite.PQ_ONLY, random=rng) for h in ids}
    elif identities is None:
        ids = tuple(f"holder-{i}" for i in range(1, config.holders + 1))
        signing = {h: SigningKey.generate() for h in ids}
        sealing = {h: SealingPrivateKey.generate(Suite.PQ_ONLY, random=rng) for h in ids}
    else:
        ids = tuple(identities)
        signing = {h: identities[h].update_signing_key() for h in ids}
        sealing = {h: identities[h].sealing_key for h in ids}
    directory = {h: HolderIdentity(signing[h].verify_key, sealing[h].public_key) for h in ids}
    spec = CeremonySpec(
        consortium=consortium,
        epoch=epoch,
        preset=config.preset,
        holders=ids,
        threshold=config.threshold,
    )
    members = [
        CeremonyMember(
            spec=spec,
            holder_id=h,
            signing_key=signing[h],
            sealing_key=sealing[h],
            directory=directory,
            rng=rng,
        )
        for h in ids
    ]
    return run_ceremony(members)
