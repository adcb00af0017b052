"""The saved state of a round's state machines: bounded, validated bytes.

:class:`ServerState` is everything a :class:`~fhe_agg.RoundCoordinator` knows that its
aggregator's store does not; :class:`HolderState` is everything a :class:`~fhe_agg.HolderRound`
knows that its key holder's decryption log does not. Both travel as the project's versioned
msgpack envelopes (:mod:`fhe_agg.protocol._wire`), and ``from_bytes`` takes its bounds from the
federation and the round's layout (decrypting set of ``threshold`` holders, chunk indices below
the chunk count, partials parsed by :meth:`PartialDecryption.from_bytes`, at most ``holders``
votes) and refuses, as :class:`~fhe_agg.MalformedMessage`, any state the machine itself could
never reach: a partial before every member's challenge, a partial of another aggregate, round or
set, a vote from a holder that delivered, a released round still holding partials.

What the coordinator's state does not hold: the updates, the running sum and the evidence, which
stay in the :class:`~fhe_agg.Aggregator`'s own crash-safe store (``store=``): copying ciphertexts
would double the disk and let the two disagree. :meth:`ServerState.check_against` re-finalizes
that aggregator on resume and refuses to go on unless the aggregate has the digest the state
recorded, so the saved partials are never checked or combined against another sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import AggregateMismatch, MalformedMessage, ParameterMismatch, RoundMismatch
from fhe_agg.hazmat.packed_format import residues_size
from fhe_agg.holder._abort import AbortVote, votes_needed
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate, aggregate_digest
from fhe_agg.protocol._round_messages import HolderPhase, RoundPhase
from fhe_agg.protocol._signing import ML_DSA_65_SIGNATURE_BYTES
from fhe_agg.protocol._wire import Fields, pack, unpack
from fhe_agg.server._aggregator import Aggregator

__all__ = ["HolderState", "ServerState"]

_DIGEST = 32
_SERVER_KIND = "round-state"
_HOLDER_KIND = "holder-round-state"
_SERVER_FIELDS = (
    "round_id",
    "params_id",
    "phase",
    "set",
    "digest",
    "challenges",
    "delivered",
    "partials",
    "mean",
    "votes",
)


def _bad(why: str) -> MalformedMessage:
    return MalformedMessage(f"{_SERVER_KIND}: {why}")


def _increasing(value: object, lo: int, hi: int, *, max_len: int) -> tuple[int, ...]:
    """A list of distinct increasing plain ints in ``lo..hi``, or :class:`MalformedMessage`."""
    if (
        not isinstance(value, list)
        or len(value) > max_len
        or not all(type(v) is int and lo <= v <= hi for v in value)
        or value != sorted(set(value))
    ):
        raise _bad(f"expected at most {max_len} distinct increasing integers in {lo}..{hi}")
    return tuple(value)


@dataclass(frozen=True, eq=False)
class ServerState:
    """The server side of one round (see :class:`~fhe_agg.RoundCoordinator`)."""

    round_id: int
    params_id: bytes
    phase: RoundPhase
    decrypting_set: tuple[int, ...]
    aggregate_digest: bytes  # empty before finalize
    challenges: dict[int, tuple[int, ...]]
    delivered: tuple[int, ...]  # holders whose partial (or mean) arrived
    partials: tuple[PartialDecryption, ...]  # kept until release or abort
    mean: NDArray[np.float64] | None  # 1-of-1 unflooded: the holder's decrypted mean
    votes: tuple[AbortVote, ...]

    def to_bytes(self, config: FederationConfig) -> bytes:
        return pack(
            _SERVER_KIND,
            {
                "round_id": self.round_id,
                "params_id": self.params_id,
                "phase": self.phase.value,
                "set": list(self.decrypting_set),
                "digest": self.aggregate_digest,
                "challenges": [[j, list(ix)] for j, ix in sorted(self.challenges.items())],
                "delivered": list(self.delivered),
                "partials": [p.to_bytes(config) for p in self.partials],
                "mean": b"" if self.mean is None else self.mean.astype("<f8").tobytes(),
                "votes": [v.to_wire() for v in self.votes],
            },
        )

    @staticmethod
    def max_bytes(config: FederationConfig, layout: Layout) -> int:
        """The size bound of a state of this federation and layout."""
        return config.threshold * (_partial_bytes(config, layout) + 1024) + _fixed_bytes(
            config, layout
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: FederationConfig, layout: Layout) -> ServerState:
        """Decode and validate a saved state, or raise :class:`MalformedMessage` /
        :class:`MessageTooLarge`."""
        count = layout.chunk_count(config.preset.reals_per_ciphertext)
        f = unpack(
            data,
            _SERVER_KIND,
            max_bytes=cls.max_bytes(config, layout),
            max_bin=max(_partial_bytes(config, layout), 8 * layout.length, 4096),
            max_array=max(count, config.holders, 4),
        )
        f.expect_keys(*_SERVER_FIELDS)
        code = f.integer("phase", 0, max(p.value for p in RoundPhase))
        phase = RoundPhase(code)
        members = _increasing(f.body["set"], 1, config.holders, max_len=config.holders)
        digest = f.blob("digest", max_size=_DIGEST)
        if (len(members), len(digest)) not in ((0, 0), (config.threshold, _DIGEST)):
            raise _bad(f"expected a set of {config.threshold} holders with a 32-byte digest")
        if not members and phase not in (
            RoundPhase.COLLECTING,
            RoundPhase.VOTING,
            RoundPhase.CLOSED,
        ):
            raise _bad(f"phase {phase.name} needs a finalized aggregate")
        if members and phase is RoundPhase.COLLECTING:
            raise _bad("a collecting round has no decrypting set yet")
        state = cls(
            round_id=f.integer("round_id"),
            params_id=f.blob("params_id", size=_DIGEST),
            phase=phase,
            decrypting_set=members,
            aggregate_digest=digest,
            challenges=_challenges(f, members, count),
            delivered=_increasing(f.body["delivered"], 1, config.holders, max_len=config.holders),
            partials=tuple(
                PartialDecryption.from_bytes(_as_bytes(p), config=config, layout=layout)
                for p in f.items("partials", max_len=config.threshold)
            ),
            mean=_mean(f.blob("mean", max_size=8 * layout.length), layout),
            votes=tuple(
                AbortVote.from_wire(v, holders=config.holders)
                for v in f.items("votes", max_len=config.holders)
            ),
        )
        state._check(config)
        return state

    def check_against(self, aggregator: Aggregator) -> EncryptedAggregate | None:
        """Refuse to resume over another round's or federation's aggregator
        (:class:`RoundMismatch`, :class:`ParameterMismatch`) or one whose finalized sum is not
        the one this state recorded (:class:`AggregateMismatch`); the re-finalized aggregate."""
        if self.round_id != aggregator.round_id:
            raise RoundMismatch(
                f"state of round {self.round_id}, aggregator of {aggregator.round_id}"
            )
        if self.params_id != aggregator.config.params_id:
            raise ParameterMismatch("state of another federation configuration")
        fingerprint = aggregator.public_key.fingerprint
        if any(v.public_key_fingerprint != fingerprint for v in self.votes):
            raise ParameterMismatch("state holds an abort vote under another key")
        if not self.aggregate_digest:
            return None
        if not aggregator.finalized:
            raise AggregateMismatch("the state's round is finalized, the aggregator's is not")
        aggregate = aggregator.finalize()
        if aggregate_digest(aggregate) != self.aggregate_digest:
            raise AggregateMismatch("the aggregator's sum is not the one the state recorded")
        return aggregate

    def _check(self, config: FederationConfig) -> None:
        """Refuse a state the coordinator can never reach."""
        members, phase = set(self.decrypting_set), self.phase
        delivered = set(self.delivered)
        if not delivered <= members:
            raise _bad("a holder outside the decrypting set delivered")
        if delivered and len(self.challenges) != len(members):
            raise _bad("a partial before every member's challenge")
        if phase is RoundPhase.CHALLENGING and len(self.challenges) == len(members):
            raise _bad("every challenge is in, yet the round is still challenging")
        if phase in (RoundPhase.DECRYPTING, RoundPhase.RELEASED, RoundPhase.FAILED) and len(
            self.challenges
        ) != len(members):
            raise _bad(f"phase {phase.name} needs every member's challenge")
        if phase is RoundPhase.RELEASED and delivered != members:
            raise _bad("released without every member's partial")
        unflooded = config.holder_noise_sigma == 0.0
        kept = {p.holder_index for p in self.partials} | ({1} if self.mean is not None else set())
        if phase is not RoundPhase.DECRYPTING and kept:
            raise _bad(f"phase {phase.name} keeps no partial")
        if phase is RoundPhase.DECRYPTING and kept != delivered:
            raise _bad("delivered holders and kept partials differ")
        if (self.mean is not None and not unflooded) or (self.partials and unflooded):
            raise _bad("a mean is kept only for a 1-of-1 unflooded key, partials otherwise")
        order = [p.holder_index for p in self.partials]
        if order != sorted(set(order)):
            raise _bad("partials out of holder order, or one holder twice")
        for p in self.partials:
            if (p.round_id, p.aggregate_digest, p.decrypting_set) != (
                self.round_id,
                self.aggregate_digest,
                self.decrypting_set,
            ):
                raise _bad(f"partial of holder {p.holder_index}: another round, aggregate or set")
        voters = [v.holder_index for v in self.votes]
        if voters != sorted(set(voters)) or set(voters) & delivered:
            raise _bad("votes out of order, repeated, or from a holder that delivered")
        if any(v.round_id != self.round_id for v in self.votes):
            raise _bad("a vote for another round")
        if self.votes and phase not in (RoundPhase.VOTING, RoundPhase.CLOSED):
            raise _bad(f"phase {phase.name} holds no votes")
        if phase is RoundPhase.CLOSED and len(voters) < votes_needed(config):
            raise _bad("closed without enough votes")


def _partial_bytes(config: FederationConfig, layout: Layout) -> int:
    backend = backend_for(config.preset)
    chunks = layout.chunk_count(config.preset.reals_per_ciphertext)
    return residues_size(chunks, backend.n, backend.data_primes) + 1024


def _fixed_bytes(config: FederationConfig, layout: Layout) -> int:
    count = layout.chunk_count(config.preset.reals_per_ciphertext)
    return (
        8 * layout.length
        + config.threshold * (count * 9 + 16)
        + config.holders * (ML_DSA_65_SIGNATURE_BYTES + 128)
        + 4096
    )


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise _bad("partials: every item must be bytes")
    return value


def _challenges(f: Fields, members: tuple[int, ...], count: int) -> dict[int, tuple[int, ...]]:
    out: dict[int, tuple[int, ...]] = {}
    for row in f.items("challenges", max_len=len(members)):
        if not isinstance(row, list) or len(row) != 2:
            raise _bad("challenges: expected [holder, indices] pairs")
        holder = row[0]
        if type(holder) is not int or holder not in members or (out and holder <= max(out)):
            raise _bad("challenges: holders of the decrypting set, in increasing order")
        indices = _increasing(row[1], 0, count - 1, max_len=count)
        if not indices:
            raise _bad("challenges: a challenge names at least one chunk")
        out[holder] = indices
    return out


def _mean(raw: bytes, layout: Layout) -> NDArray[np.float64] | None:
    if not raw:
        return None
    if len(raw) != 8 * layout.length:
        raise _bad(f"mean: expected {8 * layout.length} bytes")
    mean = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(mean)):
        raise _bad("mean: not finite")
    return mean


@dataclass(frozen=True)
class HolderState:
    """One key holder's place in the current round (see :class:`~fhe_agg.HolderRound`)."""

    holder_index: int
    round_id: int
    phase: HolderPhase
    aggregate_digest: bytes  # of the aggregate it challenged; empty when idle
    indices: tuple[int, ...]  # the chunks it challenged

    def to_bytes(self) -> bytes:
        return pack(
            _HOLDER_KIND,
            {
                "holder": self.holder_index,
                "round_id": self.round_id,
                "phase": self.phase.value,
                "digest": self.aggregate_digest,
                "indices": list(self.indices),
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: FederationConfig, layout: Layout) -> HolderState:
        """Decode and validate a saved holder state, or raise :class:`MalformedMessage`."""
        count = layout.chunk_count(config.preset.reals_per_ciphertext)
        f = unpack(
            data,
            _HOLDER_KIND,
            max_bytes=9 * count + 256,
            max_bin=_DIGEST,
            max_array=count,
        )
        f.expect_keys("holder", "round_id", "phase", "digest", "indices")
        phase = HolderPhase(f.integer("phase", 0, max(p.value for p in HolderPhase)))
        digest = f.blob("digest", max_size=_DIGEST)
        indices = _increasing(f.body["indices"], 0, count - 1, max_len=count)
        challenged = phase in (HolderPhase.CHALLENGED, HolderPhase.DECRYPTED)
        if challenged != (len(digest) == _DIGEST and len(indices) > 0) or (
            not challenged and (digest or indices)
        ):
            raise MalformedMessage(
                f"{_HOLDER_KIND}: a challenged holder keeps the aggregate digest and its "
                "indices, any other keeps neither"
            )
        return cls(
            holder_index=f.integer("holder", 1, config.holders),
            round_id=f.integer("round_id"),
            phase=phase,
            aggregate_digest=digest,
            indices=indices,
        )
