"""The client-side mod: a train reply leaves the node clipped, encrypted and signed, or not at all."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from numpy.typing import NDArray

from fhe_agg._errors import (
    FheAggError,
    InvalidWeight,
    LayoutMismatch,
    MalformedMessage,
    Rejected,
)
from fhe_agg.ckks._packing import Layout, flatten
from fhe_agg.client._client import Client
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node import refuse
from fhe_agg.flower._node_state import NodeState, node_state
from fhe_agg.flower._protocol import MAX_CERTIFICATES, ROUND_RECORD, UPDATE_RECORD
from fhe_agg.holder._abort import AbortCertificate, max_certificate_bytes
from fhe_agg.protocol._config import FederationConfig

__all__ = ["arrays_to_vector", "secure_update_mod"]

ClientAppCallable = Callable[[Message, Context], Message]  # the next handler of a mod


def arrays_to_vector(arrays: ArrayRecord) -> tuple[NDArray[np.float64], Layout]:
    """Flatten an ``ArrayRecord`` in its key order (floating-point arrays; others stay local)."""
    return flatten({name: array.numpy() for name, array in arrays.items()})


def _single_arrays(content: RecordDict, what: str) -> ArrayRecord:
    records = list(content.array_records.values())
    if len(records) != 1:
        raise MalformedMessage(f"{what}: expected exactly one ArrayRecord, got {len(records)}")
    return records[0]


def secure_update_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Encrypt and sign the model update of every train reply; pass other messages through.

    The update is ``trained - global`` (the ``ArrayRecord`` of the reply minus the one received),
    clipped to the federation's L2 bound, weighted by the reply's ``MetricRecord`` value under
    the round's weight key (e.g. ``num-examples``), encrypted under the joint public key and
    signed with the node's ML-DSA key. Abort certificates in the round's record are shown to
    the client first (:meth:`~fhe_agg.Client.accept_abort`), so it may send the same update as
    for a round that released nothing. The reply then carries the
    :class:`~fhe_agg.EncryptedUpdate` bytes and the metrics, and no ``ArrayRecord``. A train
    message without an fhe_agg round (a server that does not aggregate securely), or a node
    without a finished setup, gets an error reply: plaintext weights never leave the node.
    """
    if message.metadata.message_type.split(".", 1)[0] != MessageType.TRAIN:
        return call_next(message, context)
    state: NodeState | None = None
    try:
        state = node_state(context)  # loaded from the node's state folder, closed below
        return _encrypted_reply(message, context, call_next, state)
    except (FheAggError, ValueError, TypeError, OSError) as exc:
        return refuse(message, exc)
    finally:
        if state is not None:
            state.close()


def _encrypted_reply(
    message: Message, context: Context, call_next: ClientAppCallable, state: NodeState | None
) -> Message:
    try:
        if state is None or state.client is None or state.setup is None:
            raise Rejected("this node has no fhe_agg setup; it sends no plaintext update")
        round_record = message.content.config_records.get(ROUND_RECORD)
        if round_record is None:
            raise Rejected("train message without an fhe_agg round: plaintext update refused")
        round_id, weight_key = round_record.get("round"), round_record.get("weight-key")
        if not isinstance(round_id, int) or not isinstance(weight_key, str):
            raise MalformedMessage(f"{ROUND_RECORD}: expected an integer round and a weight key")
        _accept_aborts(state.client, round_record)
        start, layout = arrays_to_vector(_single_arrays(message.content, "train message"))
    except (FheAggError, ValueError, TypeError) as exc:
        return refuse(message, exc)

    reply = call_next(message, context)
    if reply.has_error():
        return reply
    try:
        trained, trained_layout = arrays_to_vector(_single_arrays(reply.content, "train reply"))
        if trained_layout.digest != layout.digest:
            raise LayoutMismatch("the trained model's layout differs from the received one")
        client = state.client
        weight = _weight(reply.content, weight_key, client.config)
        delta, _ = client.prepare(trained - start, clip=state.setup.clip)
        chunks = client.encrypt_chunks(delta, round_id=round_id, weight=weight)
        update = client.sign_update(chunks, layout=layout, round_id=round_id, weight=weight)
    except Exception as exc:  # any failure must end in a refusal, never in plaintext
        return refuse(message, exc)
    content = RecordDict({UPDATE_RECORD: ConfigRecord({"update": update.to_bytes()})})
    for name, metrics in reply.content.metric_records.items():
        content[name] = metrics
    return Message(content, reply_to=message)


def _accept_aborts(client: Client, round_record: ConfigRecord) -> None:
    """Show the client the abort certificates the server sent (of rounds that released
    nothing); a certificate that does not verify refuses the whole message."""
    blob = round_record.get("abort-certificates")
    if blob is None:
        return
    if not isinstance(blob, bytes):
        raise MalformedMessage(f"{ROUND_RECORD}.abort-certificates: expected bytes")
    config = client.config
    for item in rec.decode_blobs(
        blob,
        "abort-certificates",
        max_items=MAX_CERTIFICATES,
        max_item=max_certificate_bytes(config),
    ):
        client.accept_abort(AbortCertificate.from_bytes(item, config=config))


def _weight(content: RecordDict, key: str, config: FederationConfig) -> float:
    for metrics in content.metric_records.values():
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            weight = float(value)
            low, high = config.min_weight, config.max_weight
            if not (math.isfinite(weight) and low <= weight <= high):
                raise InvalidWeight(f"{key}: {weight} outside [{low}, {high}] (min_weight)")
            return weight
    raise MalformedMessage(f"train reply: no metric {key!r} to weight the update with")
