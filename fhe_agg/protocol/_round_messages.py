"""The requests a round coordinator issues and the replies it accepts, one frozen class each.

A transport (in-process calls, Flower messages, a test) carries a request to the holder it
names and the holder's reply back; it never decides what comes next. Every request and reply
names its round and holder, so the coordinator can refuse one that answers nothing it asked
(:class:`~fhe_agg.OutOfOrder`).

The order (:class:`~fhe_agg.RoundCoordinator`): every member of the decrypting set gets a
:class:`ChallengeRequest`; only once *every* member's :class:`ChallengeReply` is in does any
member get a :class:`PartialRequest` (carrying the evidence for its challenge), so a holder that
is down shows before any partial exists, while every live holder can still vote. If the round
cannot finish, every holder that issued no partial gets a :class:`VoteRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from fhe_agg.errors import AggregateMismatch, OutOfOrder
from fhe_agg.holder._abort import AbortVote
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate

__all__ = [
    "ChallengeReply",
    "ChallengeRequest",
    "DecryptedReply",
    "HolderPhase",
    "PartialReply",
    "PartialRequest",
    "Reply",
    "Request",
    "RoundPhase",
    "VoteReply",
    "VoteRequest",
]


class RoundPhase(Enum):
    """Where the server side of a round stands; the value is its wire code."""

    COLLECTING = 0  # updates are added to the aggregator
    CHALLENGING = 1  # the aggregate is fixed; waiting for every member's challenge
    DECRYPTING = 2  # every challenge is in; evidence served, waiting for partials
    RELEASED = 3  # the mean was released (terminal)
    FAILED = 4  # the partials decoded to garbage; nothing released (vote next)
    VOTING = 5  # the decryption was given up; collecting abort votes
    CLOSED = 6  # an abort certificate closes the round (terminal)


class HolderPhase(Enum):
    """Where one key holder stands in the current round; the value is its wire code."""

    IDLE = 0  # no request of this round yet
    CHALLENGED = 1  # it answered the challenge of one aggregate
    DECRYPTED = 2  # it issued its partial (or, 1-of-1 unflooded, the mean)
    VOTED = 3  # it voted to abort the round


@dataclass(frozen=True, eq=False)
class ChallengeRequest:
    """Ask holder ``holder_index`` which chunks of ``aggregate`` it wants evidence for."""

    round_id: int
    holder_index: int
    aggregate: EncryptedAggregate


@dataclass(frozen=True)
class ChallengeReply:
    """The chunk indices holder ``holder_index`` drew for the aggregate of ``aggregate_digest``."""

    round_id: int
    holder_index: int
    aggregate_digest: bytes
    indices: tuple[int, ...]

    def checked(self, chunk_count: int) -> tuple[int, ...]:
        """The indices, if distinct, increasing and below ``chunk_count``; else
        :class:`OutOfOrder` (no honest holder challenges anything else)."""
        ix = self.indices
        if not ix or list(ix) != sorted(set(ix)) or ix[0] < 0 or ix[-1] >= chunk_count:
            raise OutOfOrder(
                f"holder {self.holder_index}: challenge indices not distinct, increasing chunk "
                f"indices below {chunk_count}"
            )
        return tuple(int(i) for i in ix)


@dataclass(frozen=True, eq=False)
class PartialRequest:
    """Ask holder ``holder_index`` for its partial decryption of ``aggregate`` by
    ``decrypting_set``, with the evidence for the chunks it challenged."""

    round_id: int
    holder_index: int
    aggregate: EncryptedAggregate
    evidence: AggregateEvidence
    decrypting_set: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class PartialReply:
    """A holder's partial decryption (its round, holder index and digest inside)."""

    partial: PartialDecryption

    @property
    def round_id(self) -> int:
        return self.partial.round_id

    @property
    def holder_index(self) -> int:
        return self.partial.holder_index


@dataclass(frozen=True, eq=False)
class DecryptedReply:
    """The weighted mean from the single holder of a 1-of-1 key without flooding (there is no
    partial to combine: the holder decrypts itself)."""

    round_id: int
    holder_index: int
    aggregate_digest: bytes
    mean: NDArray[np.float64]

    def checked(self, length: int) -> NDArray[np.float64]:
        """A copy of the mean if it holds ``length`` float64s, else :class:`AggregateMismatch`."""
        mean = np.asarray(self.mean)
        if mean.dtype != np.float64 or mean.shape != (length,):
            raise AggregateMismatch(f"the decrypted mean is not {length} float64s")
        return mean.copy()


@dataclass(frozen=True)
class VoteRequest:
    """Ask holder ``holder_index`` to vote to abort ``round_id``."""

    round_id: int
    holder_index: int


@dataclass(frozen=True)
class VoteReply:
    """A holder's signed abort vote."""

    vote: AbortVote

    @property
    def round_id(self) -> int:
        return self.vote.round_id

    @property
    def holder_index(self) -> int:
        return self.vote.holder_index


Request = ChallengeRequest | PartialRequest | VoteRequest
Reply = ChallengeReply | PartialReply | DecryptedReply | VoteReply
