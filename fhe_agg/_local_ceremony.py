"""The dealerless key ceremony of a whole federation run in one process."""

from __future__ import annotations

from collections.abc import Mapping

from fhe_agg._ceremony import CeremonyMember, CeremonySpec, HolderIdentity, run_ceremony
from fhe_agg._config import FederationConfig
from fhe_agg._keys import KeyShare, PublicKey
from fhe_agg._random import RandomSource, default_random
from fhe_agg._signing import SigningKey
from fhe_agg.identity import Identity, SealingPrivateKey, Suite

__all__ = ["local_key_ceremony"]


def local_key_ceremony(
    config: FederationConfig,
    rng: RandomSource | None = None,
    *,
    identities: Mapping[str, Identity] | None = None,
    consortium: str = "simulation",
    epoch: int = 1,
) -> tuple[PublicKey, list[KeyShare]]:
    """The whole key ceremony of ``config.holders`` key holders, in-process: with their
    ``identities`` (pq-only, in ceremony order), or with fresh ones named ``holder-1`` ...

    For simulations, benchmarks, tests and examples, where every holder lives in one process; a
    deployment runs one :class:`CeremonyMember` per holder and relays the same messages.
    """
    rng = rng or default_random()
    if identities is None:
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
