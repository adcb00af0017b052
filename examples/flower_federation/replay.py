"""A test hook of the ServerApp: record the key holders' round requests, and replay them later.

Not part of the protocol. A server (or anyone on the path) that kept a round's requests to the
key holders can send them again in a later run; each holder must refuse a request for a round it
has decrypted (or an older one) without spending any budget. With the run config ``record-file``
the ServerApp sends through a :class:`RecordingGrid`, which writes every challenge and partial
request it carries (the ``fhe`` record, as sent) to that JSON file at the end of the run; with
``replay-file`` the ServerApp, after setup and before its first round, sends each recorded request
again through the Grid to the node that now plays the same key holder, and reports each reply
(Flower's error code and reason) in its summary under ``replayed``. Public Flower API only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fhe_agg.flower._protocol import ACTION_CHALLENGE, ACTION_DECRYPT, RECORD

RECORDED = (ACTION_CHALLENGE, ACTION_DECRYPT)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class RecordingGrid(Grid):
    """The ServerApp's Grid, unchanged, keeping a copy of every holder request it sends."""

    def __init__(self, grid: Grid, round_of: Callable[[], int]) -> None:
        self.grid = grid
        self.round_of = round_of  # the fhe_agg round id in progress
        self.sent: list[dict[str, Any]] = []

    def set_run(self, run: Any) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Any:
        return self.grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[Any]:
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(self._record(messages))

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.grid.send_and_receive(self._record(messages), timeout=timeout)

    def _record(self, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        for message in messages:
            action = message.metadata.message_type
            record = message.content.config_records.get(RECORD)
            if action in RECORDED and record is not None:
                self.sent.append(
                    {
                        "action": action,
                        "round": self.round_of(),
                        "node": message.metadata.dst_node_id,
                        "values": {k: _encode(v) for k, v in record.items()},
                    }
                )
        return messages

    def save(self, path: Path, holders: tuple[int, ...]) -> None:
        """Write the requests, each naming its key holder by index (Flower node ids change)."""
        rows = [
            {
                **{k: v for k, v in row.items() if k != "node"},
                "holder": holders.index(row["node"]) + 1,
            }
            for row in self.sent
            if row["node"] in holders
        ]
        path.write_text(json.dumps(rows))


def resend(
    grid: Grid, holders: tuple[int, ...], path: Path, *, timeout: float
) -> list[dict[str, Any]]:
    """Send every request recorded in ``path`` again, one at a time, to the node that is now
    key holder ``holder``; what each node answered (``error_code``/``reason`` if it refused)."""
    out: list[dict[str, Any]] = []
    for row in json.loads(path.read_text()):
        node = holders[int(row["holder"]) - 1]
        values = {k: _decode(v) for k, v in row["values"].items()}
        message = Message(
            RecordDict({RECORD: ConfigRecord(values)}), dst_node_id=node, message_type=row["action"]
        )
        replies = list(grid.send_and_receive([message], timeout=timeout))
        result: dict[str, Any] = {
            "action": row["action"],
            "round": row["round"],
            "holder": row["holder"],
            "node": node,
            "replied": bool(replies),
        }
        for reply in replies[:1]:
            if reply.has_error():
                result["error_code"] = int(reply.error.code)
                result["reason"] = reply.error.reason
            else:
                record = reply.content.config_records.get(RECORD)
                result["accepted"] = sorted(record.keys()) if record is not None else []
        out.append(result)
    return out
