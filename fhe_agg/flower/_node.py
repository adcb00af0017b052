"""The node side: identities, the key ceremony and partial decryption, in node process memory.

Each node keeps a :class:`NodeState` in the memory of the process that runs its ``ClientApp``;
nothing secret goes into Flower's ``Context`` (which a simulation keeps on the server side) or on
disk. A key holder's :class:`~fhe_agg.KeyShare` is created by the dealerless ceremony inside
this process and lives only inside its :class:`~fhe_agg.KeyHolder`. The server only relays
ceremony messages, which are signed, and the shares among them sealed to their recipient.

With a :class:`~fhe_agg.flower.PinnedRoster` (``enable_secure_aggregation(..., pinned=...)``)
the node uses its roster identity and checks every relayed directory against the admin-signed
roster (:mod:`fhe_agg.flower._pinned`); without one it trusts the server's directory and says so
in one warning at setup.

The state therefore needs a ``ClientApp`` process that outlives one message, as the runtime of
:func:`fhe_agg.flower.run_simulation` gives (one long-lived process per node). A runtime that
starts a fresh process per message (Flower's deployment SuperNode) would lose it; the handlers
then refuse with an error naming the missing state instead of silently re-keying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, ConfigRecordValues, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

from fhe_agg._ceremony import CEREMONY_STEPS, CeremonyMember, CeremonyMessage, CeremonySpec
from fhe_agg._client import Client
from fhe_agg._config import FederationConfig
from fhe_agg._errors import CeremonyError, FheAggError, MalformedMessage, ParameterMismatch
from fhe_agg._evidence import AggregateEvidence
from fhe_agg._keyholder import KeyHolder
from fhe_agg._keys import KeyShare, PublicKey
from fhe_agg._messages import EncryptedAggregate, MessageBounds
from fhe_agg._packing import Layout
from fhe_agg._round_holder import HolderRound
from fhe_agg._round_messages import ChallengeRequest, PartialReply, PartialRequest, VoteRequest
from fhe_agg._signing import SigningKey, VerifyKey
from fhe_agg.flower import _records as rec
from fhe_agg.flower._pinned import Pin, PinnedRoster
from fhe_agg.flower._protocol import (
    ACTION_ABORT,
    ACTION_CEREMONY,
    ACTION_CHALLENGE,
    ACTION_DECRYPT,
    ACTION_HELLO,
    ACTION_SETUP,
    RECORD,
    client_id_of,
    record_bytes,
    record_int,
)
from fhe_agg.identity import SealingPrivateKey, Suite

__all__ = ["NodeState", "enable_secure_aggregation", "node_state", "refuse"]

log = logging.getLogger("fhe_agg.flower")

KeyHolderPolicy = bool | Callable[[Context], bool]
PinnedPolicy = Callable[[Context], PinnedRoster | None]


@dataclass(eq=False)
class NodeState:
    """What one node keeps between messages. Its repr shows no key material."""

    client_id: str
    signing_key: SigningKey
    sealing_key: SealingPrivateKey | None
    pin: Pin | None = None
    member: CeremonyMember | None = None
    spec: CeremonySpec | None = None
    ceremony_key: PublicKey | None = None
    key_share: KeyShare | None = None
    config: FederationConfig | None = None
    clip: float | None = None
    client: Client | None = None
    key_holder: KeyHolder | None = None
    pending: tuple[int, EncryptedAggregate, Layout] | None = field(default=None, repr=False)
    machine: HolderRound | None = field(default=None, repr=False)

    @property
    def is_holder(self) -> bool:
        return self.sealing_key is not None

    @property
    def sends_updates(self) -> bool:
        """Unpinned, every node trains; pinned, only roster clients (holders only decrypt)."""
        return self.pin is None or not self.pin.is_holder

    def __repr__(self) -> str:
        role = "holder" if self.is_holder else "client"
        return f"NodeState({self.client_id!r}, {role}, ready={self.client is not None})"


_NODES: dict[tuple[int, int], NodeState] = {}


def node_state(context: Context) -> NodeState | None:
    """This node's state in this process for the context's run (``None`` before hello)."""
    return _NODES.get((context.run_id, context.node_id))


def refuse(message: Message, exc: Exception) -> Message:
    """An error reply naming the refusal (typed error and message; never key material)."""
    log.warning("node refused %s: %s: %s", message.metadata.message_type, type(exc).__name__, exc)
    reason = f"{type(exc).__name__}: {exc}"
    return Message(
        Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message
    )


def _reply(message: Message, values: dict[str, ConfigRecordValues]) -> Message:
    return Message(RecordDict({RECORD: ConfigRecord(values)}), reply_to=message)


def _record(message: Message) -> ConfigRecord:
    record = message.content.config_records.get(RECORD)
    if record is None:
        raise MalformedMessage(f"{message.metadata.message_type}: no {RECORD!r} ConfigRecord")
    return record


def _require(context: Context) -> NodeState:
    state = node_state(context)
    if state is None:
        raise CeremonyError(
            "this process holds no fhe_agg state for the node: the ClientApp must run in one "
            "long-lived process per node (see fhe_agg.flower.run_simulation)"
        )
    return state


def _new_state(context: Context, holder: bool, pinned: PinnedRoster | None) -> NodeState:
    if pinned is None:
        sealing = SealingPrivateKey.generate(Suite.PQ_ONLY) if holder else None
        return NodeState(client_id_of(context.node_id), SigningKey.generate(), sealing)
    pin = Pin.load(pinned)
    identity = pin.identity
    sealing = identity.sealing_key if pin.is_holder else None
    return NodeState(identity.id, identity.update_signing_key(), sealing, pin=pin)


def _hello(
    message: Message, context: Context, holder: bool, pinned: PinnedRoster | None
) -> Message:
    key = (context.run_id, context.node_id)
    state = _NODES.get(key)
    if state is None:
        state = _new_state(context, holder, pinned)
        _NODES[key] = state
    sealing_public = b"" if state.sealing_key is None else state.sealing_key.public_key.to_bytes()
    return _reply(
        message,
        {
            "client_id": state.client_id,
            "verify_key": state.signing_key.verify_key.to_bytes(),
            "holder": state.is_holder,
            "client": state.sends_updates,
            "sealing_key": sealing_public,
        },
    )


def _ceremony(message: Message, context: Context) -> Message:
    state = _require(context)
    if state.sealing_key is None:
        raise CeremonyError(f"{state.client_id} is not a key holder")
    record = _record(message)
    step = record_int(record, "step")
    if step == 0:
        new_spec, directory = rec.decode_spec(record_bytes(record, "spec"))
        mine = directory.get(state.client_id)
        if mine is None or mine.verify_key != state.signing_key.verify_key:
            raise CeremonyError(f"the ceremony's directory misstates {state.client_id}")
        if state.pin is not None:
            state.pin.check_ceremony(new_spec, directory)
        state.member = CeremonyMember(
            spec=new_spec,
            holder_id=state.client_id,
            signing_key=state.signing_key,
            sealing_key=state.sealing_key,
            directory=directory,
        )
        state.spec, state.ceremony_key, state.key_share = new_spec, None, None
        return _reply(message, {"messages": _outs(state.member, 0, [])})
    member, spec = state.member, state.spec
    if member is None or spec is None or not 1 <= step < len(CEREMONY_STEPS):
        raise CeremonyError(f"ceremony step {step!r} is out of order")
    blobs = rec.decode_blobs(
        record_bytes(record, "messages"),
        "relay",
        max_items=len(spec.holders),
        max_item=rec.CEREMONY_BLOB_BYTES,
    )
    incoming = [CeremonyMessage.from_bytes(b) for b in blobs]
    if step < len(CEREMONY_STEPS) - 1:
        return _reply(message, {"messages": _outs(member, step, incoming)})
    public_key, share = member.finish(incoming)
    state.member, state.ceremony_key, state.key_share = None, public_key, share
    signature = state.signing_key.sign(
        rec.endorsement(spec.ceremony_id, public_key), context=rec.ENDORSEMENT_CONTEXT
    )
    return _reply(message, {"public_key": public_key.blob, "endorsement": signature})


def _outs(member: CeremonyMember, step: int, incoming: list[CeremonyMessage]) -> bytes:
    """Ceremony step ``step`` (0..5) on ``incoming``: the messages to relay, encoded."""
    if step == 0:
        out = [member.seed_commitment()]
    elif step == 1:
        out = [member.reveal_seed(incoming)]
    elif step == 2:
        out = [member.key_commitment(incoming)]
    elif step == 3:
        out = [member.reveal_public_share(incoming)]
    elif step == 4:
        out = [member.confirm(incoming)]
    else:
        out = member.deal(incoming)
    return rec.encode_blobs("relay", [m.to_bytes() for m in out])


def _setup(message: Message, context: Context) -> Message:
    state = _require(context)
    record = _record(message)
    config, clip = rec.decode_config(record_bytes(record, "federation"))
    public_key = PublicKey.from_bytes(config.preset, record_bytes(record, "public_key"))
    if state.client is not None and state.client.public_key.blob != public_key.blob:
        raise ParameterMismatch("this node already uses another joint public key")
    ceremony_id = record_bytes(record, "ceremony_id")
    holders = rec.decode_roster(record_bytes(record, "holders"), max_members=rec.MAX_HOLDERS)
    order = record.get("holder_ids")
    if not isinstance(order, list) or not all(isinstance(h, str) for h in order):
        raise MalformedMessage(f"{RECORD}.holder_ids: expected a list of holder ids")
    order = [str(h) for h in order]
    if sorted(order) != sorted(holders):
        raise MalformedMessage(f"{RECORD}.holder_ids: expected the key holders in ceremony order")
    signatures = rec.decode_blobs(
        record_bytes(record, "endorsements"),
        "endorsements",
        max_items=rec.MAX_HOLDERS,
        max_item=8192,
    )
    _check_endorsements(holders, signatures, config, ceremony_id, public_key)
    relayed = rec.decode_roster(record_bytes(record, "roster"), max_members=rec.MAX_NODES)
    if state.pin is None:
        log.warning(
            "%s: unpinned mode, identities (clients, key holders) are trusted from the server",
            state.client_id,
        )
        roster = relayed
    else:  # nothing relayed is used unless the pinned roster states it
        roster = state.pin.check_setup(config, holders, relayed)
    if state.is_holder:  # only a key holder checks manifests against the roster
        if state.key_share is None or state.ceremony_key is None:
            raise CeremonyError(f"{state.client_id} finished no key ceremony")
        if state.ceremony_key.blob != public_key.blob:
            raise ParameterMismatch(
                "the public key differs from the one this holder's ceremony made"
            )
        state.key_holder = KeyHolder(
            holder_id=state.client_id,
            config=config,
            public_key=public_key,
            key_share=state.key_share,
            roster=roster,
            signing_key=state.signing_key,  # the key it signed the ceremony with: abort votes
        )
    state.config, state.clip = config, clip
    state.client = Client(
        client_id=state.client_id,
        signing_key=state.signing_key,
        config=config,
        public_key=public_key,
        holder_keys={i: holders[h] for i, h in enumerate(order, start=1)},
    )
    return _reply(message, {"ready": True})


def _check_endorsements(
    holders: dict[str, VerifyKey],
    signatures: list[bytes],
    config: FederationConfig,
    ceremony_id: bytes,
    public_key: PublicKey,
) -> None:
    """Every key holder must have signed this public key for this ceremony."""
    if len(holders) != config.holders or len(signatures) != len(holders):
        raise CeremonyError(
            f"expected endorsements of all {config.holders} key holders, got {len(signatures)}"
        )
    statement = rec.endorsement(ceremony_id, public_key)
    for holder_id, signature in zip(sorted(holders), signatures, strict=True):
        holders[holder_id].verify(signature, statement, context=rec.ENDORSEMENT_CONTEXT)


def _holder(context: Context) -> tuple[NodeState, KeyHolder, FederationConfig]:
    state = _require(context)
    if state.key_holder is None or state.config is None:
        raise CeremonyError(f"{state.client_id} holds no key share in this process")
    return state, state.key_holder, state.config


def _challenge(message: Message, context: Context) -> Message:
    state, holder, config = _holder(context)
    record = _record(message)
    layout = Layout.from_bytes(record_bytes(record, "layout"))
    aggregate = EncryptedAggregate.from_bytes(
        record_bytes(record, "aggregate"),
        MessageBounds.for_round(config, layout),
    )
    if state.machine is None or state.machine.holder is not holder:  # one per node: it answers
        state.machine = HolderRound(holder, layout=layout)  # a partial only after its challenge
    reply = state.machine.challenge(
        ChallengeRequest(aggregate.round_id, holder.holder_index, aggregate)
    )
    state.machine.layout = layout  # the round's layout, for its partial
    state.pending = (aggregate.round_id, aggregate, layout)
    return _reply(message, {"indices": list(reply.indices)})


def _decrypt(message: Message, context: Context) -> Message:
    state, holder, config = _holder(context)
    record = _record(message)
    pending, state.pending = state.pending, None
    round_id = record_int(record, "round")
    if pending is None or pending[0] != round_id or state.machine is None:
        raise CeremonyError(f"no aggregate of round {round_id} was challenged here")
    _, aggregate, layout = pending
    members = record.get("set")
    if not isinstance(members, list) or not all(isinstance(m, int) for m in members):
        raise MalformedMessage("fhe.set: expected a list of holder indices")
    evidence = AggregateEvidence.from_bytes(
        record_bytes(record, "evidence"), config=config, layout=layout
    )
    members_ = tuple(int(m) for m in members)
    reply = state.machine.partial(
        PartialRequest(round_id, holder.holder_index, aggregate, evidence, members_)
    )
    assert isinstance(reply, PartialReply)
    return _reply(message, {"partial": reply.partial.to_bytes(config)})


def _abort(message: Message, context: Context) -> Message:
    """Vote to abort a round this holder issued nothing for (it never decrypts it then)."""
    state, holder, _ = _holder(context)
    round_id = record_int(_record(message), "round")
    if state.pending is not None and state.pending[0] == round_id:
        state.pending = None
    if state.machine is None or state.machine.holder is not holder:
        return _reply(message, {"vote": holder.vote_abort(round_id).to_bytes()})
    vote = state.machine.vote(VoteRequest(round_id, holder.holder_index)).vote
    return _reply(message, {"vote": vote.to_bytes()})


def _guarded(
    handler: Callable[[Message, Context], Message],
) -> Callable[[Message, Context], Message]:
    def run(message: Message, context: Context) -> Message:
        try:
            return handler(message, context)
        except (FheAggError, ValueError, TypeError) as exc:
            return refuse(message, exc)

    return run


def enable_secure_aggregation(
    app: ClientApp, *, key_holder: KeyHolderPolicy = False, pinned: PinnedPolicy | None = None
) -> None:
    """Register the fhe_agg handlers (identities, key ceremony, setup, partial decryption) on
    ``app``; ``key_holder`` says (or decides from the node's ``Context``) whether this node
    takes part in the ceremony and holds a key share. Use with :func:`secure_update_mod`.

    ``pinned`` gives (from the node's ``Context``) the node's :class:`PinnedRoster`: the node
    then is the roster member of its key file (a key holder if its role is holder, which then
    sends no updates; ``key_holder`` is not used) and refuses, with
    :class:`~fhe_agg.NotInRoster` or :class:`~fhe_agg.ParameterMismatch`, any relayed
    directory or parameter the roster does not state. Returning ``None`` (or no ``pinned``)
    is the development mode that trusts the server's directory."""

    def hello(message: Message, context: Context) -> Message:
        holder = key_holder(context) if callable(key_holder) else bool(key_holder)
        return _hello(message, context, holder, pinned(context) if pinned else None)

    for action, handler in (
        (ACTION_HELLO, hello),
        (ACTION_CEREMONY, _ceremony),
        (ACTION_SETUP, _setup),
        (ACTION_CHALLENGE, _challenge),
        (ACTION_DECRYPT, _decrypt),
        (ACTION_ABORT, _abort),
    ):
        app.query(action.split(".", 1)[1])(_guarded(handler))
