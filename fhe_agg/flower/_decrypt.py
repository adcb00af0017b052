"""Threshold decryption of one round's aggregate by the key-holder nodes of a fixed set.

:func:`decrypt_round` is a transport of the round's :class:`~fhe_agg.RoundCoordinator`: it sends
the coordinator's outstanding requests to the holder nodes as one batch per step (Flower's
``send_and_receive``) and hands the replies back; the coordinator decides what comes next. So
every member's challenge is in before any member is asked for a partial, and if a member does
not answer its challenge nobody decrypts: the caller leaves that holder out of later sets and has
the round closed (:mod:`fhe_agg.flower._closure`).
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import ConfigRecordValues
from numpy.typing import NDArray

from fhe_agg._errors import (
    AggregateMismatch,
    DecryptionAborted,
    FheAggError,
    MalformedMessage,
    located,
)
from fhe_agg.ckks._packing import Layout
from fhe_agg.flower._protocol import ACTION_CHALLENGE, ACTION_DECRYPT, record_bytes
from fhe_agg.flower._relay import Federation, Relay
from fhe_agg.flower._report import Refusal, RoundReport
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._round_messages import (
    ChallengeReply,
    ChallengeRequest,
    PartialReply,
    PartialRequest,
    RoundPhase,
)
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["decrypt_round"]

log = logging.getLogger("fhe_agg.flower")


def decrypt_round(
    relay: Relay,
    federation: Federation,
    coordinator: RoundCoordinator,
    layout: Layout,
    report: RoundReport,
) -> tuple[NDArray[np.float64] | None, set[int]]:
    """Carry the finalized ``coordinator``'s challenge and partial requests to the holder nodes.

    Returns the decrypted mean (``None`` if nothing was released; ``report.reason`` says why and
    ``report.refused`` names each refusing holder) and the indices of the members that missed
    their challenge.
    """
    blob = coordinator.aggregate.to_bytes()  # sent with the challenges and the partials
    down = _challenges(relay, federation, coordinator, blob, layout, report)
    if coordinator.phase is RoundPhase.DECRYPTING:
        _partials(relay, federation, coordinator, blob, layout, report)
    missing = tuple(j for j in coordinator.decrypting_set if j not in coordinator.delivered)
    try:
        if missing:
            raise DecryptionAborted(
                f"holders {missing} of the decrypting set did not deliver; round "
                f"{coordinator.round_id} is aborted: re-run it with fresh encryptions",
                round_id=coordinator.round_id,
            )
        return coordinator.release(), down
    except FheAggError as exc:
        report.reason = Refusal.of(exc)
        log.error("round %d: decryption aborted: %s", report.round, report.reason)
        return None, down


def _challenges(
    relay: Relay,
    federation: Federation,
    coordinator: RoundCoordinator,
    blob: bytes,
    layout: Layout,
    report: RoundReport,
) -> set[int]:
    """Every member's challenge of the aggregate ``blob``, in one batch; the members that did
    not answer one."""
    requests = [r for r in coordinator.requests() if isinstance(r, ChallengeRequest)]
    layout_blob = layout.to_bytes()
    nodes = {federation.holders[r.holder_index - 1]: r for r in requests}
    replies = relay.ask(
        ACTION_CHALLENGE, {n: {"aggregate": blob, "layout": layout_blob} for n in nodes}
    )
    digest = coordinator.state().aggregate_digest
    down: set[int] = set()
    for node, request in nodes.items():
        index = request.holder_index
        try:
            with located(round_id=request.round_id, holder_index=index):
                reply = replies.get(node, "no reply")
                if isinstance(reply, str):
                    raise MalformedMessage(f"challenge refused: {reply}")
                wanted = reply.get("indices")
                if not isinstance(wanted, list):
                    raise MalformedMessage("the challenge lists no chunk indices")
                indices = tuple(sorted({int(i) for i in wanted}))
                coordinator.accept(ChallengeReply(request.round_id, index, digest, indices))
        except (FheAggError, ValueError, TypeError) as exc:
            _holder_refused(report, index, node, exc)
            down.add(index)
    return down


def _partials(
    relay: Relay,
    federation: Federation,
    coordinator: RoundCoordinator,
    blob: bytes,
    layout: Layout,
    report: RoundReport,
) -> None:
    """Every member's partial decryption, in one batch, with the aggregate it challenged (a
    holder node keeps only its digest) and the evidence it challenged for."""
    requests = [r for r in coordinator.requests() if isinstance(r, PartialRequest)]
    evidence: dict[tuple[int, ...], bytes] = {}  # by challenged indices: holders often agree
    asked: dict[int, dict[str, ConfigRecordValues]] = {}
    for request in requests:
        indices = tuple(sorted(request.evidence.chunks))
        if indices not in evidence:
            evidence[indices] = request.evidence.to_bytes()
        asked[federation.holders[request.holder_index - 1]] = {
            "round": request.round_id,
            "aggregate": blob,
            "evidence": evidence[indices],
            "set": list(request.decrypting_set),
        }
    replies = relay.ask(ACTION_DECRYPT, asked)
    config = coordinator.config
    for node, request in zip(asked, requests, strict=True):
        index = request.holder_index
        try:
            with located(round_id=request.round_id, holder_index=index):
                reply = replies.get(node, "no reply")
                if isinstance(reply, str):
                    raise MalformedMessage(f"no partial decryption: {reply}")
                partial = PartialDecryption.from_bytes(
                    record_bytes(reply, "partial"), config=config, layout=layout
                )
                if partial.holder_index != index:  # the node answers for itself only
                    raise AggregateMismatch(
                        f"holder {index} sent a partial of holder {partial.holder_index}"
                    )
                coordinator.accept(PartialReply(partial))
        except FheAggError as exc:
            _holder_refused(report, index, node, exc)


def _holder_refused(report: RoundReport, index: int, node: int, exc: Exception) -> None:
    report.refused[f"holder-{index}"] = Refusal.of(exc)
    log.warning(
        "round %d: key holder %d (node %d) refused: %s",
        report.round,
        index,
        node,
        report.refused[f"holder-{index}"],
    )
