"""The order of one round, written once: the server side's state machine.

:class:`RoundCoordinator` owns the order; transports (the simulation, benchmarks, tests, the
example, Flower) only carry its requests to the holders they name and the replies back::

    COLLECTING --finalize--> CHALLENGING --every member's challenge--> DECRYPTING
        --every partial--> release() --> RELEASED
    (any open phase) --abort()--> VOTING --holders - threshold + 1 votes--> CLOSED

Rules the machine enforces (each breach raises :class:`~fhe_agg.OutOfOrder` and changes
nothing): no :class:`PartialRequest` exists, and no partial is accepted, before *every* member of
the decrypting set has answered its challenge (so a holder that is down shows while every live
holder can still vote to abort); a reply must answer an outstanding request of this round, for
this aggregate, from a holder it was sent to, once; the mean is released once, after every
member delivered. A refused reply of the right kind but wrong content raises the leaf of the
check that refused it (:class:`~fhe_agg.AggregateMismatch`, :class:`~fhe_agg.InvalidSignature`),
again with the state unchanged.

The saved state (:meth:`RoundCoordinator.to_bytes`) holds the phase, set, digest, challenges,
partials and votes; updates, running sum and evidence stay in the aggregator's own store
(:mod:`fhe_agg.server._state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from fhe_agg._errors import (
    AggregateMismatch,
    DecryptionFailed,
    OutOfOrder,
    ParameterMismatch,
    ThresholdNotMet,
    located,
)
from fhe_agg.ckks._dp import PrivacyAccountant
from fhe_agg.ckks._random import RandomSource
from fhe_agg.holder._abort import AbortCertificate, AbortVote, votes_needed
from fhe_agg.holder._decryption import DecryptionSession
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, EncryptedUpdate, aggregate_digest
from fhe_agg.protocol._round_messages import (
    ChallengeReply,
    ChallengeRequest,
    DecryptedReply,
    PartialReply,
    PartialRequest,
    Reply,
    Request,
    RoundPhase,
    VoteReply,
    VoteRequest,
)
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._loop import RoundLoop
from fhe_agg.server._state import ServerState

__all__ = ["RoundCoordinator"]

_OPEN = (RoundPhase.COLLECTING, RoundPhase.CHALLENGING, RoundPhase.DECRYPTING, RoundPhase.FAILED)


class RoundCoordinator(RoundLoop):
    """The server side of one round over ``aggregator`` (see the module docstring).

    ``accountant`` is required with DP (checked before any holder is asked anything and spent at
    release). ``holder_keys`` (holder index -> ML-DSA identity key) lets the coordinator verify
    abort votes as they arrive; without it votes are checked when a client verifies the
    certificate. ``rng`` feeds central-DP noise only.
    """

    def __init__(
        self,
        aggregator: Aggregator,
        *,
        accountant: PrivacyAccountant | None = None,
        holder_keys: Mapping[int, VerifyKey] | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator: expected Aggregator, got {type(aggregator).__name__}")
        if aggregator.config.dp is not None and accountant is None:
            raise ValueError("accountant: required when the federation uses DP")
        self.aggregator = aggregator
        self.config = aggregator.config
        self.layout = aggregator.layout
        self.round_id = aggregator.round_id
        self._accountant = accountant
        self._holder_keys = None if holder_keys is None else dict(holder_keys)
        self._rng = rng
        self._phase = RoundPhase.COLLECTING
        self._aggregate: EncryptedAggregate | None = None
        self._digest = b""
        self._set: tuple[int, ...] = ()
        self._challenges: dict[int, tuple[int, ...]] = {}
        self._partials: dict[int, PartialDecryption] = {}
        self._delivered: set[int] = set()
        self._mean: NDArray[np.float64] | None = None  # 1-of-1 unflooded: the holder's mean
        self._session: DecryptionSession | None = None
        self._votes: dict[int, AbortVote] = {}
        self._evidence: dict[int, AggregateEvidence] = {}  # served evidence, not state

    @property
    def phase(self) -> RoundPhase:
        return self._phase

    @property
    def decrypting_set(self) -> tuple[int, ...]:
        """The holders fixed at :meth:`finalize` (empty before)."""
        return self._set

    @property
    def delivered(self) -> tuple[int, ...]:
        """Members whose partial (or mean) was accepted and is still held."""
        return tuple(sorted(self._delivered))

    @property
    def aggregate(self) -> EncryptedAggregate:
        """The finalized aggregate; :class:`OutOfOrder` before :meth:`finalize`."""
        if self._aggregate is None:
            raise OutOfOrder(f"round {self.round_id}: no aggregate before finalize()")
        return self._aggregate

    @property
    def unflooded(self) -> bool:
        """A 1-of-1 key without flooding: the holder decrypts the mean itself."""
        return self.config.holder_noise_sigma == 0.0

    def requests(self) -> tuple[Request, ...]:
        """Every outstanding request, in holder order (empty when nothing is asked)."""
        if self._phase is RoundPhase.CHALLENGING:
            aggregate = self.aggregate
            return tuple(
                ChallengeRequest(self.round_id, j, aggregate)
                for j in self._set
                if j not in self._challenges
            )
        if self._phase is RoundPhase.DECRYPTING:
            return tuple(self._partial_request(j) for j in self._set if j not in self._delivered)
        if self._phase is RoundPhase.VOTING:
            return tuple(
                VoteRequest(self.round_id, j)
                for j in range(1, self.config.holders + 1)
                if j not in self._delivered and j not in self._votes
            )
        return ()

    def _partial_request(self, holder_index: int) -> PartialRequest:
        if holder_index not in self._evidence:  # served from the aggregator's spool or store
            self._evidence[holder_index] = self.aggregator.evidence(self._challenges[holder_index])
        return PartialRequest(
            self.round_id,
            holder_index,
            self.aggregate,
            self._evidence[holder_index],
            self._set,
        )

    # -- the steps ---------------------------------------------------------------------------

    def add(self, update: EncryptedUpdate | bytes) -> None:
        """Hand one client's update to the aggregator (which checks it or raises)."""
        self._require((RoundPhase.COLLECTING,), "add an update")
        self.aggregator.add(update)

    def finalize(self, decrypting_set: Iterable[int] | None = None) -> tuple[Request, ...]:
        """Fix the aggregate and the decrypting set (default: holders ``1..threshold``); return
        the challenge requests. Raises :class:`ThresholdNotMet` below ``min_clients`` and
        :class:`PrivacyBudgetExceeded` if the release would exceed the budget (nothing asked)."""
        self._require((RoundPhase.COLLECTING,), "finalize")
        members = self._members(decrypting_set)
        aggregate = self.aggregator.finalize()  # ThresholdNotMet first; idempotent once it passed
        if self._accountant is not None and self.config.noise_multiplier is not None:
            self._accountant.check(self.config.noise_multiplier)
        self._open(aggregate, members)
        self._phase = RoundPhase.CHALLENGING
        return self.requests()

    def _members(self, decrypting_set: Iterable[int] | None) -> tuple[int, ...]:
        t, n = self.config.threshold, self.config.holders
        members = tuple(range(1, t + 1)) if decrypting_set is None else tuple(decrypting_set)
        if not all(isinstance(m, int | np.integer) and not isinstance(m, bool) for m in members):
            raise TypeError(f"decrypting_set: expected holder indices (ints), got {members!r}")
        members = tuple(int(m) for m in members)
        if len(members) != t or len(set(members)) != t or not all(1 <= m <= n for m in members):
            raise ThresholdNotMet(
                f"decrypting_set: needs {t} distinct holders in 1..{n}, got {members}"
            )
        return tuple(sorted(members))

    def _open(
        self, aggregate: EncryptedAggregate, members: tuple[int, ...], *, decrypting: bool = True
    ) -> None:
        """Bind the aggregate and set; open the decryption session (flooded keys, while the
        round may still decrypt: a released or closed round needs no privacy budget)."""
        self._aggregate, self._digest, self._set = aggregate, aggregate_digest(aggregate), members
        if decrypting and not self.unflooded:
            self._session = DecryptionSession(
                aggregate,
                config=self.config,
                layout=self.layout,
                decrypting_set=members,
                accountant=self._accountant,
                rng=self._rng,
            )

    def accept(self, reply: Reply) -> None:
        """Take one holder's reply, or raise (typed, naming round and holder); change nothing."""
        with located(round_id=self.round_id, holder_index=getattr(reply, "holder_index", None)):
            if isinstance(reply, ChallengeReply):
                self._accept_challenge(reply)
            elif isinstance(reply, PartialReply):
                self._accept_partial(reply)
            elif isinstance(reply, DecryptedReply):
                self._accept_mean(reply)
            elif isinstance(reply, VoteReply):
                self._accept_vote(reply)
            else:
                raise TypeError(f"reply: expected a round reply, got {type(reply).__name__}")

    def _expect(self, reply: Reply, phase: RoundPhase, what: str, members: Iterable[int]) -> None:
        """Refuse ``reply`` unless the round is in ``phase`` and it answers an outstanding
        request of this round to one of ``members``. (A partial of another round is refused by
        the decryption session as :class:`AggregateMismatch`, as :func:`combine` does.)"""
        if self._phase is not phase:
            rule = (
                "; every member's challenge comes before anyone's partial"
                if phase is RoundPhase.DECRYPTING and self._phase is RoundPhase.CHALLENGING
                else ""
            )
            raise OutOfOrder(
                f"round {self.round_id} is {self._phase.name.lower()}: no {what} is expected{rule}"
            )
        if reply.round_id != self.round_id and not isinstance(reply, PartialReply):
            raise OutOfOrder(f"a {what} for round {reply.round_id}, this is round {self.round_id}")
        if reply.holder_index not in set(members):
            raise OutOfOrder(
                f"round {self.round_id}: no {what} is outstanding from holder {reply.holder_index}"
            )

    def _accept_challenge(self, reply: ChallengeReply) -> None:
        outstanding = set(self._set) - set(self._challenges)
        self._expect(reply, RoundPhase.CHALLENGING, "challenge", outstanding)
        if reply.aggregate_digest != self._digest:
            raise OutOfOrder(f"holder {reply.holder_index} challenged another aggregate")
        self._challenges[reply.holder_index] = reply.checked(len(self.aggregate.chunks))
        if len(self._challenges) == len(self._set):
            self._phase = RoundPhase.DECRYPTING

    def _accept_partial(self, reply: PartialReply) -> None:
        outstanding = set(self._set) - self._delivered
        self._expect(reply, RoundPhase.DECRYPTING, "partial", outstanding)
        if self._session is None:
            raise OutOfOrder("this federation releases without partials (1-of-1, unflooded)")
        self._session.add(reply.partial)  # AggregateMismatch for another aggregate or set
        self._partials[reply.holder_index] = reply.partial
        self._delivered.add(reply.holder_index)

    def _accept_mean(self, reply: DecryptedReply) -> None:
        outstanding = set(self._set) - self._delivered
        self._expect(reply, RoundPhase.DECRYPTING, "decrypted mean", outstanding)
        if not self.unflooded:
            raise OutOfOrder("a decrypted mean, but this federation combines partials")
        if reply.aggregate_digest != self._digest:
            raise AggregateMismatch("the decrypted mean is of another aggregate")
        self._mean = reply.checked(self.layout.length)
        self._delivered.add(reply.holder_index)

    def _accept_vote(self, reply: VoteReply) -> None:
        voters = set(range(1, self.config.holders + 1)) - self._delivered - set(self._votes)
        self._expect(reply, RoundPhase.VOTING, "abort vote", voters)
        vote = reply.vote
        if vote.public_key_fingerprint != self.aggregator.public_key.fingerprint:
            raise ParameterMismatch(f"abort vote of holder {vote.holder_index}: another key")
        if self._holder_keys is not None:
            key = self._holder_keys.get(vote.holder_index)
            if key is None:
                raise OutOfOrder(f"abort vote of holder {vote.holder_index}, whose key is unknown")
            vote.verify(key)
        self._votes[vote.holder_index] = vote

    def release(self) -> NDArray[np.float64]:
        """The weighted mean, once every member delivered. :class:`DecryptionFailed` (phase
        FAILED, nothing released: abort and vote next) if the partials decode to garbage."""
        self._require((RoundPhase.DECRYPTING,), "release")
        missing = [j for j in self._set if j not in self._delivered]
        if missing:
            raise OutOfOrder(f"round {self.round_id}: holders {missing} have not delivered")
        if self._session is None:
            assert self._mean is not None
            mean = self._mean
        else:
            try:
                mean = self._session.release()
            except DecryptionFailed:
                self._phase = RoundPhase.FAILED
                self._partials.clear()
                raise
        self._phase = RoundPhase.RELEASED
        self._partials.clear()
        self._mean = None
        return mean

    def abort(self) -> tuple[Request, ...]:
        """Give up the decryption (a holder is down or refused): the set is never completed by
        anyone else. Returns the vote requests to every holder that issued no partial."""
        self._require(_OPEN, "abort")
        if self._session is not None:
            self._session.abort()
        self._partials.clear()
        self._mean = None
        self._evidence.clear()
        self._phase = RoundPhase.VOTING
        return self.requests()

    def certificate(self) -> AbortCertificate:
        """The abort certificate, once ``holders - threshold + 1`` holders voted (else
        :class:`ThresholdNotMet`, state unchanged); the round is then closed."""
        self._require((RoundPhase.VOTING, RoundPhase.CLOSED), "form an abort certificate")
        need = votes_needed(self.config)
        if len(self._votes) < need:
            raise ThresholdNotMet(
                f"round {self.round_id}: {len(self._votes)} abort votes, {need} needed"
            )
        self._phase = RoundPhase.CLOSED
        return AbortCertificate(self.round_id, tuple(self._votes[j] for j in sorted(self._votes)))

    def _require(self, phases: tuple[RoundPhase, ...], what: str) -> None:
        if self._phase not in phases:
            raise OutOfOrder(
                f"round {self.round_id} is {self._phase.name.lower()}: cannot {what} now"
            )

    # -- saving and resuming -----------------------------------------------------------------

    def state(self) -> ServerState:
        """The complete state of the machine (see :class:`ServerState`)."""
        return ServerState(
            round_id=self.round_id,
            params_id=self.config.params_id,
            phase=self._phase,
            decrypting_set=self._set,
            aggregate_digest=self._digest,
            challenges=dict(sorted(self._challenges.items())),
            delivered=tuple(sorted(self._delivered)),
            partials=tuple(self._partials[j] for j in sorted(self._partials)),
            mean=self._mean,
            votes=tuple(self._votes[j] for j in sorted(self._votes)),
        )

    def to_bytes(self) -> bytes:
        """The state as bounded msgpack (:meth:`ServerState.to_bytes`)."""
        return self.state().to_bytes(self.config)

    @classmethod
    def resume(
        cls,
        data: bytes,
        *,
        aggregator: Aggregator,
        accountant: PrivacyAccountant | None = None,
        holder_keys: Mapping[int, VerifyKey] | None = None,
        rng: RandomSource | None = None,
    ) -> RoundCoordinator:
        """Rebuild a coordinator from :meth:`to_bytes` over the round's ``aggregator`` (opened
        on its store). Raises :class:`MalformedMessage` for bad bytes, :class:`RoundMismatch` /
        :class:`ParameterMismatch` for a state of another round or federation, and
        :class:`AggregateMismatch` if the aggregator's finalized sum is not the one the state
        recorded (or it is not finalized)."""
        coord = cls(aggregator, accountant=accountant, holder_keys=holder_keys, rng=rng)
        state = ServerState.from_bytes(data, config=coord.config, layout=coord.layout)
        aggregate = state.check_against(aggregator)
        if aggregate is not None:
            decrypting = state.phase in (RoundPhase.CHALLENGING, RoundPhase.DECRYPTING)
            coord._open(aggregate, state.decrypting_set, decrypting=decrypting)
        coord._restore(state)
        return coord

    def _restore(self, state: ServerState) -> None:
        for partial in state.partials:
            assert self._session is not None
            self._session.add(partial)  # checked against the re-finalized aggregate
            self._partials[partial.holder_index] = partial
        self._phase = state.phase
        self._challenges = dict(state.challenges)
        self._delivered = set(state.delivered)
        self._mean = state.mean
        self._votes = {v.holder_index: v for v in state.votes}

    def __repr__(self) -> str:
        return (
            f"RoundCoordinator(round={self.round_id}, phase={self._phase.name}, "
            f"set={self._set}, delivered={tuple(sorted(self._delivered))})"
        )
