"""Checks of signed update statements shared by the aggregator and the key holders."""

from __future__ import annotations

from fhe_agg._errors import located
from fhe_agg.errors import (
    ChunkCountMismatch,
    InvalidWeight,
    LayoutMismatch,
    NotInRoster,
    ParameterMismatch,
    RoundMismatch,
)
from fhe_agg.protocol._config import PROTOCOL_VERSION
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._messages import UPDATE_CONTEXT, SignedStatement

__all__ = ["check_statement"]


def check_statement(signed: SignedStatement, context: RoundContext) -> None:
    """Raise the matching :class:`~fhe_agg.Rejected` subclass unless ``signed`` belongs to the
    round of ``context``: a roster member's valid signature over the right round, parameters,
    key and layout. The error names this round and the client (``round_id``, ``party``)."""
    stmt, round_id = signed.statement, context.round_id
    with located(round_id=round_id, party=stmt.client_id):
        key = context.roster.get(stmt.client_id)
        if key is None:
            raise NotInRoster(f"client {stmt.client_id!r} is not in the roster")
        key.verify(signed.signature, stmt.encode(), context=UPDATE_CONTEXT)
        who = f"client {stmt.client_id!r}"
        if stmt.round_id != round_id:
            raise RoundMismatch(
                f"{who}: update for round {stmt.round_id}, this is round {round_id}"
            )
        if stmt.protocol_version != PROTOCOL_VERSION:
            raise ParameterMismatch(f"{who}: protocol version {stmt.protocol_version}")
        if stmt.params_id != context.params_id:
            raise ParameterMismatch(f"{who}: encrypted under other CKKS parameters")
        if stmt.public_key_fingerprint != context.key_fingerprint:
            raise ParameterMismatch(f"{who}: encrypted under another public key")
        if stmt.layout_hash != context.layout_digest:
            raise LayoutMismatch(f"{who}: model layout differs from the round's")
        if stmt.chunk_count != context.chunk_count:
            raise ChunkCountMismatch(
                f"{who}: {stmt.chunk_count} chunks signed, layout needs {context.chunk_count}"
            )
        config = context.config
        if not config.min_weight <= stmt.weight <= config.max_weight:
            raise InvalidWeight(
                f"{who}: weight {stmt.weight} outside [{config.min_weight}, "
                f"{config.max_weight}] (min_weight: the fewest samples one update may stand for)"
            )
