"""Checks of signed update statements shared by the aggregator and the key holders."""

from __future__ import annotations

from collections.abc import Mapping

from fhe_agg._config import PROTOCOL_VERSION, FederationConfig
from fhe_agg._errors import located
from fhe_agg._keys import PublicKey
from fhe_agg._messages import UPDATE_CONTEXT, SignedStatement
from fhe_agg._packing import Layout
from fhe_agg._signing import VerifyKey
from fhe_agg.errors import (
    ChunkCountMismatch,
    InvalidWeight,
    LayoutMismatch,
    NotInRoster,
    ParameterMismatch,
    RoundMismatch,
)

__all__ = ["check_statement"]


def check_statement(
    signed: SignedStatement,
    *,
    roster: Mapping[str, VerifyKey],
    config: FederationConfig,
    public_key: PublicKey,
    round_id: int,
    layout: Layout,
) -> None:
    """Raise the matching :class:`~fhe_agg.Rejected` subclass unless ``signed`` belongs to this
    round: a roster member's valid signature over the right round, parameters, key and layout.
    The error names this round and the client (``round_id``, ``party``)."""
    stmt = signed.statement
    with located(round_id=round_id, party=stmt.client_id):
        key = roster.get(stmt.client_id)
        if key is None:
            raise NotInRoster(f"client {stmt.client_id!r} is not in the roster")
        key.verify(signed.signature, stmt.encode(), context=UPDATE_CONTEXT)
        if stmt.round_id != round_id:
            raise RoundMismatch(
                f"client {stmt.client_id!r}: update for round {stmt.round_id}, this is round {round_id}"
            )
        if stmt.protocol_version != PROTOCOL_VERSION:
            raise ParameterMismatch(
                f"client {stmt.client_id!r}: protocol version {stmt.protocol_version}"
            )
        if stmt.params_id != config.params_id:
            raise ParameterMismatch(
                f"client {stmt.client_id!r}: encrypted under other CKKS parameters"
            )
        if stmt.public_key_fingerprint != public_key.fingerprint:
            raise ParameterMismatch(
                f"client {stmt.client_id!r}: encrypted under another public key"
            )
        if stmt.layout_hash != layout.digest:
            raise LayoutMismatch(
                f"client {stmt.client_id!r}: model layout differs from the round's"
            )
        expected_chunks = layout.chunk_count(config.preset.reals_per_ciphertext)
        if stmt.chunk_count != expected_chunks:
            raise ChunkCountMismatch(
                f"client {stmt.client_id!r}: {stmt.chunk_count} chunks signed, layout needs {expected_chunks}"
            )
        if not config.min_weight <= stmt.weight <= config.max_weight:
            raise InvalidWeight(
                f"client {stmt.client_id!r}: weight {stmt.weight} outside [{config.min_weight}, "
                f"{config.max_weight}] (min_weight: the fewest samples one update may stand for)"
            )
