"""Threshold decryption of one round's aggregate by the key-holder nodes of a fixed set.

:func:`decrypt_round` sends the aggregate to every member of the round's decrypting set, answers
each member's challenge with the evidence it asks for, and only once every member has answered
asks them for their partial decryptions, which a :class:`~fhe_agg.DecryptionSession` combines.
If a member does not answer its challenge, nobody decrypts: the caller leaves that holder out of
later sets and has the round closed (:mod:`fhe_agg.flower._closure`).
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import ConfigRecordValues
from numpy.typing import NDArray

from fhe_agg._aggregator import Aggregator
from fhe_agg._config import FederationConfig
from fhe_agg._decryption import DecryptionSession
from fhe_agg._dp import PrivacyAccountant
from fhe_agg._errors import AggregateMismatch, FheAggError, MalformedMessage
from fhe_agg._messages import EncryptedAggregate
from fhe_agg._packing import Layout
from fhe_agg._partial import PartialDecryption
from fhe_agg.flower._protocol import ACTION_CHALLENGE, ACTION_DECRYPT, record_bytes
from fhe_agg.flower._relay import Federation, Relay
from fhe_agg.flower._report import RoundReport

__all__ = ["decrypt_round"]

log = logging.getLogger("fhe_agg.flower")


def decrypt_round(
    relay: Relay,
    federation: Federation,
    config: FederationConfig,
    aggregator: Aggregator,
    aggregate: EncryptedAggregate,
    layout: Layout,
    report: RoundReport,
    *,
    accountant: PrivacyAccountant | None = None,
) -> tuple[NDArray[np.float64] | None, set[int]]:
    """Challenge, evidence and partial decryption with ``report.decrypting_set``.

    Returns the decrypted mean (``None`` if nothing was released; ``report.reason`` says why and
    ``report.refused`` names each refusing holder) and the indices of the members that missed
    their challenge.
    """
    members = report.decrypting_set
    try:  # with DP, refuses up front a release beyond the privacy budget
        session = DecryptionSession(
            aggregate,
            config=config,
            layout=layout,
            decrypting_set=members,
            accountant=accountant,
        )
    except FheAggError as exc:
        report.reason = f"{type(exc).__name__}: {exc}"
        log.error("round %d: not decrypted: %s", report.round, report.reason)
        return None, set()
    nodes = {federation.holders[i - 1]: i for i in members}
    blob, layout_blob = aggregate.to_bytes(), layout.to_bytes()
    challenges = relay.ask(
        ACTION_CHALLENGE, {n: {"aggregate": blob, "layout": layout_blob} for n in nodes}
    )
    requests: dict[int, dict[str, ConfigRecordValues]] = {}
    evidence: dict[tuple[int, ...], bytes] = {}  # by challenged indices: holders often agree
    chunk_count = len(aggregate.chunks)
    for node, index in nodes.items():
        try:
            reply = challenges.get(node, "no reply")
            if isinstance(reply, str):
                raise MalformedMessage(f"challenge refused: {reply}")
            wanted = reply.get("indices")
            if not isinstance(wanted, list) or not 0 < len(wanted) <= chunk_count:
                raise MalformedMessage("the challenge lists no chunk indices")
            indices = tuple(sorted({int(i) for i in wanted}))
            if indices not in evidence:
                evidence[indices] = aggregator.evidence(indices).to_bytes()
        except (FheAggError, ValueError, TypeError) as exc:
            _holder_refused(report, index, node, exc)
            continue
        requests[node] = {
            "round": aggregate.round_id,
            "evidence": evidence[indices],
            "set": list(members),
        }
    down = {i for n, i in nodes.items() if n not in requests}
    if down:  # a member is down: nobody decrypts this round
        requests = {}
    partials = relay.ask(ACTION_DECRYPT, requests) if requests else {}
    for node in requests:
        index = nodes[node]
        try:
            reply = partials.get(node, "no reply")
            if isinstance(reply, str):
                raise MalformedMessage(f"no partial decryption: {reply}")
            partial = PartialDecryption.from_bytes(
                record_bytes(reply, "partial"), config=config, layout=layout
            )
            if partial.holder_index != index:
                raise AggregateMismatch(
                    f"holder {index} sent a partial of holder {partial.holder_index}"
                )
            session.add(partial)
        except FheAggError as exc:
            _holder_refused(report, index, node, exc)
    try:
        return session.release(), down
    except FheAggError as exc:
        report.reason = f"{type(exc).__name__}: {exc}"
        log.error("round %d: decryption aborted: %s", report.round, report.reason)
        return None, down


def _holder_refused(report: RoundReport, index: int, node: int, exc: Exception) -> None:
    report.refused[f"holder-{index}"] = f"{type(exc).__name__}: {exc}"
    log.warning(
        "round %d: key holder %d (node %d) refused: %s",
        report.round,
        index,
        node,
        report.refused[f"holder-{index}"],
    )
