"""Closing an aborted round for good: key holders' abort votes and the certificate they form.

A round whose decryption aborted must never be decrypted later, or a coordinator that re-runs it
with one client fewer (and the same updates from the others) learns that client's update by
differencing. A holder that has not issued a partial for the round may *vote* to abort it: it
signs ``(round, holder index, public key)`` and from then on refuses any partial of that round
(:class:`~fhe_agg.RoundAborted`). ``holders - threshold + 1`` distinct votes form an
:class:`AbortCertificate`. Every ``threshold``-set of holders meets every such set of voters,
and a voter never issues for the round, so no set can decrypt it any more: clients may then
send the same update again for a new round (:meth:`fhe_agg.Client.accept_abort`).

Votes are ML-DSA-65 signatures (FIPS 204) under the holder's identity key with the context
:data:`ABORT_CONTEXT`, over a canonical msgpack array, so they never verify as any other message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgpack

from fhe_agg.ckks._keys import PublicKey
from fhe_agg.errors import (
    InvalidSignature,
    MalformedMessage,
    NotInRoster,
    ParameterMismatch,
    RoundMismatch,
    ThresholdNotMet,
)
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import ML_DSA_65_SIGNATURE_BYTES, SigningKey, VerifyKey
from fhe_agg.protocol._wire import Fields, pack, unpack

__all__ = [
    "ABORT_CONTEXT",
    "AbortCertificate",
    "AbortVote",
    "max_certificate_bytes",
    "votes_needed",
]

ABORT_CONTEXT = b"fhe-agg/v1/abort-vote"
_DIGEST = 32
_VOTE_FIELDS = ("round_id", "holder_index", "public_key_fingerprint", "signature")
_VOTE_BYTES = ML_DSA_65_SIGNATURE_BYTES + 128  # one vote on the wire, generously


def votes_needed(config: FederationConfig) -> int:
    """Distinct holders whose votes close a round: ``holders - threshold + 1``."""
    return config.holders - config.threshold + 1


def max_certificate_bytes(config: FederationConfig) -> int:
    """The size bound of a certificate's bytes: one vote per holder."""
    return config.holders * _VOTE_BYTES + 256


def _statement(round_id: int, holder_index: int, fingerprint: bytes) -> bytes:
    """What a vote signs: a fixed-order msgpack array (tag, round, holder, key fingerprint)."""
    encoded: bytes = msgpack.packb(
        ["abort", round_id, holder_index, fingerprint], use_bin_type=True
    )
    return encoded


@dataclass(frozen=True)
class AbortVote:
    """Holder ``holder_index``'s signed vow never to decrypt ``round_id`` under this key."""

    round_id: int
    holder_index: int
    public_key_fingerprint: bytes
    signature: bytes

    @classmethod
    def sign(
        cls, key: SigningKey, *, round_id: int, holder_index: int, public_key_fingerprint: bytes
    ) -> AbortVote:
        message = _statement(round_id, holder_index, public_key_fingerprint)
        return cls(
            round_id, holder_index, public_key_fingerprint, key.sign(message, context=ABORT_CONTEXT)
        )

    def verify(self, key: VerifyKey) -> None:
        """``None`` if the signature is valid under ``key``, else :class:`InvalidSignature`."""
        message = _statement(self.round_id, self.holder_index, self.public_key_fingerprint)
        try:
            key.verify(self.signature, message, context=ABORT_CONTEXT)
        except InvalidSignature:
            raise InvalidSignature(
                f"abort vote of holder {self.holder_index} for round {self.round_id} does not "
                "verify under that holder's key",
                round_id=self.round_id,
                holder_index=self.holder_index,
            ) from None

    def to_wire(self) -> list[object]:
        return [self.round_id, self.holder_index, self.public_key_fingerprint, self.signature]

    @classmethod
    def from_wire(cls, raw: object, *, holders: int) -> AbortVote:
        if not isinstance(raw, list) or len(raw) != len(_VOTE_FIELDS):
            raise MalformedMessage(f"abort vote: expected a {len(_VOTE_FIELDS)}-field array")
        f = Fields("abort vote", dict(zip(_VOTE_FIELDS, raw, strict=True)))
        return cls(
            round_id=f.integer("round_id"),
            holder_index=f.integer("holder_index", 1, holders),
            public_key_fingerprint=f.blob("public_key_fingerprint", size=_DIGEST),
            signature=f.blob("signature", size=ML_DSA_65_SIGNATURE_BYTES),
        )

    def to_bytes(self) -> bytes:
        return pack("abort-vote", {"vote": self.to_wire()})

    @classmethod
    def from_bytes(cls, data: bytes, *, config: FederationConfig) -> AbortVote:
        """Parse one vote (bounded; :class:`MalformedMessage` on anything else)."""
        f = unpack(
            data,
            "abort-vote",
            max_bytes=_VOTE_BYTES,
            max_bin=ML_DSA_65_SIGNATURE_BYTES,
            max_array=4,
        )
        f.expect_keys("vote")
        return cls.from_wire(f.body["vote"], holders=config.holders)

    def __repr__(self) -> str:
        return f"AbortVote(round={self.round_id}, holder={self.holder_index})"


@dataclass(frozen=True)
class AbortCertificate:
    """Votes of ``holders - threshold + 1`` distinct holders to abort ``round_id``: proof that no
    ``threshold``-set of honest holders will ever decrypt that round."""

    round_id: int
    votes: tuple[AbortVote, ...]

    def verify(
        self,
        holder_keys: Mapping[int, VerifyKey],
        *,
        config: FederationConfig,
        public_key: PublicKey,
    ) -> None:
        """``None`` if the certificate closes ``round_id`` under ``public_key``, else raise:
        :class:`RoundMismatch` (a vote for another round), :class:`ParameterMismatch` (a vote
        under another key), :class:`NotInRoster` (an unknown holder index),
        :class:`InvalidSignature`, :class:`ThresholdNotMet` (too few distinct voters, or one
        voting twice)."""
        need = votes_needed(config)
        seen: set[int] = set()
        for vote in self.votes:
            if vote.round_id != self.round_id:
                raise RoundMismatch(
                    f"abort certificate of round {self.round_id} holds a vote for round "
                    f"{vote.round_id}",
                    round_id=self.round_id,
                    holder_index=vote.holder_index,
                )
            if vote.public_key_fingerprint != public_key.fingerprint:
                raise ParameterMismatch(
                    f"abort vote of holder {vote.holder_index} was made under another public key"
                )
            key = holder_keys.get(vote.holder_index)
            if key is None or not 1 <= vote.holder_index <= config.holders:
                raise NotInRoster(
                    f"abort vote of unknown holder index {vote.holder_index}",
                    round_id=self.round_id,
                    holder_index=vote.holder_index,
                )
            if vote.holder_index in seen:
                raise ThresholdNotMet(
                    f"abort certificate of round {self.round_id}: holder {vote.holder_index} "
                    f"votes twice; {need} distinct holders must vote"
                )
            vote.verify(key)
            seen.add(vote.holder_index)
        if len(seen) < need:
            raise ThresholdNotMet(
                f"abort certificate of round {self.round_id}: {len(seen)} votes, {need} distinct "
                f"holders (holders - threshold + 1) must vote"
            )

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(sorted({v.holder_index for v in self.votes}))

    def to_bytes(self) -> bytes:
        return pack(
            "abort-certificate",
            {"round_id": self.round_id, "votes": [v.to_wire() for v in self.votes]},
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: FederationConfig) -> AbortCertificate:
        """Parse a certificate of at most ``config.holders`` votes; refuses (as
        :class:`MalformedMessage`) bad structure and a holder listed twice. Signatures are
        checked by :meth:`verify`."""
        holders = config.holders
        f = unpack(
            data,
            "abort-certificate",
            max_bytes=max_certificate_bytes(config),
            max_bin=ML_DSA_65_SIGNATURE_BYTES,
            max_array=max(holders, len(_VOTE_FIELDS)),
        )
        f.expect_keys("round_id", "votes")
        round_id = f.integer("round_id")
        votes = tuple(
            AbortVote.from_wire(v, holders=holders) for v in f.items("votes", max_len=holders)
        )
        if len({v.holder_index for v in votes}) != len(votes):
            raise MalformedMessage("abort-certificate.votes: a holder is listed twice")
        return cls(round_id, votes)

    def __repr__(self) -> str:
        return f"AbortCertificate(round={self.round_id}, voters={self.voters})"
