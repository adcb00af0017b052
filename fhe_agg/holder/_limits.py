"""What a key holder refuses before it multiplies anything by its key share: a decrypting set
of the wrong size or without it, and, with DP, a release past its own privacy budget.

In distributed DP the combiner is trusted with nothing, so each holder keeps its own accountant
over the partials it issued (its decryption log) and refuses the one that would exceed
``config.dp.max_epsilon``.
"""

from __future__ import annotations

from fhe_agg._errors import DecryptionRefused, PrivacyBudgetExceeded, ThresholdNotMet
from fhe_agg.ckks._dp import PrivacyAccountant
from fhe_agg.ckks._keys import KeyShare
from fhe_agg.protocol._config import FederationConfig

__all__ = ["check_decrypting_set", "check_holder_privacy", "holder_accountant"]


def check_decrypting_set(members: tuple[int, ...], *, share: KeyShare, holder_id: str) -> None:
    """Refuse a decrypting set of the wrong size (:class:`ThresholdNotMet`) or one that leaves
    the holder of ``share`` out or names unknown holders (:class:`DecryptionRefused`)."""
    index = share.holder_index
    if len(members) != share.threshold or len(set(members)) != len(members):
        raise ThresholdNotMet(
            f"decrypting_set: needs {share.threshold} distinct holders, got {members}",
            holder_index=index,
        )
    if index not in members or not all(1 <= m <= share.holders for m in members):
        raise DecryptionRefused(
            f"decrypting_set {members}: holder {index} ({holder_id!r}) "
            f"decrypts only for sets of holders 1..{share.holders} that include it",
            holder_index=index,
        )


def holder_accountant(config: FederationConfig, issued: list[float | None]) -> PrivacyAccountant:
    """A holder's accountant: every partial it issued is one Gaussian release at the
    multiplier it was issued with (at ``config``'s, if logged before that was recorded),
    limited to ``config.dp.max_epsilon``."""
    dp, z = config.dp, config.noise_multiplier
    assert dp is not None and z is not None
    return PrivacyAccountant.restored(
        (z if x is None else x for x in issued), delta=dp.delta, max_epsilon=dp.max_epsilon
    )


def check_holder_privacy(
    config: FederationConfig, issued: list[float | None], *, holder_id: str
) -> None:
    """Refuse a partial whose release would push the holder's epsilon past max_epsilon."""
    z = config.noise_multiplier
    assert z is not None
    try:
        holder_accountant(config, issued).check(z)
    except PrivacyBudgetExceeded as exc:
        raise PrivacyBudgetExceeded(
            f"holder {holder_id!r}: {exc} (its own accountant: {len(issued)} partials "
            "issued under this key); no partial was made"
        ) from None
