"""Closing a round that released nothing: the server collects abort votes from holder nodes.

Clients refuse to send an update they already sent for a round that is not proven closed (their
training is often deterministic, so the update after a failed round is the same). After a round
that released nothing, :func:`close_round` asks every holder node that may still answer for an
abort vote; ``holders - threshold + 1`` valid votes make an :class:`~fhe_agg.AbortCertificate`,
which the strategy sends with the next train messages (:func:`certificates_record`) and
``secure_update_mod`` shows to each client. A holder that issued a partial of the round refuses
to vote; if too few can vote, the round stays open and the clients re-train or stay out.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from fhe_agg._abort import AbortCertificate, AbortVote, votes_needed
from fhe_agg._config import FederationConfig
from fhe_agg._errors import FheAggError, MalformedMessage
from fhe_agg.flower import _records as rec
from fhe_agg.flower._protocol import ACTION_ABORT, MAX_CERTIFICATES, record_bytes
from fhe_agg.flower._relay import Federation, Relay

__all__ = ["certificates_record", "close_round"]

log = logging.getLogger("fhe_agg.flower")


def close_round(
    relay: Relay,
    federation: Federation,
    config: FederationConfig,
    round_id: int,
    *,
    skip: Collection[int] = (),
) -> tuple[bytes | None, dict[int, str]]:
    """Ask the holder nodes (except the ``skip`` node ids, known down) to vote to abort
    ``round_id``; return the verified certificate's bytes (``None`` if too few voted) and each
    refusing holder index's reason."""
    asked = {node: index for index, node in enumerate(federation.holders, start=1)}
    asked = {node: index for node, index in asked.items() if node not in skip}
    replies = relay.ask(ACTION_ABORT, {node: {"round": round_id} for node in asked})
    votes: list[AbortVote] = []
    refused: dict[int, str] = {}
    for node, index in asked.items():
        reply = replies.get(node, "no reply")
        try:
            if isinstance(reply, str):
                raise MalformedMessage(f"no abort vote: {reply}")
            vote = AbortVote.from_bytes(record_bytes(reply, "vote"), config=config)
            if (vote.round_id, vote.holder_index) != (round_id, index):
                raise MalformedMessage(f"holder {index} sent a vote of another round or holder")
            vote.verify(federation.holder_keys[index])
        except FheAggError as exc:
            refused[index] = f"{type(exc).__name__}: {exc}"
            continue
        votes.append(vote)
    need = votes_needed(config)
    if len(votes) < need:
        log.error(
            "round %d: %d of %d abort votes (%s); the round stays open and clients will not "
            "re-send the same update",
            round_id,
            len(votes),
            need,
            refused,
        )
        return None, refused
    certificate = AbortCertificate(round_id, tuple(votes[:need]))
    certificate.verify(federation.holder_keys, config=config, public_key=federation.public_key)
    log.info("round %d closed by the abort votes of holders %s", round_id, certificate.voters)
    return certificate.to_bytes(), refused


def certificates_record(certificates: Mapping[int, bytes]) -> bytes:
    """The latest :data:`MAX_CERTIFICATES` certificates, as sent in a train message."""
    latest = [certificates[r] for r in sorted(certificates)[-MAX_CERTIFICATES:]]
    return rec.encode_blobs("abort-certificates", latest)
