"""A node's setup: the federation the server relays, checked before anything is saved.

Every key holder must have endorsed the joint public key for its ceremony; with a pinned roster
nothing relayed is used unless the roster states it (:mod:`fhe_agg.flower._pinned`), without one
the relayed roster is trusted (one warning). A key holder also checks that the key is the one its
own ceremony made and that its share fits the federation. See :mod:`fhe_agg.flower._node`.
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Context, Message

from fhe_agg._errors import CeremonyError, MalformedMessage, ParameterMismatch
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node_state import NodeState, Setup
from fhe_agg.flower._protocol import RECORD, node_reply, query_record, record_bytes
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import VerifyKey

__all__ = ["set_up_node"]

log = logging.getLogger("fhe_agg.flower")


def set_up_node(message: Message, context: Context, state: NodeState) -> Message:
    """Check the relayed federation and save it as this node's current setup."""
    setup = _relayed_setup(query_record(message), state)
    consortium, epoch, public_key = setup.consortium, setup.epoch, setup.public_key
    previous = state.store.get(consortium, epoch, "setup")
    if previous is not None and Setup.from_bytes(previous).public_key.blob != public_key.blob:
        raise ParameterMismatch("this node already uses another joint public key for this epoch")
    if state.is_holder:  # only a key holder checks manifests against the roster
        _check_held_key(state, setup)
    state.store.put(consortium, epoch, {"setup": setup.to_bytes()})
    state.store.set_current(consortium, epoch)
    return node_reply(message, {"ready": True})


def _relayed_setup(record: ConfigRecord, state: NodeState) -> Setup:
    """Decode the relayed federation; check the pin, the holders' order and endorsements."""
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
    return Setup(
        consortium, epoch, config, clip, public_key, ceremony_id, holders, tuple(order), roster
    )


def _check_held_key(state: NodeState, setup: Setup) -> None:
    """A key holder's share must be of this key, made by this ceremony, for this federation."""
    found = state.key_share(setup.consortium, setup.epoch)
    if found is None:
        raise CeremonyError(f"{state.client_id} finished no key ceremony")
    held_key, share, held_ceremony = found
    if held_key.blob != setup.public_key.blob or held_ceremony != setup.ceremony_id:
        raise ParameterMismatch(
            "the public key differs from the one this holder's ceremony made",
            holder_index=share.holder_index,
        )
    KeyHolder(  # refuses a share of another key or threshold before anything is saved
        holder_id=state.client_id,
        config=setup.config,
        public_key=setup.public_key,
        key_share=share,
        roster=setup.roster,
        signing_key=state.signing_key,
    )


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
