"""One threshold decryption of one aggregate, from a decrypting set fixed before any partial exists.

The safe path when a holder drops (threshold-ckks.md §3.5, §4.3): the set ``T`` is fixed when the
session opens; if any member of ``T`` fails to deliver, the session is *aborted*, never completed
with another set. The partials already produced stay useless (fewer than ``t``), and the holders
themselves refuse a second partial of the same round or ciphertext, so a coordinator cannot retry
either. The round is then run again with fresh encryptions under a new round id.

Releasing also spends the privacy budget: with DP the session checks the accountant before it
opens (so no partial is produced for a release that would exceed ``max_epsilon``) and records the
achieved noise multiplier when it releases. In central DP mode the session adds the Gaussian
noise itself after decoding (the combiner is then trusted with the exact average).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from fhe_agg._validate import holder_indices
from fhe_agg.ckks._dp import MAX_NOISE_DRAWS, PrivacyAccountant
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.errors import (
    AggregateMismatch,
    DecryptionAborted,
    DecryptionFailed,
    PrivacyBudgetExceeded,
    ThresholdNotMet,
    UnsupportedParameters,
)
from fhe_agg.hazmat.sampling import rounded_gaussian
from fhe_agg.holder._combine import check_partial, decode_partials
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate, aggregate_digest

__all__ = ["DecryptionSession"]

_CENTRAL_RESOLUTION = 2.0**-40  # central noise is sampled on this grid (model units)


class DecryptionSession:
    """Collect one partial from each member of ``decrypting_set`` and release the mean once."""

    def __init__(
        self,
        aggregate: EncryptedAggregate,
        *,
        config: FederationConfig,
        layout: Layout,
        decrypting_set: Iterable[int],
        accountant: PrivacyAccountant | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        members = tuple(sorted(set(holder_indices(decrypting_set, "decrypting_set"))))
        if len(members) != config.threshold or not all(1 <= m <= config.holders for m in members):
            raise ThresholdNotMet(
                f"decrypting_set: needs {config.threshold} distinct holders in 1..{config.holders}"
                f", got {members}"
            )
        if config.dp is not None:
            if accountant is None:
                raise ValueError("accountant: required when the federation uses DP")
            draws = (
                (config.threshold + 1) * len(aggregate.chunks) * config.preset.poly_modulus_degree
            )
            if draws > MAX_NOISE_DRAWS:  # the bound truncation_delta() assumes
                raise UnsupportedParameters(
                    f"aggregate: {len(aggregate.chunks)} ciphertexts need more than 2**50 noise "
                    "draws in one release, beyond what the DP accounting covers"
                )
            assert config.noise_multiplier is not None
            try:
                accountant.check(config.noise_multiplier)
            except PrivacyBudgetExceeded as exc:
                raise PrivacyBudgetExceeded(f"{exc}; no partial was requested") from None
        self.aggregate = aggregate
        self.config = config
        self.layout = layout
        self.decrypting_set = members
        self._accountant = accountant
        self._rng = rng or default_random()
        self._digest = aggregate_digest(aggregate)
        self._partials: dict[int, PartialDecryption] = {}
        self._state = "open"

    @property
    def missing(self) -> tuple[int, ...]:
        """Members of the decrypting set whose partial has not arrived."""
        return tuple(m for m in self.decrypting_set if m not in self._partials)

    @property
    def state(self) -> str:
        """``open``, ``released`` or ``aborted``."""
        return self._state

    def add(self, partial: PartialDecryption) -> None:
        """Accept one member's partial; refuses another aggregate's, another set's or a repeat."""
        self._require_open()
        if not isinstance(partial, PartialDecryption):
            raise TypeError("partial: expected PartialDecryption")
        if partial.holder_index not in self.decrypting_set:
            raise ThresholdNotMet(f"holder {partial.holder_index} is not in the decrypting set")
        if partial.holder_index in self._partials:
            raise AggregateMismatch(f"holder {partial.holder_index} already delivered")
        check_partial(partial, self.aggregate, digest=self._digest, members=self.decrypting_set)
        self._partials[partial.holder_index] = partial

    def abort(self) -> None:
        """Give up on this aggregate for good (a member dropped); the round must be re-run."""
        if self._state == "open":
            self._state = "aborted"
            for partial in self._partials.values():
                partial.data.fill(0)
            self._partials.clear()

    def release(self) -> NDArray[np.float64]:
        """Combine the partials into the weighted mean, once.

        Raises :class:`DecryptionAborted` (and aborts) if a member is missing: the round's
        ciphertexts are never decrypted by another set. Raises :class:`DecryptionFailed` (and
        aborts, spending no privacy budget) if the partials decode to values no honest round
        can produce: a holder's key share or partial is wrong.
        """
        self._require_open()
        if self.missing:
            missing = self.missing
            self.abort()
            raise DecryptionAborted(
                f"holders {missing} of the decrypting set did not deliver; round "
                f"{self.aggregate.round_id} is aborted: re-run it with fresh encryptions",
                round_id=self.aggregate.round_id,
            )
        partials: Sequence[PartialDecryption] = [self._partials[m] for m in self.decrypting_set]
        try:
            mean = decode_partials(self.aggregate, partials, config=self.config, layout=self.layout)
        except DecryptionFailed:
            self.abort()
            raise
        if self.config.central_noise_std > 0.0:
            mean = mean + self._central_noise(mean.size)
        if self._accountant is not None and self.config.noise_multiplier is not None:
            self._accountant.spend(self.config.noise_multiplier)
        self._state = "released"
        return mean

    def _central_noise(self, size: int) -> NDArray[np.float64]:
        std = self.config.central_noise_std / self.aggregate.total_weight
        ticks = rounded_gaussian(size, std / _CENTRAL_RESOLUTION, self._rng)
        return ticks.astype(np.float64) * _CENTRAL_RESOLUTION

    def _require_open(self) -> None:
        if self._state != "open":
            raise DecryptionAborted(
                f"this decryption of round {self.aggregate.round_id} is {self._state}",
                round_id=self.aggregate.round_id,
            )

    def __repr__(self) -> str:
        return (
            f"DecryptionSession(round={self.aggregate.round_id}, set={self.decrypting_set}, "
            f"state={self._state}, missing={self.missing})"
        )
