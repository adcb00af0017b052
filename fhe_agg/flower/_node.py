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

The handlers live by role: the ceremony in :mod:`fhe_agg.flower._node_ceremony`, setup in
:mod:`fhe_agg.flower._node_setup`, a holder's challenge, partial and abort vote in
:mod:`fhe_agg.flower._node_round`; this module introduces the node and registers them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import ConfigRecordValues, Context, Error, Message
from flwr.clientapp import ClientApp

from fhe_agg._errors import FheAggError, describe, error_fields, locate
from fhe_agg.flower import _records as rec
from fhe_agg.flower._node_ceremony import ceremony_step
from fhe_agg.flower._node_round import abort_vote, challenge, partial_decryption
from fhe_agg.flower._node_setup import set_up_node
from fhe_agg.flower._node_state import NodeState, load_node, node_state
from fhe_agg.flower._pinned import PinnedRoster
from fhe_agg.flower._protocol import (
    ACTION_ABORT,
    ACTION_CEREMONY,
    ACTION_CHALLENGE,
    ACTION_DECRYPT,
    ACTION_HELLO,
    ACTION_SETUP,
    CLIENT_APP_RAISED_EXCEPTION,
    node_reply,
)

__all__ = ["NodeState", "enable_secure_aggregation", "node_state", "refuse"]

log = logging.getLogger("fhe_agg.flower")

KeyHolderPolicy = bool | Callable[[Context], bool]
PinnedPolicy = Callable[[Context], PinnedRoster | None]
Handler = Callable[[Message, Context, NodeState], Message]


def refuse(message: Message, exc: Exception) -> Message:
    """An error reply naming the refusal: ``"<code>: <message>"`` (the error's stable
    :attr:`~fhe_agg.FheAggError.code`, never key material). The node's log line adds the
    round, party and key holder the error names (:func:`~fhe_agg._errors.error_fields`)."""
    reason = describe(exc)  # led by the error's stable code
    where = {k: v for k, v in error_fields(exc).items() if k not in ("error", "reason")}
    log.warning("node refused %s: %s %s", message.metadata.message_type, reason, where or "")
    return Message(Error(code=CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)


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
    return node_reply(message, values)


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
        except FheAggError as exc:
            return refuse(message, locate(exc, party=state.client_id))  # every error: this node
        except (ValueError, TypeError) as exc:
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
        (ACTION_CEREMONY, ceremony_step),
        (ACTION_SETUP, set_up_node),
        (ACTION_CHALLENGE, challenge),
        (ACTION_DECRYPT, partial_decryption),
        (ACTION_ABORT, abort_vote),
    ):
        app.query(action.split(".", 1)[1])(_guarded(handler, load))
