"""The share phase of the ceremony: Shamir-share ``s_j`` over the ring, seal each share to its
recipient, and on the other side open the shares received and keep only their sum.

A share is sealed with HPKE (X-Wing) bound to (consortium, epoch, sender, recipient,
``key-share/<ceremony id>``), so it opens for its recipient in its ceremony only. Every
intermediate polynomial is zeroed once it is no longer needed.
"""

from __future__ import annotations

from collections.abc import Mapping

from fhe_agg.ceremony._messages import CeremonySpec, poly_bytes, poly_from_bytes
from fhe_agg.ckks._random import RandomSource
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.shamir import share_polynomial
from fhe_agg.identity._sealing import (
    SealInfo,
    SealingPrivateKey,
    SealingPublicKey,
    open_sealed,
    seal,
)
from fhe_agg.identity._suites import Suite

__all__ = ["deal_shares", "open_shares", "share_info"]

SEALING_SUITE = Suite.PQ_ONLY


def share_info(spec: CeremonySpec, sender: int, recipient: int) -> SealInfo:
    """What the share ``sender`` deals ``recipient`` (1-based indices) is sealed to."""
    return SealInfo(
        consortium=spec.consortium,
        epoch=spec.epoch,
        sender=spec.holders[sender - 1],
        recipient=spec.holders[recipient - 1],
        purpose=f"key-share/{spec.ceremony_id.hex()}",  # a share opens in its ceremony only
    )


def deal_shares(
    secret: U64,
    *,
    spec: CeremonySpec,
    index: int,
    recipients: Mapping[int, SealingPublicKey],
    primes: tuple[int, ...],
    rng: RandomSource,
) -> tuple[U64, dict[int, bytes]]:
    """Holder ``index``'s own share of ``secret`` and, for ``t < n``, each other holder's share
    sealed to its key in ``recipients``; ``secret`` and the dealt shares are zeroed (for
    ``t = n`` the additive ``secret`` itself is the own share and nothing is sent)."""
    holders, t = len(spec.holders), spec.threshold
    if t == holders:
        return secret, {}
    dealt = share_polynomial(secret, threshold=t, holders=holders, primes=primes, rng=rng)
    secret.fill(0)
    own = dealt[index]
    sealed: dict[int, bytes] = {}
    for k in sorted(dealt):
        if k == index:
            continue
        info = share_info(spec, index, k)
        sealed[k] = seal(recipients[k], poly_bytes(dealt[k]), info=info, suite=SEALING_SUITE)
        dealt[k].fill(0)
    return own, sealed


def open_shares(
    sealed: Mapping[int, bytes],
    own: U64,
    *,
    spec: CeremonySpec,
    index: int,
    sealing_key: SealingPrivateKey,
    primes: tuple[int, ...],
    n: int,
) -> U64:
    """Open every share sent to holder ``index`` (typed errors, nothing zeroed, if one does not
    open or decode), then return ``own`` plus their sum; the parts are zeroed."""
    received: dict[int, U64] = {}
    for j, blob in sealed.items():
        plain = open_sealed(sealing_key, blob, info=share_info(spec, j, index), suite=SEALING_SUITE)
        received[j] = poly_from_bytes(plain, primes, n, f"share of holder {j}")
    total = own
    for j in sorted(received):
        total = add_polys(total, received[j], primes)
        received[j].fill(0)
    if total is not own:
        own.fill(0)
    return total
