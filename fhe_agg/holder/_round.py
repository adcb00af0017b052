"""The key holder's side of a round: challenge, then partial (or abort vote), in that order only.

:class:`HolderRound` wraps a :class:`~fhe_agg.KeyHolder` and answers the requests of a
:class:`~fhe_agg.RoundCoordinator`::

    IDLE --ChallengeRequest--> CHALLENGED --PartialRequest (same aggregate)--> DECRYPTED
    IDLE / CHALLENGED --VoteRequest--> VOTED

A partial is issued only for the aggregate this holder challenged in this round, with the
evidence it asked for; a request for another holder, an older round, another aggregate of the
same round or a step out of this order raises :class:`~fhe_agg.OutOfOrder` and changes nothing.
The key holder's own checks (manifest, sums, decryption log, budget, abort vow) run as before and
raise their own errors. A repeated challenge of the same aggregate gets the same answer.

A holder of a 1-of-1 key without flooding decrypts the mean itself; it hands it out
(:class:`DecryptedReply`) only if made with ``decrypts_mean=True`` (in-process simulations,
where the coordinator may see the exact mean), else it refuses (:class:`DecryptionRefused`).

The state (:meth:`HolderRound.to_bytes`: round, phase, aggregate digest, challenged indices)
holds nothing secret; the share and the decryption log stay in the key holder (and its
``store=``). It must be kept where the aggregator cannot write: a holder that resumed from a
state whose indices were replaced would check the chunks the state names.
"""

from __future__ import annotations

from fhe_agg._errors import located
from fhe_agg.ckks._packing import Layout
from fhe_agg.errors import DecryptionRefused, OutOfOrder
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.protocol._messages import aggregate_digest
from fhe_agg.protocol._round_messages import (
    ChallengeReply,
    ChallengeRequest,
    DecryptedReply,
    HolderPhase,
    PartialReply,
    PartialRequest,
    Reply,
    Request,
    VoteReply,
    VoteRequest,
)
from fhe_agg.server._state import HolderState

__all__ = ["HolderRound"]


class HolderRound:
    """One key holder answering round requests in order (see the module docstring)."""

    def __init__(self, holder: KeyHolder, *, layout: Layout, decrypts_mean: bool = False) -> None:
        if not isinstance(holder, KeyHolder):
            raise TypeError(f"holder: expected KeyHolder, got {type(holder).__name__}")
        self.holder = holder
        self.layout = layout
        self.decrypts_mean = decrypts_mean
        self._state = HolderState(holder.holder_index, 0, HolderPhase.IDLE, b"", ())

    @property
    def state(self) -> HolderState:
        return self._state

    @property
    def phase(self) -> HolderPhase:
        return self._state.phase

    def handle(self, request: Request) -> Reply:
        """Answer ``request`` or raise (typed, naming the round and this holder) with the state
        unchanged."""
        with located(round_id=request.round_id, holder_index=self.holder.holder_index):
            if isinstance(request, ChallengeRequest):
                return self.challenge(request)
            if isinstance(request, PartialRequest):
                return self.partial(request)
            if isinstance(request, VoteRequest):
                return self.vote(request)
        raise TypeError(f"request: expected a round request, got {type(request).__name__}")

    def challenge(self, request: ChallengeRequest) -> ChallengeReply:
        """The chunks this holder wants evidence for (the same answer to a repeat)."""
        self._mine(request)
        return self._challenge(request)

    def partial(self, request: PartialRequest) -> PartialReply | DecryptedReply:
        """The partial decryption (or, 1-of-1 unflooded, the mean) of the challenged aggregate."""
        self._mine(request)
        return self._partial(request)

    def vote(self, request: VoteRequest) -> VoteReply:
        """The signed vote never to decrypt the round (refused if this holder issued for it)."""
        self._mine(request)
        return self._vote(request)

    def _mine(self, request: Request) -> None:
        if request.holder_index != self.holder.holder_index:
            raise OutOfOrder(
                f"a request for holder {request.holder_index} reached holder "
                f"{self.holder.holder_index}"
            )

    def _challenge(self, request: ChallengeRequest) -> ChallengeReply:
        aggregate, state = request.aggregate, self._state
        if aggregate.round_id != request.round_id:
            raise OutOfOrder(f"a challenge request of round {request.round_id} for another round")
        digest = aggregate_digest(aggregate)
        if request.round_id < state.round_id:
            raise OutOfOrder(f"round {request.round_id} is older than round {state.round_id}")
        if request.round_id == state.round_id and state.phase is not HolderPhase.IDLE:
            if state.phase is HolderPhase.CHALLENGED and state.aggregate_digest == digest:
                return self._challenge_reply(state)  # a repeat gets the same answer
            raise OutOfOrder(
                f"round {state.round_id}: already {state.phase.name.lower()}"
                + (" another aggregate" if state.phase is HolderPhase.CHALLENGED else "")
            )
        indices = self.holder.challenge(aggregate)
        self._state = HolderState(
            state.holder_index, request.round_id, HolderPhase.CHALLENGED, digest, indices
        )
        return self._challenge_reply(self._state)

    @staticmethod
    def _challenge_reply(state: HolderState) -> ChallengeReply:
        return ChallengeReply(
            state.round_id, state.holder_index, state.aggregate_digest, state.indices
        )

    def _partial(self, request: PartialRequest) -> PartialReply | DecryptedReply:
        state, aggregate = self._state, request.aggregate
        if (request.round_id, state.phase) != (state.round_id, HolderPhase.CHALLENGED):
            raise OutOfOrder(
                f"a partial of round {request.round_id} asked before this holder's challenge "
                f"(holder is {state.phase.name.lower()} in round {state.round_id})"
            )
        digest = aggregate_digest(aggregate)
        if aggregate.round_id != request.round_id or digest != state.aggregate_digest:
            raise OutOfOrder(f"round {state.round_id}: a partial of another aggregate is asked")
        if set(request.evidence.chunks) != set(state.indices):
            raise OutOfOrder(f"round {state.round_id}: evidence for other chunks than challenged")
        reply: PartialReply | DecryptedReply
        if self.holder.config.holder_noise_sigma == 0.0:
            if not self.decrypts_mean:
                raise DecryptionRefused(
                    "this federation adds no flooding noise: a 1-of-1 holder hands out the exact "
                    "mean only when made with decrypts_mean=True (the coordinator is trusted)"
                )
            mean = self.holder.decrypt(aggregate, request.evidence, layout=self.layout)
            reply = DecryptedReply(request.round_id, state.holder_index, digest, mean)
        else:
            partial = self.holder.partial_decrypt(
                aggregate,
                request.evidence,
                layout=self.layout,
                decrypting_set=request.decrypting_set,
            )
            reply = PartialReply(partial)
        self._state = HolderState(
            state.holder_index, state.round_id, HolderPhase.DECRYPTED, digest, state.indices
        )
        return reply

    def _vote(self, request: VoteRequest) -> VoteReply:
        vote = self.holder.vote_abort(request.round_id)  # AlreadyDecrypted if it issued
        state = self._state
        if request.round_id >= state.round_id:
            self._state = HolderState(
                state.holder_index, request.round_id, HolderPhase.VOTED, b"", ()
            )
        return VoteReply(vote)

    def to_bytes(self) -> bytes:
        """The state as bounded msgpack (:meth:`HolderState.to_bytes`)."""
        return self._state.to_bytes()

    @classmethod
    def resume(cls, data: bytes, *, holder: KeyHolder, layout: Layout) -> HolderRound:
        """Rebuild from :meth:`to_bytes` around the same key holder (its share and log).
        Raises :class:`MalformedMessage` for bad bytes, :class:`OutOfOrder` for the state of
        another holder."""
        machine = cls(holder, layout=layout)
        state = HolderState.from_bytes(data, config=holder.config, layout=layout)
        if state.holder_index != holder.holder_index:
            raise OutOfOrder(
                f"state of holder {state.holder_index}, key holder {holder.holder_index}"
            )
        # a holder's challenge is every chunk (it verifies every chunk's proof), so the indices it
        # announced before the restart are the ones it checks after it
        machine._state = state
        return machine

    def __repr__(self) -> str:
        s = self._state
        return f"HolderRound(holder={s.holder_index}, round={s.round_id}, phase={s.phase.name})"
