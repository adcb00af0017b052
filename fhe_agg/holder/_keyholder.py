"""A key holder: checks that an aggregate is a legitimate round sum, then partially decrypts it.

Before multiplying anything by its key share a holder verifies, for the round it is asked about:

* the manifest lists at least ``min_clients`` distinct roster members, each with a valid
  ML-DSA signature over this round's parameters, public key and layout;
* the aggregate is the exact modular sum of those clients' signed ciphertexts, recomputed for
  every chunk;
* every chunk of every counted update carries a verifying zero-knowledge proof that its ``c1``
  is ``a*u + e1`` with short ``u, e1`` known to the client (:mod:`fhe_agg.protocol._wellformed`): one
  unproven chunk in a decrypted sum can reveal the secret key, so no spot check is enough here
  and a holder always asks for every chunk (``spot_check`` no longer reduces the evidence; it
  only sets :meth:`KeyHolder.detection_probability`, the figure for sums alone);
* its scale is ``scale * total_weight`` of the manifest;
* the round was never decrypted before and is not older than one that was.

With ``audit`` (an :class:`~fhe_agg.identity.AuditLog` opened with the holder's key and actor
name), every refused request (``partial.refused``: round, error class and message) and every
partial handed out (``partial.issued``: round, aggregate digest, decrypting set, budget used) is
recorded, the latter before the state changes. No key material is ever recorded.

A holder that has issued nothing for a round may vote to abort it (:meth:`KeyHolder.vote_abort`,
signed with its ML-DSA identity key): it then refuses that round for good
(:class:`~fhe_agg.RoundAborted`), so ``holders - threshold + 1`` votes prove the round can never
be decrypted (see :mod:`fhe_agg.holder._abort`). Audited as ``round.abort_voted``.

With DP each holder keeps its own privacy accountant and refuses a partial past
``config.dp.max_epsilon`` (:mod:`fhe_agg.holder._limits`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg._errors import (
    DecryptionRefused,
    FheAggError,
    ParameterMismatch,
    ThresholdNotMet,
    error_fields,
    located,
)
from fhe_agg._parallel import check_workers
from fhe_agg._validate import holder_indices, positive_int
from fhe_agg.ckks._keys import KeyShare, PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import mul_fixed_plus_noise
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.sampling import WideNoise, flooding_gaussian
from fhe_agg.holder._abort import AbortVote
from fhe_agg.holder._aggregate_check import verify_aggregate
from fhe_agg.holder._limits import check_decrypting_set, check_holder_privacy, holder_accountant
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.holder._store import MAX_ROUND_STEP, HolderStore
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, aggregate_digest
from fhe_agg.protocol._signing import SigningKey, VerifyKey

if TYPE_CHECKING:
    from fhe_agg.identity._auditlog import AuditLog

__all__ = ["KeyHolder", "PartialDecryption"]


class KeyHolder:
    """Holds one share of the secret key and decrypts only verified round aggregates.

    ``store`` (a file path; recommended: ``./fhe_agg_state/keyholder-<holder_id>.sqlite``, one
    per holder and key epoch) keeps the decryption log (rounds and ciphertexts decrypted, budget
    used) in SQLite. Each partial decryption is committed durably *before* it is returned, so a
    restarted holder still refuses a second partial of a round or ciphertext
    (:class:`~fhe_agg.AlreadyDecrypted`) and keeps counting its budget; a crash can lose a
    partial, never release one twice. A store of another holder or key raises
    :class:`~fhe_agg.ParameterMismatch`, a damaged one :class:`~fhe_agg.CorruptStore`. ``None``
    (the default) keeps the log in memory: it is forgotten when the object is.

    ``signing_key`` is the holder's ML-DSA identity key (the one it signed the key ceremony
    with); it is needed only to sign abort votes (:meth:`vote_abort`).

    ``max_round_step``: a round more than this many ahead of the newest round decrypted (of
    round 0 for a fresh log) is refused (:class:`~fhe_agg.RoundMismatch`). Rounds older than
    the newest decrypted one are refused for good, so without a bound one request for round
    ``2**63 - 2`` would lock the holder out of every later normal round; ``None`` lifts it.

    ``workers`` > 1 verifies the clients' proofs on that many threads
    (:func:`~fhe_agg.protocol._wellformed.verify_batches`); the checks and their errors are the same.
    """

    def __init__(
        self,
        *,
        holder_id: str,
        config: FederationConfig,
        public_key: PublicKey,
        key_share: KeyShare,
        roster: Mapping[str, VerifyKey],
        spot_check: int | None = None,
        rng: RandomSource | None = None,
        audit: AuditLog | None = None,
        store: str | os.PathLike[str] | None = None,
        signing_key: SigningKey | None = None,
        max_round_step: int | None = MAX_ROUND_STEP,
        workers: int = 1,
    ) -> None:
        self.workers = check_workers(workers)
        if not isinstance(key_share, KeyShare):
            raise TypeError(f"key_share: expected KeyShare, got {type(key_share).__name__}")
        key_share.check_for(public_key)
        if (key_share.threshold, key_share.holders) != (config.threshold, config.holders):
            raise ParameterMismatch(
                f"key_share: {key_share.threshold}-of-{key_share.holders}, the federation is "
                f"{config.threshold}-of-{config.holders}",
                party=holder_id,
                holder_index=key_share.holder_index,
            )
        if spot_check is not None and (not isinstance(spot_check, int) or spot_check < 1):
            raise ValueError(
                f"spot_check: expected None (check all chunks) or a positive int, got {spot_check!r}"
            )
        if max_round_step is not None:
            positive_int(max_round_step, "max_round_step")
        if signing_key is not None and not isinstance(signing_key, SigningKey):
            raise TypeError(f"signing_key: expected SigningKey, got {type(signing_key).__name__}")
        if audit is not None:
            from fhe_agg.identity._auditlog import require_recorder

            audit = require_recorder(audit)
        self._audit = audit
        self.holder_id = holder_id
        self.config = config
        self.public_key = public_key
        self.roster = dict(roster)
        self.spot_check = spot_check
        self._share = key_share
        self._signing_key = signing_key
        self._rng = rng or default_random()
        self._backend = backend_for(config.preset)
        self._challenges: dict[tuple[int, bytes], tuple[int, ...]] = {}
        self._log = HolderStore(
            store, holder_id=holder_id, key_share=key_share, max_round_step=max_round_step
        )

    @property
    def holder_index(self) -> int:
        return self._share.holder_index

    @property
    def decrypted_rounds(self) -> tuple[int, ...]:
        """Rounds this holder has issued a partial decryption for, in increasing order."""
        return self._log.decrypted()

    @property
    def aborted_rounds(self) -> tuple[int, ...]:
        """Rounds this holder voted to abort (and so never decrypts), in increasing order."""
        return self._log.aborted()

    def vote_abort(self, round_id: int) -> AbortVote:
        """Vow never to decrypt ``round_id`` and return the signed vote.

        Refuses with :class:`AlreadyDecrypted` (nothing recorded) if this holder issued a partial
        for the round. The vow is committed to the store (if any) before the vote is returned;
        from then on every partial of the round is refused with :class:`RoundAborted`. Voting
        again for the same round returns a fresh vote. Needs ``signing_key``.
        """
        if not isinstance(round_id, int) or isinstance(round_id, bool) or not 0 <= round_id < 2**63:
            raise ValueError(f"round_id: expected an integer in 0..2**63-1, got {round_id!r}")
        if self._signing_key is None:
            raise ValueError(
                "signing_key: this KeyHolder was made without its ML-DSA identity key, so it "
                "cannot sign abort votes; pass signing_key= to KeyHolder"
            )
        try:
            with located(round_id=round_id, holder_index=self.holder_index):
                self._log.abort(round_id)  # durable before the vote leaves this object
        except FheAggError as exc:
            self._audit_round("round.abort_refused", round_id, **error_fields(exc))
            raise
        self._audit_round("round.abort_voted", round_id)
        return AbortVote.sign(
            self._signing_key,
            round_id=round_id,
            holder_index=self.holder_index,
            public_key_fingerprint=self.public_key.fingerprint,
        )

    def _audit_round(self, event: str, round_id: int, /, **payload: Any) -> None:
        if self._audit is not None:
            self._audit.record(event, {"holder": self.holder_id, "round": round_id, **payload})

    def _refused(self, aggregate: EncryptedAggregate, exc: FheAggError) -> None:
        self._audit_round("partial.refused", aggregate.round_id, **error_fields(exc))

    def challenge(self, aggregate: EncryptedAggregate) -> tuple[int, ...]:
        """The chunk indices whose evidence this holder requires for ``aggregate``: every chunk,
        since the holder verifies every chunk's well-formedness proof before a partial."""
        return self._challenge(aggregate, aggregate_digest(aggregate))

    def _challenge(self, aggregate: EncryptedAggregate, digest: bytes) -> tuple[int, ...]:
        # every chunk of every aggregate; kept per (round, aggregate digest) so a resumed round
        # (fhe_agg.holder._round) checks what it announced: evidence lacking any chunk is then
        # refused by the proof check
        key = (aggregate.round_id, digest)
        return self._challenges.setdefault(key, tuple(range(len(aggregate.chunks))))

    def verify(
        self, aggregate: EncryptedAggregate, evidence: AggregateEvidence, *, layout: Layout
    ) -> U64:
        """Check ``aggregate`` as described in the module docstring; return its parsed chunks."""
        self._log.check(aggregate.round_id)
        return self._verify(aggregate, evidence, layout=layout, digest=aggregate_digest(aggregate))

    def _verify(
        self,
        aggregate: EncryptedAggregate,
        evidence: AggregateEvidence,
        *,
        layout: Layout,
        digest: bytes,
    ) -> U64:
        """The checks of the aggregate itself (manifest, signatures, scale, sums)."""
        context = RoundContext(
            config=self.config,
            public_key=self.public_key,
            roster=self.roster,
            layout=layout,
            round_id=aggregate.round_id,
        )
        return verify_aggregate(
            aggregate,
            evidence,
            context=context,
            wanted=self._challenge(aggregate, digest),
            workers=self.workers,
        )

    def detection_probability(self, chunk_count: int, tampered: int = 1) -> float:
        """Probability that this holder's check catches an aggregate with ``tampered`` of its
        ``chunk_count`` chunks altered: 1 when every chunk is recomputed, else
        ``1 - C(C - k, m) / C(C, m)`` for ``m = spot_check`` chunks drawn after the fact."""
        if not 0 < tampered <= chunk_count:
            raise ValueError(f"tampered: need 1..{chunk_count}, got {tampered}")
        sample = chunk_count if self.spot_check is None else min(self.spot_check, chunk_count)
        escape = math.comb(chunk_count - tampered, sample) / math.comb(chunk_count, sample)
        return 1.0 - escape

    @property
    def privacy_spent(self) -> float:
        """``epsilon`` (at ``config.dp.delta``) of the DP partials this holder has issued under
        its key, from its own log (0 without DP); see :meth:`partial_decrypt`."""
        if self.config.dp is None:
            return 0.0
        return holder_accountant(self.config, self._log.releases()).epsilon

    @property
    def budget_left(self) -> int | None:
        """Ciphertexts this holder may still partially decrypt under its key (None: no limit)."""
        budget = self.config.decryption_budget
        return None if budget is None else budget - self._log.budget_used()

    def partial_decrypt(
        self,
        aggregate: EncryptedAggregate,
        evidence: AggregateEvidence,
        *,
        layout: Layout,
        decrypting_set: Sequence[int] | None = None,
    ) -> PartialDecryption:
        """Verify ``aggregate`` and return ``c1 * (lambda_j * s_j) + e_j`` for every chunk.

        ``decrypting_set`` is the ``threshold`` holder indices fixed for this aggregate before any
        partial exists (defaults to this holder alone for a 1-of-1 key). ``e_j`` is fresh
        Gaussian noise of ``config.holder_noise_sigma`` (flooding and this holder's DP share)
        from the CSPRNG. Refuses, with typed errors and no change of state, anything
        :meth:`verify` refuses, any ciphertext or round it already decrypted
        (:class:`AlreadyDecrypted`: one partial per ciphertext, ever), a request beyond the
        key's decryption budget (:class:`BudgetExhausted`; rotate with a new key ceremony), a
        ``decrypting_set`` of the wrong size (:class:`ThresholdNotMet`) or without this holder
        (:class:`DecryptionRefused`), and, with DP, a partial whose release would push this
        holder's own accountant past ``config.dp.max_epsilon``
        (:class:`PrivacyBudgetExceeded`). Each DP partial counts as one release at
        ``config.noise_multiplier`` in the holder's log, whether or not it is combined: every
        decrypting set contains an honest holder, so its refusal alone blocks the release.
        """
        try:
            with self._located(aggregate):
                if self.config.holder_noise_sigma == 0.0:
                    raise DecryptionRefused(
                        "this federation adds no flooding noise, and an unflooded partial "
                        "decryption reveals the key share; a single key holder uses decrypt()"
                    )
                return self._partial(
                    aggregate, evidence, layout=layout, decrypting_set=decrypting_set
                )
        except FheAggError as exc:
            self._refused(aggregate, exc)
            raise

    def _partial(
        self,
        aggregate: EncryptedAggregate,
        evidence: AggregateEvidence,
        *,
        layout: Layout,
        decrypting_set: Sequence[int] | None,
    ) -> PartialDecryption:
        members = (
            tuple(sorted(holder_indices(decrypting_set, "decrypting_set")))
            if decrypting_set is not None
            else (self.holder_index,)
        )
        check_decrypting_set(members, share=self._share, holder_id=self.holder_id)
        operand = self._share.decryption_operand(members)
        digests = aggregate.chunk_digests
        chunk_ids = set(digests)
        budget = self.config.decryption_budget
        count = len(aggregate.chunks)
        # cheap refusals from the log before the costly checks of the aggregate itself
        self._log.check(aggregate.round_id, chunk_ids, count=count, budget=budget)
        dp_release = self.config.dp is not None
        if dp_release:
            self._check_privacy(self._log.releases())
        digest = aggregate_digest(aggregate)
        sums = self._verify(aggregate, evidence, layout=layout, digest=digest)
        primes = self._backend.data_primes
        sigma, n = self.config.holder_noise_sigma, self._backend.n

        def noise(count: int) -> WideNoise:
            return flooding_gaussian(count * n, sigma, self._rng).reshape(count, n)

        data = mul_fixed_plus_noise(sums[:, 1], operand, noise if sigma > 0 else None, n, primes)
        # durable before the partial leaves this object
        self._log.record(
            round_id=aggregate.round_id,
            aggregate_digest=digest,
            chunk_ids=chunk_ids,
            count=count,
            budget=budget,
            noise_multiplier=self.config.noise_multiplier if dp_release else None,
            privacy=self._check_privacy if dp_release else None,
        )
        self._audit_round(
            "partial.issued",
            aggregate.round_id,
            aggregate_digest=digest.hex(),
            decrypting_set=list(members),
            chunks=count,
            budget_used=self._log.budget_used(),
        )
        return PartialDecryption(
            round_id=aggregate.round_id,
            holder_index=self.holder_index,
            aggregate_digest=digest,
            decrypting_set=members,
            data=data,
        )

    def _check_privacy(self, issued: list[float | None]) -> None:
        check_holder_privacy(self.config, issued, holder_id=self.holder_id)

    def _located(self, aggregate: EncryptedAggregate) -> AbstractContextManager[None]:
        """Errors raised inside name the aggregate's round and this holder."""
        return located(round_id=aggregate.round_id, holder_index=self.holder_index)

    def decrypt(
        self, aggregate: EncryptedAggregate, evidence: AggregateEvidence, *, layout: Layout
    ) -> NDArray[np.float64]:
        """Verify and fully decrypt ``aggregate`` (only for a 1-of-1 key): the weighted mean."""
        from fhe_agg.holder._combine import decode_partials

        try:
            with self._located(aggregate):
                if self._share.threshold != 1:
                    raise ThresholdNotMet(
                        f"this key needs {self._share.threshold} holders; use combine()"
                    )
                partial = self._partial(aggregate, evidence, layout=layout, decrypting_set=None)
        except FheAggError as exc:
            self._refused(aggregate, exc)
            raise
        # the partial was just made from this aggregate: nothing for combine() to re-check
        return decode_partials(aggregate, [partial], config=self.config, layout=layout)

    def close(self) -> None:
        """Close the decryption log's store (if any); the log itself is kept."""
        self._log.close()

    def __repr__(self) -> str:
        return f"KeyHolder(holder_id={self.holder_id!r}, share={self._share!r})"
