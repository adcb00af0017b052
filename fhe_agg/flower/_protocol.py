"""Names shared by the server and node sides: message actions, record keys, node client ids,
and the typed reading of record values."""

from __future__ import annotations

from flwr.app import ConfigRecord, ConfigRecordValues, Message, RecordDict

from fhe_agg._errors import MalformedMessage
from fhe_agg.ceremony._ceremony import CEREMONY_STEPS

__all__ = [
    "ACTION_ABORT",
    "ACTION_CEREMONY",
    "ACTION_CHALLENGE",
    "ACTION_DECRYPT",
    "ACTION_HELLO",
    "ACTION_SETUP",
    "CEREMONY_STEPS",
    "CLIENT_APP_RAISED_EXCEPTION",
    "MAX_CERTIFICATES",
    "RECORD",
    "ROUND_RECORD",
    "UPDATE_RECORD",
    "client_id_of",
    "node_reply",
    "query_record",
    "record_bytes",
    "record_int",
]

#: The ``ConfigRecord`` every fhe_agg query and reply carries.
RECORD = "fhe"
#: Added to a train message: the round id, weight key and layout the client must use.
ROUND_RECORD = "fhe.round"
#: Replaces the plaintext ``ArrayRecord`` of a train reply: the signed encrypted update.
UPDATE_RECORD = "fhe.update"

ACTION_HELLO = "query.fhe_hello"
ACTION_CEREMONY = "query.fhe_ceremony"
ACTION_SETUP = "query.fhe_setup"
ACTION_CHALLENGE = "query.fhe_challenge"
ACTION_DECRYPT = "query.fhe_decrypt"
ACTION_ABORT = "query.fhe_abort"
#: Flower's error code of a ClientApp that raised (``ErrorCode`` lives in a module Flower does not
#: export; tests/test_flower_state.py checks the value against it).
CLIENT_APP_RAISED_EXCEPTION = 2
#: Most abort certificates a train message carries (those of the latest unreleased rounds).
MAX_CERTIFICATES = 8


def client_id_of(node_id: int) -> str:
    """The client id a Flower node signs its updates with."""
    return f"node-{node_id}"


def record_bytes(record: ConfigRecord, key: str, *, where: str = RECORD) -> bytes:
    """``record[key]`` if it is bytes; :class:`~fhe_agg.MalformedMessage` naming it if not."""
    value = record.get(key)
    if not isinstance(value, bytes):
        raise MalformedMessage(f"{where}.{key}: expected bytes")
    return value


def record_int(record: ConfigRecord, key: str, *, where: str = RECORD) -> int:
    """``record[key]`` if it is an integer (not a bool); :class:`~fhe_agg.MalformedMessage` if not."""
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage(f"{where}.{key}: expected an integer")
    return value


def query_record(message: Message) -> ConfigRecord:
    """The :data:`RECORD` of a query; :class:`~fhe_agg.MalformedMessage` if it has none."""
    record = message.content.config_records.get(RECORD)
    if record is None:
        raise MalformedMessage(f"{message.metadata.message_type}: no {RECORD!r} ConfigRecord")
    return record


def node_reply(message: Message, values: dict[str, ConfigRecordValues]) -> Message:
    """A node's reply to ``message`` carrying ``values`` in its :data:`RECORD`."""
    return Message(RecordDict({RECORD: ConfigRecord(values)}), reply_to=message)
