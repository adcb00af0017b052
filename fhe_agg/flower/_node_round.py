"""A key holder node's part in a round: its challenge, its partial decryption, or its abort
vote, each through the holder's round state (:class:`~fhe_agg.HolderRound`) saved in the node's
state folder between two messages. See :mod:`fhe_agg.flower._node`.

The node keeps no aggregate between its challenge and its partial: the round state records the
challenged aggregate's digest, and the partial request carries the aggregate again (the round
protocol's :class:`~fhe_agg.protocol._round_messages.PartialRequest` does), which the round state
refuses unless it is the one challenged. Keeping it on disk instead cost a durable 30 MB write
per challenge at 1e6 parameters (10-80 ms CPU, ``node_overhead`` benchmark, 2026-12-06), against
the partial request's evidence, which already carries every client's chunks and proofs.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message

from fhe_agg._errors import CeremonyError, MalformedMessage, OutOfOrder
from fhe_agg.ckks._packing import Layout
from fhe_agg.flower._node_state import NodeState, Setup
from fhe_agg.flower._protocol import node_reply, query_record, record_bytes, record_int
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._evidence import AggregateEvidence
from fhe_agg.protocol._messages import EncryptedAggregate, MessageBounds
from fhe_agg.protocol._round_messages import (
    ChallengeRequest,
    HolderPhase,
    PartialReply,
    PartialRequest,
    VoteRequest,
)
from fhe_agg.protocol._wire import pack, unpack
from fhe_agg.server._state import HolderState

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


def _save_machine(state: NodeState, setup: Setup, machine: HolderRound) -> None:
    """Save the round state (with its layout) in one durable transaction."""
    state.store.put(
        setup.consortium,
        setup.epoch,
        {
            "round": pack(
                "node-round", {"state": machine.to_bytes(), "layout": machine.layout.to_bytes()}
            )
        },
    )


def challenge(message: Message, context: Context, state: NodeState) -> Message:
    """Answer the challenge of an aggregate; the round state keeps its digest and layout."""
    holder, setup = _holder(state)
    record = query_record(message)
    layout = Layout.from_bytes(record_bytes(record, "layout"))
    aggregate = _aggregate(record, setup, layout)
    machine = _machine(state, holder, setup) or HolderRound(holder, layout=layout)
    machine.layout = layout  # the round's layout, for its partial
    reply = machine.challenge(ChallengeRequest(aggregate.round_id, holder.holder_index, aggregate))
    _save_machine(state, setup, machine)
    return node_reply(message, {"indices": list(reply.indices)})


def _challenged(recorded: HolderState, round_id: int) -> bool:
    """Whether the saved round state is this holder's challenge of ``round_id``."""
    return recorded.phase is HolderPhase.CHALLENGED and recorded.round_id == round_id


def _aggregate(record: ConfigRecord, setup: Setup, layout: Layout) -> EncryptedAggregate:
    """The aggregate a request carries, bounded by the round's layout."""
    return EncryptedAggregate.from_bytes(
        record_bytes(record, "aggregate"), MessageBounds.for_round(setup.config, layout)
    )


def resent_aggregate(record: ConfigRecord, setup: Setup, layout: Layout) -> EncryptedAggregate:
    """The aggregate the partial request carries again; the round state refuses it unless it is
    the one challenged. Parsing it a second time is the price of a node that keeps nothing
    between messages (counted as loading by the ``node_overhead`` benchmark)."""
    return _aggregate(record, setup, layout)


def partial_decryption(message: Message, context: Context, state: NodeState) -> Message:
    """The partial decryption of the aggregate this holder challenged, with its evidence."""
    holder, setup = _holder(state)
    record = query_record(message)
    round_id = record_int(record, "round")
    machine = _machine(state, holder, setup)
    if machine is None or not _challenged(machine.state, round_id):  # before any parse
        raise OutOfOrder(
            f"no aggregate of round {round_id} was challenged here",
            round_id=round_id,
            holder_index=holder.holder_index,
        )
    layout = machine.layout
    aggregate = resent_aggregate(record, setup, layout)
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
    _save_machine(state, setup, machine)
    return node_reply(message, {"partial": reply.partial.to_bytes(setup.config)})


def abort_vote(message: Message, context: Context, state: NodeState) -> Message:
    """Vote to abort a round this holder issued nothing for (it never decrypts it then)."""
    holder, setup = _holder(state)
    round_id = record_int(query_record(message), "round")
    machine = _machine(state, holder, setup)
    if machine is None:  # never challenged anything: no round state to record the vote in
        return node_reply(message, {"vote": holder.vote_abort(round_id).to_bytes()})
    vote = machine.vote(VoteRequest(round_id, holder.holder_index)).vote
    _save_machine(state, setup, machine)
    return node_reply(message, {"vote": vote.to_bytes()})
