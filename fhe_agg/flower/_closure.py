"""Closing a round that released nothing: the server collects abort votes from holder nodes.

Clients refuse to send an update they already sent for a round that is not proven closed (their
training is often deterministic, so the update after a failed round is the same). After a round
that released nothing, :func:`close_round` carries the round coordinator's vote requests (to
every holder node that issued no partial and may still answer); ``holders - threshold + 1`` valid votes make an :class:`~fhe_agg.AbortCertificate`,
which the strategy sends with the next train messages (:func:`certificates_record`) and
``secure_update_mod`` shows to each client. A holder that issued a partial of the round refuses
to vote; if too few can vote, the round stays open and the clients re-train or stay out.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from fhe_agg._errors import FheAggError, MalformedMessage, ThresholdNotMet, located
from fhe_agg.flower import _records as rec
from fhe_agg.flower._protocol import ACTION_ABORT, MAX_CERTIFICATES, record_bytes
from fhe_agg.flower._relay import Federation, Relay
from fhe_agg.flower._report import Refusal
from fhe_agg.holder._abort import AbortVote
from fhe_agg.protocol._round_messages import RoundPhase, VoteReply, VoteRequest
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["certificates_record", "close_round"]

log = logging.getLogger("fhe_agg.flower")


def close_round(
    relay: Relay,
    federation: Federation,
    coordinator: RoundCoordinator,
    *,
    skip: Collection[int] = (),
) -> tuple[bytes | None, dict[int, Refusal]]:
    """Abort ``coordinator``'s round (if still open) and carry its vote requests to the holder
    nodes (except the ``skip`` node ids, known down); return the certificate's bytes (``None``
    if too few voted) and each refusing holder index's reason. The coordinator verifies every
    vote (it knows the holders' keys)."""
    if coordinator.phase is not RoundPhase.VOTING:
        coordinator.abort()
    asked = {
        federation.holders[r.holder_index - 1]: r
        for r in coordinator.requests()
        if isinstance(r, VoteRequest) and federation.holders[r.holder_index - 1] not in skip
    }
    round_id = coordinator.round_id
    replies = relay.ask(ACTION_ABORT, {node: {"round": round_id} for node in asked})
    refused: dict[int, Refusal] = {}
    for node, request in asked.items():
        index = request.holder_index
        reply = replies.get(node, "no reply")
        try:
            with located(round_id=round_id, holder_index=index):
                if isinstance(reply, str):
                    raise MalformedMessage(f"no abort vote: {reply}")
                vote = AbortVote.from_bytes(record_bytes(reply, "vote"), config=coordinator.config)
                if vote.holder_index != index:  # the node answers for itself only
                    raise MalformedMessage(
                        f"holder {index} sent a vote of holder {vote.holder_index}"
                    )
                coordinator.accept(VoteReply(vote))
        except FheAggError as exc:
            refused[index] = Refusal.of(exc)
    try:
        certificate = coordinator.certificate()
    except ThresholdNotMet as exc:
        log.error(
            "round %d: %s (%s); the round stays open and clients will not re-send the same update",
            round_id,
            exc,
            refused,
        )
        return None, refused
    certificate.verify(
        federation.holder_keys, config=coordinator.config, public_key=federation.public_key
    )
    log.info("round %d closed by the abort votes of holders %s", round_id, certificate.voters)
    return certificate.to_bytes(), refused


def certificates_record(certificates: Mapping[int, bytes]) -> bytes:
    """The latest :data:`MAX_CERTIFICATES` certificates, as sent in a train message."""
    latest = [certificates[r] for r in sorted(certificates)[-MAX_CERTIFICATES:]]
    return rec.encode_blobs("abort-certificates", latest)
