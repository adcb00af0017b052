"""The node side: identities, the key ceremony and partial decryption, with state on disk.

Flower's SuperNode runs every message in a fresh process, so no handler keeps anything in
memory: each one loads the node from its state folder (:mod:`fhe_agg.flower._node_store`,
:func:`~fhe_agg.flower._node_state.load_node`), steps, saves in one durable transaction, and
returns. A refused message (typed error) saves nothing. A key holder's
:class:`~fhe_agg.KeyShare` is created by the dealerless ceremony and written only sealed at rest
to the holder's own sealing key; nothing secret goes into Flower's ``Context``. The server only
relays ceremony messages, which are signed, and the shares among them sealed to their recipient.

With a :class:`~fhe_agg.flower.PinnedRoster` (``enable_secure_aggregation(..., pinned=...)``)
the node uses its roster identity and checks every relayed directory against the admin-signed
roster (:mod:`fhe_agg.flower._pinned`); without one it makes an identity of its own in its state
folder and trusts the server's directory, and says so in one warning at setup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import ConfigRecord, ConfigRecordValues, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from fhe_agg._errors import CeremonyError, FheAggError, MalformedMessage, ParameterMismatch
from fhe_agg.ceremony._ceremony import CEREMONY_STEPS, CeremonyMember, CeremonyMessage
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node_state import NodeState, Setup, load_node, node_state, share_info
from fhe_agg.flower._pinned import PinnedRoster
from fhe_agg.flower._protocol import (
    ACTION_ABORT,
    ACTION_CEREMONY,
    ACTION_CHALLENGE,
    ACTION_DECRYPT,
    ACTION_HELLO,
    ACTION_SETUP,
    CLIENT_APP_RAISED_EXCEPTION,
    RECORD,
    record_bytes,
    record_int,
)
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, MessageBounds
from fhe_agg.protocol._round_messages import (
    ChallengeRequest,
    PartialReply,
    PartialRequest,
    VoteRequest,
)
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["NodeState", "enable_secure_aggregation", "node_state", "refuse"]

log = logging.getLogger("fhe_agg.flower")

KeyHolderPolicy = bool | Callable[[Context], bool]
PinnedPolicy = Callable[[Context], PinnedRoster | None]
Handler = Callable[[Message, Context, NodeState], Message]


def refuse(message: Message, exc: Exception) -> Message:
    """An error reply naming the refusal (typed error and message; never key material)."""
    log.warning("node refused %s: %s: %s", message.metadata.message_type, type(exc).__name__, exc)
    reason = f"{type(exc).__name__}: {exc}"
    return Message(Error(code=CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)


def _reply(message: Message, values: dict[str, ConfigRecordValues]) -> Message:
    return Message(RecordDict({RECORD: ConfigRecord(values)}), reply_to=message)


def _record(message: Message) -> ConfigRecord:
    record = message.content.config_records.get(RECORD)
    if record is None:
        raise MalformedMessage(f"{message.metadata.message_type}: no {RECORD!r} ConfigRecord")
    return record


def _hello(message: Message, context: Context, state: NodeState) -> Message:
    sealing_public = b"" if state.sealing_key is None else state.sealing_key.public_key.to_bytes()
    values: dict[str, ConfigRecordValues] = {
        "client_id": state.client_id,
        "verify_key": state.signing_key.verify_key.to_bytes(),
        "holder": state.is_holder,
        "client": state.sends_updates,
        "sealing_key": sealing_public,
    }
    held = _held_key(state)
    if held is not None:  # a finished ceremony: the server may reuse the key (no new ceremony)
        values.update(held)
    return _reply(message, values)


def _held_key(state: NodeState) -> dict[str, ConfigRecordValues] | None:
    """The joint key, ceremony id and endorsement of the key this holder holds a share of, for
    the pinned roster's (consortium, key epoch), or unpinned its last federation."""
    if not state.is_holder:
        return None
    if state.pin is not None:
        where: tuple[str, int] | None = (state.pin.roster.consortium, state.pin.roster.key_epoch)
    else:
        where = state.store.current()
    if where is None:
        return None
    key_blob = state.store.get(*where, "public-key")
    endorsement = state.store.get(*where, "endorsement")
    spec_blob = state.store.get(*where, "spec")
    if key_blob is None or endorsement is None or spec_blob is None:
        return None
    spec, _ = rec.decode_spec(spec_blob)
    return {"public_key": key_blob, "endorsement": endorsement, "ceremony_id": spec.ceremony_id}


def _ceremony(message: Message, context: Context, state: NodeState) -> Message:
    if state.sealing_key is None:
        raise CeremonyError(f"{state.client_id} is not a key holder")
    record = _record(message)
    step = record_int(record, "step")
    if step == 0:
        spec_blob = record_bytes(record, "spec")
        spec, directory = rec.decode_spec(spec_blob)
        mine = directory.get(state.client_id)
        if mine is None or mine.verify_key != state.signing_key.verify_key:
            raise CeremonyError(f"the ceremony's directory misstates {state.client_id}")
        if state.pin is not None:
            state.pin.check_ceremony(spec, directory)
        if state.store.get(spec.consortium, spec.epoch, "share") is not None:
            raise CeremonyError(
                f"{state.client_id} already holds a key share for consortium "
                f"{spec.consortium!r} epoch {spec.epoch}; a new key needs a new key epoch"
            )
        member = CeremonyMember(
            spec=spec,
            holder_id=state.client_id,
            signing_key=state.signing_key,
            sealing_key=state.sealing_key,
            directory=directory,
        )
        out = _outs(member, 0, [])
        state.store.put(spec.consortium, spec.epoch, {"spec": spec_blob, "member": member.save()})
        state.store.set_current(spec.consortium, spec.epoch)
        return _reply(message, {"messages": out})
    where = state.store.current()
    current_spec = None if where is None else state.store.get(*where, "spec")
    saved = None if where is None else state.store.get(*where, "member")
    if (
        where is None
        or current_spec is None
        or saved is None
        or not 1 <= step < len(CEREMONY_STEPS)
    ):
        raise CeremonyError(f"ceremony step {step!r} is out of order")
    spec, directory = rec.decode_spec(current_spec)
    member = CeremonyMember.resume(
        saved,
        spec=spec,
        holder_id=state.client_id,
        signing_key=state.signing_key,
        sealing_key=state.sealing_key,
        directory=directory,
    )
    if member.steps_done != step:
        raise CeremonyError(f"ceremony step {step} is out of order ({member.steps_done} done)")
    blobs = rec.decode_blobs(
        record_bytes(record, "messages"),
        "relay",
        max_items=len(spec.holders),
        max_item=rec.CEREMONY_BLOB_BYTES,
    )
    incoming = [CeremonyMessage.from_bytes(b) for b in blobs]
    if step < len(CEREMONY_STEPS) - 1:
        out = _outs(member, step, incoming)
        state.store.put(*where, {"member": member.save()})
        return _reply(message, {"messages": out})
    public_key, share = member.finish(incoming)
    signature = state.signing_key.sign(
        rec.endorsement(spec.ceremony_id, public_key), context=rec.ENDORSEMENT_CONTEXT
    )
    info = share_info(spec.consortium, spec.epoch, state.client_id, spec.ceremony_id)
    state.store.put(
        *where,
        {
            "member": None,
            "share": share.seal(state.sealing_key, info=info),
            "public-key": public_key.blob,
            "endorsement": signature,
        },
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


def _setup(message: Message, context: Context, state: NodeState) -> Message:
    record = _record(message)
    config, clip = rec.decode_config(record_bytes(record, "federation"))
    public_key = PublicKey.from_bytes(config.preset, record_bytes(record, "public_key"))
    consortium, epoch = record.get("consortium"), record.get("epoch")
    if not isinstance(consortium, str) or not isinstance(epoch, int) or isinstance(epoch, bool):
        raise MalformedMessage(f"{RECORD}: expected the consortium and the key epoch")
    if state.pin is not None and (consortium, epoch) != (
        state.pin.roster.consortium,
        state.pin.roster.key_epoch,
    ):
        raise ParameterMismatch(
            f"the relayed federation ({consortium!r}, epoch {epoch}) is not the pinned roster's"
        )
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
    previous = state.store.get(consortium, epoch, "setup")
    if previous is not None and Setup.from_bytes(previous).public_key.blob != public_key.blob:
        raise ParameterMismatch("this node already uses another joint public key for this epoch")
    setup = Setup(
        consortium, epoch, config, clip, public_key, ceremony_id, holders, tuple(order), roster
    )
    if state.is_holder:  # only a key holder checks manifests against the roster
        found = state.key_share(consortium, epoch)
        if found is None:
            raise CeremonyError(f"{state.client_id} finished no key ceremony")
        held_key, share, held_ceremony = found
        if held_key.blob != public_key.blob or held_ceremony != ceremony_id:
            raise ParameterMismatch(
                "the public key differs from the one this holder's ceremony made"
            )
        KeyHolder(  # refuses a share of another key or threshold before anything is saved
            holder_id=state.client_id,
            config=config,
            public_key=public_key,
            key_share=share,
            roster=roster,
            signing_key=state.signing_key,
        )
    state.store.put(consortium, epoch, {"setup": setup.to_bytes()})
    state.store.set_current(consortium, epoch)
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


def _holder(state: NodeState) -> tuple[KeyHolder, Setup]:
    holder, setup = state.key_holder, state.setup
    if holder is None or setup is None:
        raise CeremonyError(f"{state.client_id} holds no key share for a federation it set up")
    return holder, setup


def _machine(state: NodeState, holder: KeyHolder, setup: Setup) -> HolderRound | None:
    """The holder's round state as saved (``None`` before its first challenge)."""
    saved = state.store.get(setup.consortium, setup.epoch, "round")
    if saved is None:
        return None
    f = unpack(saved, "node-round", max_bytes=1 << 24, max_bin=1 << 23, max_array=0)
    layout = Layout.from_bytes(f.blob("layout"))
    return HolderRound.resume(f.blob("state"), holder=holder, layout=layout)


def _save_machine(
    state: NodeState, setup: Setup, machine: HolderRound, **pending: bytes | None
) -> None:
    blob = pack("node-round", {"state": machine.to_bytes(), "layout": machine.layout.to_bytes()})
    state.store.put(setup.consortium, setup.epoch, {"round": blob, **pending})


def _challenge(message: Message, context: Context, state: NodeState) -> Message:
    holder, setup = _holder(state)
    record = _record(message)
    layout_blob = record_bytes(record, "layout")
    layout = Layout.from_bytes(layout_blob)
    aggregate_blob = record_bytes(record, "aggregate")
    aggregate = EncryptedAggregate.from_bytes(
        aggregate_blob, MessageBounds.for_round(setup.config, layout)
    )
    machine = _machine(state, holder, setup) or HolderRound(holder, layout=layout)
    machine.layout = layout  # the round's layout, for its partial
    reply = machine.challenge(ChallengeRequest(aggregate.round_id, holder.holder_index, aggregate))
    pending = pack(
        "node-pending",
        {"round": aggregate.round_id, "aggregate": aggregate_blob, "layout": layout_blob},
    )
    _save_machine(state, setup, machine, pending=pending)
    return _reply(message, {"indices": list(reply.indices)})


def _pending(state: NodeState, setup: Setup) -> tuple[int, EncryptedAggregate, Layout] | None:
    blob = state.store.get(setup.consortium, setup.epoch, "pending")
    if blob is None:
        return None
    f = unpack(blob, "node-pending", max_bytes=1 << 30, max_bin=1 << 30, max_array=0)
    layout = Layout.from_bytes(f.blob("layout"))
    aggregate = EncryptedAggregate.from_bytes(
        f.blob("aggregate"), MessageBounds.for_round(setup.config, layout)
    )
    return f.integer("round"), aggregate, layout


def _decrypt(message: Message, context: Context, state: NodeState) -> Message:
    holder, setup = _holder(state)
    record = _record(message)
    round_id = record_int(record, "round")
    pending = _pending(state, setup)
    machine = _machine(state, holder, setup)
    if pending is None or pending[0] != round_id or machine is None:
        raise CeremonyError(f"no aggregate of round {round_id} was challenged here")
    _, aggregate, layout = pending
    machine.layout = layout
    members = record.get("set")
    if not isinstance(members, list) or not all(isinstance(m, int) for m in members):
        raise MalformedMessage("fhe.set: expected a list of holder indices")
    evidence = AggregateEvidence.from_bytes(
        record_bytes(record, "evidence"), config=setup.config, layout=layout
    )
    members_ = tuple(int(m) for m in members)
    reply = machine.partial(
        PartialRequest(round_id, holder.holder_index, aggregate, evidence, members_)
    )
    assert isinstance(reply, PartialReply)
    _save_machine(state, setup, machine, pending=None)
    return _reply(message, {"partial": reply.partial.to_bytes(setup.config)})


def _abort(message: Message, context: Context, state: NodeState) -> Message:
    """Vote to abort a round this holder issued nothing for (it never decrypts it then)."""
    holder, setup = _holder(state)
    round_id = record_int(_record(message), "round")
    pending = _pending(state, setup)
    drop: dict[str, bytes | None] = {}
    if pending is not None and pending[0] == round_id:
        drop["pending"] = None
    machine = _machine(state, holder, setup)
    if machine is None:
        vote = holder.vote_abort(round_id)
        if drop:
            state.store.put(setup.consortium, setup.epoch, drop)
        return _reply(message, {"vote": vote.to_bytes()})
    vote = machine.vote(VoteRequest(round_id, holder.holder_index)).vote
    _save_machine(state, setup, machine, **drop)
    return _reply(message, {"vote": vote.to_bytes()})


def _guarded(
    handler: Handler, load: Callable[[Context], NodeState]
) -> Callable[[Message, Context], Message]:
    def run(message: Message, context: Context) -> Message:
        try:
            state = load(context)
        except (FheAggError, ValueError, TypeError, OSError) as exc:
            return refuse(message, exc)
        try:
            return handler(message, context, state)
        except (FheAggError, ValueError, TypeError) as exc:
            return refuse(message, exc)
        finally:
            state.close()

    return run


def enable_secure_aggregation(
    app: ClientApp, *, key_holder: KeyHolderPolicy = False, pinned: PinnedPolicy | None = None
) -> None:
    """Register the fhe_agg handlers (identities, key ceremony, setup, partial decryption) on
    ``app``; ``key_holder`` says (or decides from the node's ``Context``) whether this node
    takes part in the ceremony and holds a key share. Use with :func:`secure_update_mod`.

    Every node needs a state folder (``node_config["fhe-state-dir"]`` or the SuperNode's
    ``FHE_AGG_STATE_DIR``, see :mod:`fhe_agg.flower._node_store`); each message loads the node
    from it and saves before replying, so any runtime works, one process per message included.

    ``pinned`` gives (from the node's ``Context``) the node's :class:`PinnedRoster`: the node
    then is the roster member of its key file (a key holder if its role is holder, which then
    sends no updates; ``key_holder`` is not used) and refuses, with
    :class:`~fhe_agg.NotInRoster` or :class:`~fhe_agg.ParameterMismatch`, any relayed
    directory or parameter the roster does not state. Returning ``None`` (or no ``pinned``)
    is the development mode that trusts the server's directory."""

    def load(context: Context) -> NodeState:
        holder = key_holder(context) if callable(key_holder) else bool(key_holder)
        return load_node(context, holder=holder, pinned=pinned(context) if pinned else None)

    for action, handler in (
        (ACTION_HELLO, _hello),
        (ACTION_CEREMONY, _ceremony),
        (ACTION_SETUP, _setup),
        (ACTION_CHALLENGE, _challenge),
        (ACTION_DECRYPT, _decrypt),
        (ACTION_ABORT, _abort),
    ):
        app.query(action.split(".", 1)[1])(_guarded(handler, load))
