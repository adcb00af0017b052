"""A key holder node's side of the relayed key ceremony, one step per message.

Step 0 checks the relayed spec and directory (against the pinned roster, if any) and starts a
:class:`~fhe_agg.CeremonyMember`; every later step resumes the member sealed in the node's state
folder, steps it on the relayed messages and saves it again. The last step seals the key share
to the holder's own sealing key and signs the joint public key (the endorsement every node checks
at setup). See :mod:`fhe_agg.flower._node` for how a handler runs.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message

from fhe_agg._errors import CeremonyError
from fhe_agg.ceremony._ceremony import CEREMONY_STEPS, CeremonyMember
from fhe_agg.ceremony._messages import CeremonyMessage
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node_state import NodeState, share_info
from fhe_agg.flower._protocol import node_reply, query_record, record_bytes, record_int

__all__ = ["ceremony_step"]


def ceremony_step(message: Message, context: Context, state: NodeState) -> Message:
    """Run the ceremony step the server asks for; reply with the messages to relay (or, after
    the last step, the joint public key and this holder's endorsement of it)."""
    if state.sealing_key is None:
        raise CeremonyError(f"{state.client_id} is not a key holder")
    record = query_record(message)
    step = record_int(record, "step")
    if step == 0:
        return _begin(message, record, state)
    return _resume(message, record, state, step)


def _begin(message: Message, record: ConfigRecord, state: NodeState) -> Message:
    """Step 0: check the relayed spec and directory, start a member, send its seed commitment."""
    assert state.sealing_key is not None
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
            f"{spec.consortium!r} epoch {spec.epoch}; a new key needs a new key epoch",
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
    return node_reply(message, {"messages": out})


def _resume(message: Message, record: ConfigRecord, state: NodeState, step: int) -> Message:
    """Steps 1..6: resume the saved member, step it on the relayed messages, save it again."""
    assert state.sealing_key is not None
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
        raise CeremonyError(
            f"ceremony step {step} is out of order ({member.steps_done} done)",
            holder_index=member.index,
        )
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
        return node_reply(message, {"messages": out})
    return _finish(message, state, where, member, incoming)


def _finish(
    message: Message,
    state: NodeState,
    where: tuple[str, int],
    member: CeremonyMember,
    incoming: list[CeremonyMessage],
) -> Message:
    """The last step: keep the key share sealed at rest and endorse the joint public key."""
    assert state.sealing_key is not None
    spec = member.spec
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
    return node_reply(message, {"public_key": public_key.blob, "endorsement": signature})


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
