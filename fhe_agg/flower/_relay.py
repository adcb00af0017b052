"""The server side of the node protocol: introductions, the relayed key ceremony and setup.

The server learns every node's public identity, picks the key holders among the nodes that
volunteer, relays the ceremony's signed messages among them (it can read commitments, seeds and
public-key shares, all public; the Shamir shares are sealed to their recipient) and hands the
joint public key, with every holder's signature over it, to all nodes. It never receives a
secret: holders keep their shares in their own process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flwr.app import ConfigRecord, ConfigRecordValues, Message, RecordDict
from flwr.serverapp import Grid

from fhe_agg._errors import (
    CeremonyError,
    FheAggError,
    MalformedMessage,
    ThresholdNotMet,
    describe,
)
from fhe_agg.ceremony._messages import CeremonyMessage, CeremonySpec, HolderIdentity
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.flower import _records as rec
from fhe_agg.flower._protocol import (
    ACTION_CEREMONY,
    ACTION_HELLO,
    ACTION_SETUP,
    CEREMONY_STEPS,
    RECORD,
    client_id_of,
    record_bytes,
)
from fhe_agg.identity import SealingPublicKey, Suite
from fhe_agg.identity._identity import check_member_id
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import VerifyKey

__all__ = ["Federation", "Relay", "set_up_federation"]

log = logging.getLogger("fhe_agg.flower")

Reply = ConfigRecord | str  # a reply's fhe record, or the error reason the node gave


def reply_of(reply: Message) -> Reply:
    """A node's reply as the relay reads it: its fhe record, or the reason it gave instead."""
    if reply.has_error():
        return reply.error.reason or "error reply"
    record = reply.content.config_records.get(RECORD)
    return record if record is not None else "reply without an fhe record"


class Relay:
    """Sends one fhe_agg query per node through a Flower ``Grid`` and collects the replies."""

    def __init__(self, grid: Grid, *, timeout: float) -> None:
        self.grid = grid
        self.timeout = timeout

    def ask(
        self, action: str, per_node: Mapping[int, dict[str, ConfigRecordValues]]
    ) -> dict[int, Reply]:
        """Replies by node id; a node that does not answer in time is absent."""
        messages = [
            Message(
                RecordDict({RECORD: ConfigRecord(values)}), dst_node_id=node, message_type=action
            )
            for node, values in per_node.items()
        ]
        out: dict[int, Reply] = {}
        for reply in self.grid.send_and_receive(messages, timeout=self.timeout):
            node = reply.metadata.src_node_id
            if node not in per_node or node in out:
                continue
            out[node] = reply_of(reply)
        return out

    def wait_for_nodes(self, count: int) -> list[int]:
        """The connected node ids once at least ``count`` are there (``ThresholdNotMet`` if not
        within the timeout)."""
        deadline = time.monotonic() + self.timeout
        while len(nodes := sorted(self.grid.get_node_ids())) < count:
            if time.monotonic() > deadline:
                raise ThresholdNotMet(f"{len(nodes)} nodes connected, {count} needed")
            time.sleep(0.1)
        return nodes


@dataclass(frozen=True)
class Federation:
    """What the server knows after setup: all public."""

    public_key: PublicKey
    roster: dict[str, VerifyKey]  # client id -> ML-DSA key
    node_of: dict[str, int]  # client id -> Flower node id (the nodes that send updates)
    holders: tuple[int, ...]  # Flower node id of holder index 1..n
    holder_keys: dict[int, VerifyKey]  # holder index -> ML-DSA key (ceremony, abort votes)
    key_reused: bool = False  # the holders held this epoch's key already: no ceremony ran


def _answered(reply: Reply, node: int) -> ConfigRecord:
    if isinstance(reply, str):
        raise CeremonyError(f"node {node} refused: {reply}")
    return reply


def _blob(reply: Reply, key: str, node: int) -> bytes:
    return record_bytes(_answered(reply, node), key, where=f"node {node}: {RECORD}")


def _name(record: ConfigRecord, node: int, taken: Iterable[str]) -> str:
    """The node's id: ``node-<id>`` unpinned, its roster member id pinned (unique either way)."""
    name = record.get("client_id")
    try:
        check_member_id(name)
    except (TypeError, ValueError):
        raise MalformedMessage(f"node {node} calls itself {name!r} (not a member id)") from None
    assert isinstance(name, str)
    if name in taken:
        raise MalformedMessage(f"node {node} calls itself {name!r}, as another node does")
    if name.startswith("node-") and name != client_id_of(node):
        raise MalformedMessage(f"node {node} calls itself {name!r}, another node's name")
    return name


Held = dict[int, tuple[bytes, bytes, bytes]]  # node -> (ceremony id, public key, endorsement)


def _introduce(
    relay: Relay, nodes: Iterable[int]
) -> tuple[dict[int, str], dict[int, HolderIdentity], dict[int, VerifyKey], Held]:
    """Every node's name, the key-holder volunteers, the nodes that send updates, and the key
    each volunteer already holds a share of (from an earlier run)."""
    replies = relay.ask(ACTION_HELLO, {n: {"hello": True} for n in nodes})
    names: dict[int, str] = {}
    volunteers: dict[int, HolderIdentity] = {}
    keys: dict[int, VerifyKey] = {}
    held: Held = {}
    for node, reply in sorted(replies.items()):
        try:
            record = _answered(reply, node)
            name = _name(record, node, names.values())
            sends = record.get("client")
            if not isinstance(sends, bool):
                raise MalformedMessage(f"node {node}: {RECORD}.client: expected a bool")
            verify = VerifyKey.from_bytes(record_bytes(record, "verify_key"))
            if record.get("holder") is True:
                sealing = record_bytes(record, "sealing_key")
                volunteers[node] = HolderIdentity(
                    verify,
                    SealingPublicKey.from_bytes(Suite.PQ_ONLY, sealing),
                )
                if isinstance(record.get("ceremony_id"), bytes):
                    held[node] = (
                        record_bytes(record, "ceremony_id"),
                        record_bytes(record, "public_key"),
                        record_bytes(record, "endorsement"),
                    )
        except FheAggError as exc:
            log.warning("node %d left out: %s", node, describe(exc))
            continue
        names[node] = name
        if sends:
            keys[node] = verify
    return names, volunteers, keys, held


def set_up_federation(
    relay: Relay,
    config: FederationConfig,
    *,
    clip: float | None,
    consortium: str,
    epoch: int,
    min_nodes: int,
) -> Federation:
    """Introductions, the dealerless ceremony among ``config.holders`` volunteers, and setup."""
    names, volunteers, keys, held = _introduce(relay, relay.wait_for_nodes(min_nodes))
    holder_nodes = _pick_holders(names, volunteers, config)
    spec = CeremonySpec(
        consortium=consortium,
        epoch=epoch,
        preset=config.preset,
        holders=tuple(names[n] for n in holder_nodes),
        threshold=config.threshold,
    )
    directory = {names[n]: volunteers[n] for n in holder_nodes}
    reused = _reuse(held, spec, holder_nodes)
    if reused is None:
        public_key, endorsements = _ceremony(relay, spec, directory, holder_nodes)
    else:  # every holder holds a share of the same key of this ceremony: no new ceremony
        public_key, endorsements = reused
        log.info("fhe_agg: the key holders hold this epoch's key already; no new ceremony")
    roster = {names[n]: keys[n] for n in keys}
    holder_keys = {names[n]: volunteers[n].verify_key for n in holder_nodes}
    setup: dict[str, ConfigRecordValues] = {
        "federation": rec.encode_config(config, clip=clip),
        "public_key": public_key.blob,
        "ceremony_id": spec.ceremony_id,
        "holders": rec.encode_roster(holder_keys),
        "endorsements": rec.encode_blobs(
            "endorsements", [endorsements[h] for h in sorted(holder_keys)]
        ),
        "roster": rec.encode_roster(roster),
        "holder_ids": list(spec.holders),  # ceremony order: holder index 1..n
        "consortium": consortium,
        "epoch": epoch,
    }
    _send_setup(relay, setup, names, holder_nodes)
    log.info(
        "fhe_agg federation ready: %d clients, %d-of-%d key holders on nodes %s",
        len(roster),
        config.threshold,
        config.holders,
        list(holder_nodes),
    )
    return Federation(
        public_key=public_key,
        roster=roster,
        node_of={names[n]: n for n in keys},
        holders=holder_nodes,
        holder_keys={k: volunteers[n].verify_key for k, n in enumerate(holder_nodes, start=1)},
        key_reused=reused is not None,
    )


def _pick_holders(
    names: Mapping[int, str], volunteers: Mapping[int, HolderIdentity], config: FederationConfig
) -> tuple[int, ...]:
    """The ``config.holders`` volunteers first by member id, not by Flower node id (which a
    restarted SuperNode changes): the same holders make the same ceremony spec, so a later run
    finds the key they hold (no new ceremony)."""
    if len(volunteers) < config.holders:
        raise ThresholdNotMet(
            f"{len(volunteers)} nodes volunteer as key holders, {config.holders} needed"
        )
    return tuple(sorted(volunteers, key=lambda n: names[n])[: config.holders])


def _send_setup(
    relay: Relay,
    setup: dict[str, ConfigRecordValues],
    names: Mapping[int, str],
    holders: tuple[int, ...],
) -> None:
    """Send every node the setup; a node that fails it is left out, a key holder may not."""
    ready = relay.ask(ACTION_SETUP, {n: setup for n in names})
    for node in names:
        if not isinstance(ready.get(node), ConfigRecord):
            log.warning("node %d failed setup: %s", node, ready.get(node, "no reply"))
    for n in holders:
        if not isinstance(ready.get(n), ConfigRecord):
            index = holders.index(n) + 1
            raise CeremonyError(
                f"key holder node {n} failed setup: {ready.get(n, 'no reply')}",
                party=names[n],
                holder_index=index,
            )


def _reuse(
    held: Held, spec: CeremonySpec, holders: tuple[int, ...]
) -> tuple[PublicKey, dict[str, bytes]] | None:
    """The key and endorsements if every holder reports a share of this ceremony's one key
    (each node checks the endorsements at setup, so a false report only fails the setup)."""
    found = [held.get(node) for node in holders]
    if any(f is None or f[0] != spec.ceremony_id for f in found):
        return None
    if len({f[1] for f in found if f is not None}) != 1:
        return None
    blob = found[0][1] if found[0] is not None else b""
    endorsements = {spec.holders[i]: f[2] for i, f in enumerate(found) if f is not None}
    return PublicKey.from_bytes(spec.preset, blob), endorsements


def _ceremony(
    relay: Relay,
    spec: CeremonySpec,
    directory: Mapping[str, HolderIdentity],
    holders: tuple[int, ...],
) -> tuple[PublicKey, dict[str, bytes]]:
    """Relay the seven ceremony steps; return the joint key and each holder's endorsement."""
    spec_bytes = rec.encode_spec(spec, directory)
    requests: dict[int, dict[str, ConfigRecordValues]] = {
        node: {"step": 0, "spec": spec_bytes} for node in holders
    }
    for step, name in enumerate(CEREMONY_STEPS):
        replies = relay.ask(ACTION_CEREMONY, requests)
        if name == "finish":
            return _finish(replies, spec, holders)
        outbox: list[bytes] = []
        for node in holders:
            blob = _blob(replies.get(node, "no reply"), "messages", node)
            outbox.extend(
                rec.decode_blobs(
                    blob,
                    "relay",
                    max_items=len(holders),
                    max_item=rec.CEREMONY_BLOB_BYTES,
                )
            )
        log.info("key ceremony: %s done by %d holders", name, len(holders))
        inboxes = _addressed(outbox, holders) if name == "deal" else _broadcast(outbox, holders)
        requests = {node: {"step": step + 1, "messages": inboxes[node]} for node in holders}
    raise AssertionError("unreachable")


def _broadcast(outbox: list[bytes], holders: tuple[int, ...]) -> dict[int, bytes]:
    """Every holder gets every message (commitments and reveals are public)."""
    return dict.fromkeys(holders, rec.encode_blobs("relay", outbox))


def _addressed(outbox: list[bytes], holders: tuple[int, ...]) -> dict[int, bytes]:
    """Each holder gets the shares sealed to it (holder index ``k`` is ``holders[k - 1]``)."""
    inbox: dict[int, list[bytes]] = {index: [] for index in range(1, len(holders) + 1)}
    for blob in outbox:
        recipient = CeremonyMessage.from_bytes(blob).recipient
        if recipient in inbox:
            inbox[recipient].append(blob)
    return {node: rec.encode_blobs("relay", inbox[k]) for k, node in enumerate(holders, start=1)}


def _finish(
    replies: Mapping[int, Reply], spec: CeremonySpec, holders: tuple[int, ...]
) -> tuple[PublicKey, dict[str, bytes]]:
    keys: set[bytes] = set()
    endorsements: dict[str, bytes] = {}
    for index, node in enumerate(holders, start=1):
        reply = replies.get(node, "no reply")
        keys.add(_blob(reply, "public_key", node))
        endorsements[spec.holders[index - 1]] = _blob(reply, "endorsement", node)
    if len(keys) != 1:
        raise CeremonyError("key holders derived different public keys")
    return PublicKey.from_bytes(spec.preset, keys.pop()), endorsements
