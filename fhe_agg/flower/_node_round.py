"""A key holder node's part in a round: its challenge, its partial decryption, or its abort
vote, each through the holder's round state (:class:`~fhe_agg.HolderRound`) saved in the node's
state folder between two messages, with the aggregate it challenged (a file beside ``node.db``,
:mod:`fhe_agg.flower._node_pending`). See :mod:`fhe_agg.flower._node`.
"""

from __future__ import annotations

from flwr.app import Context, Message

from fhe_agg._errors import CeremonyError, MalformedMessage, OutOfOrder
from fhe_agg.ckks._packing import Layout
from fhe_agg.flower._node_pending import PendingAggregate
from fhe_agg.flower._node_state import NodeState, Setup
from fhe_agg.flower._protocol import node_reply, query_record, record_bytes, record_int
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, MessageBounds, aggregate_digest
from fhe_agg.protocol._round_messages import (
    ChallengeRequest,
    HolderPhase,
    PartialReply,
    PartialRequest,
    VoteRequest,
)
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["abort_vote", "challenge", "partial_decryption"]


def _holder(state: NodeState) -> tuple[KeyHolder, Setup]:
    holder, setup = state.key_holder, state.setup
    if holder is None or setup is None:
        raise CeremonyError(
            f"{state.client_id} holds no key share for a federation it set up",
        )
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
    state: NodeState,
    setup: Setup,
    machine: HolderRound,
    *,
    keep: tuple[bytes, bytes] | None = None,
    drop: bool = False,
) -> None:
    """Save the round state in one durable transaction, with (``keep``: aggregate bytes and the
    digest the round state recorded for it) the aggregate it challenged, or (``drop``)
    forgetting the one kept."""
    items = {
        "round": pack(
            "node-round", {"state": machine.to_bytes(), "layout": machine.layout.to_bytes()}
        )
    }
    pending = PendingAggregate(state.store, setup.consortium, setup.epoch)
    if keep is not None:
        pending.keep(items, *keep)
    elif drop:
        pending.drop(items)
    else:
        state.store.put(setup.consortium, setup.epoch, dict(items))


def challenge(message: Message, context: Context, state: NodeState) -> Message:
    """Answer the challenge of an aggregate; keep it, with its layout, for the partial."""
    holder, setup = _holder(state)
    record = query_record(message)
    layout = Layout.from_bytes(record_bytes(record, "layout"))
    aggregate_blob = record_bytes(record, "aggregate")
    aggregate = EncryptedAggregate.from_bytes(
        aggregate_blob, MessageBounds.for_round(setup.config, layout)
    )
    machine = _machine(state, holder, setup) or HolderRound(holder, layout=layout)
    machine.layout = layout  # the round's layout, for its partial
    reply = machine.challenge(ChallengeRequest(aggregate.round_id, holder.holder_index, aggregate))
    _save_machine(state, setup, machine, keep=(aggregate_blob, reply.aggregate_digest))
    return node_reply(message, {"indices": list(reply.indices)})


def _pending(
    state: NodeState, setup: Setup, machine: HolderRound, round_id: int
) -> tuple[EncryptedAggregate, PendingAggregate] | None:
    """The aggregate of ``round_id`` this holder challenged, as read from where it is kept
    (``None`` if its round state has none of that round); :class:`CorruptStore` if its file is
    missing, cut or does not parse."""
    recorded = machine.state
    if recorded.phase is not HolderPhase.CHALLENGED or recorded.round_id != round_id:
        return None
    digest = recorded.aggregate_digest
    kept = PendingAggregate(state.store, setup.consortium, setup.epoch)
    bounds = MessageBounds.for_round(setup.config, machine.layout)
    data = kept.read(digest, round_id, max_bytes=bounds.aggregate_bytes)
    try:
        return EncryptedAggregate.from_bytes(data, bounds), kept
    except MalformedMessage as exc:
        raise kept.damaged(round_id, digest, f"not a well-formed aggregate ({exc})") from None


def partial_decryption(message: Message, context: Context, state: NodeState) -> Message:
    """The partial decryption of the aggregate this holder challenged, with its evidence."""
    holder, setup = _holder(state)
    record = query_record(message)
    round_id = record_int(record, "round")
    machine = _machine(state, holder, setup)
    found = None if machine is None else _pending(state, setup, machine, round_id)
    if found is None or machine is None:  # a partial before this holder's challenge of it
        raise OutOfOrder(
            f"no aggregate of round {round_id} was challenged here",
            round_id=round_id,
            holder_index=holder.holder_index,
        )
    aggregate, kept = found
    # the digest the round state checks anyway (the chunks' digests are kept on the aggregate,
    # so its own check below costs nothing more): a mismatch can only be this holder's file
    challenged = machine.state.aggregate_digest
    if aggregate_digest(aggregate) != challenged:
        raise kept.damaged(round_id, challenged, "edited: not the aggregate challenged")
    layout = machine.layout
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
    _save_machine(state, setup, machine, drop=True)
    return node_reply(message, {"partial": reply.partial.to_bytes(setup.config)})


def abort_vote(message: Message, context: Context, state: NodeState) -> Message:
    """Vote to abort a round this holder issued nothing for (it never decrypts it then); the
    aggregate kept for that round, if any, is forgotten."""
    holder, setup = _holder(state)
    round_id = record_int(query_record(message), "round")
    machine = _machine(state, holder, setup)
    if machine is None:  # never challenged anything: nothing is kept (kept with the round state)
        return node_reply(message, {"vote": holder.vote_abort(round_id).to_bytes()})
    kept = machine.state
    drop = kept.phase is HolderPhase.CHALLENGED and kept.round_id == round_id
    vote = machine.vote(VoteRequest(round_id, holder.holder_index)).vote
    _save_machine(state, setup, machine, drop=drop)
    return node_reply(message, {"vote": vote.to_bytes()})
