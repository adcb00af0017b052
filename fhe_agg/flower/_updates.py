"""A round's train replies turned into the coordinator's updates.

Each reply must carry an encrypted update signed by the node that sent it (its member id, or
``node-<id>`` unpinned); the :class:`~fhe_agg.Aggregator` behind the coordinator checks the
rest (signature, roster, round, layout, duplicates). A refused reply is reported and logged, and
the round goes on while ``min_clients`` remain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from flwr.app import Message, RecordDict

from fhe_agg._errors import FheAggError, MalformedMessage, NotInRoster, located
from fhe_agg.flower._protocol import UPDATE_RECORD, client_id_of, record_bytes
from fhe_agg.flower._report import Refusal, RoundReport
from fhe_agg.protocol._messages import EncryptedUpdate
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["collect_updates"]

log = logging.getLogger("fhe_agg.flower")


def collect_updates(
    coordinator: RoundCoordinator,
    replies: Iterable[Message],
    report: RoundReport,
    node_of: Mapping[str, int],
) -> list[RecordDict]:
    """Add every reply's update to ``coordinator``; return the accepted replies' contents
    (their metrics) and name each refused party in ``report``."""
    contents = []
    name_of = {node: name for name, node in node_of.items()}
    for reply in replies:
        node = reply.metadata.src_node_id
        party = name_of.get(node, client_id_of(node))
        try:
            with located(round_id=report.round, party=party):
                if reply.has_error():
                    raise MalformedMessage(f"error reply: {reply.error.reason}")
                record = reply.content.config_records.get(UPDATE_RECORD)
                if record is None:
                    raise MalformedMessage("the reply carries no encrypted update")
                data = record_bytes(record, "update", where=UPDATE_RECORD)
                update = EncryptedUpdate.from_bytes(data, coordinator.aggregator.bounds)
                if update.statement.client_id != party:
                    raise NotInRoster(
                        f"{party} sent an update signed as {update.statement.client_id!r}"
                    )
                coordinator.add(update)
        except FheAggError as exc:
            report.refused[party] = Refusal.of(exc)
            log.warning(
                "round %d: refused the update of %s: %s",
                report.round,
                party,
                report.refused[party],
            )
            continue
        report.accepted.append(party)
        contents.append(reply.content)
    return contents
