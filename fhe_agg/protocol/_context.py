"""One round's frozen context: what every check of the round compares a message against.

A round is fixed by five things: the federation's configuration, the joint public key, the
roster of clients, the model layout and the round id. They used to travel as five loose
arguments through :func:`~fhe_agg.protocol._checks.check_statement`, the aggregator and its store and
the key holders' aggregate check; a :class:`RoundContext` holds them once, checks that they fit
together (the key is of the configuration's preset, the roster holds verify keys, the round id
is a non-negative integer), freezes the roster, and caches what the checks derive from them:
the SEAL backend, the message size bounds, the chunk count and the digests a signed statement
must carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from types import MappingProxyType

from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import SealBackend, backend_for
from fhe_agg.errors import ParameterMismatch
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.protocol._signing import VerifyKey

__all__ = ["RoundContext"]


@dataclass(frozen=True, eq=False)
class RoundContext:
    """The configuration, joint public key, client roster, layout and id of one round.

    Raises ``TypeError``/``ValueError`` naming the argument for a wrong type or a negative round
    id, and :class:`~fhe_agg.ParameterMismatch` for a key of another preset. The roster is
    copied and read-only, so a caller cannot change the round's members after the fact.
    """

    config: FederationConfig
    public_key: PublicKey
    roster: Mapping[str, VerifyKey]
    layout: Layout
    round_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.config, FederationConfig):
            raise TypeError("config: expected FederationConfig")
        if not isinstance(self.public_key, PublicKey):
            raise TypeError("public_key: expected PublicKey")
        if not isinstance(self.layout, Layout):
            raise TypeError("layout: expected Layout")
        round_id = self.round_id
        if not isinstance(round_id, int) or isinstance(round_id, bool) or round_id < 0:
            raise ValueError(f"round_id: expected a non-negative integer, got {round_id!r}")
        if self.public_key.preset != self.config.preset:
            raise ParameterMismatch("public_key: made for another preset than config.preset")
        if not isinstance(self.roster, Mapping) or not all(
            isinstance(k, VerifyKey) for k in self.roster.values()
        ):
            raise TypeError("roster: expected a mapping of client id -> VerifyKey")
        object.__setattr__(self, "roster", MappingProxyType(dict(self.roster)))

    def for_round(self, round_id: int) -> RoundContext:
        """The same federation, key, roster and layout in round ``round_id``."""
        return replace(self, round_id=round_id)

    def with_layout(self, layout: Layout) -> RoundContext:
        """The same round with another model layout (a key holder serves any layout)."""
        return replace(self, layout=layout)

    @cached_property
    def backend(self) -> SealBackend:
        """The SEAL adapter of the configuration's preset."""
        return backend_for(self.config.preset)

    @cached_property
    def bounds(self) -> MessageBounds:
        """Size limits of this round's updates and aggregates."""
        return MessageBounds.for_round(self.config, self.layout)

    @property
    def chunk_count(self) -> int:
        """Ciphertext chunks of one update of this layout."""
        return self.bounds.chunk_count

    @cached_property
    def params_id(self) -> bytes:
        """The configuration's ``params_id`` every statement must sign."""
        return self.config.params_id

    @property
    def key_fingerprint(self) -> bytes:
        """The public key's fingerprint every statement must sign."""
        return self.public_key.fingerprint

    @property
    def layout_digest(self) -> bytes:
        """The layout's digest every statement must sign."""
        return self.layout.digest

    def __repr__(self) -> str:
        return (
            f"RoundContext(round={self.round_id}, holders={self.config.threshold}-of-"
            f"{self.config.holders}, clients={len(self.roster)}, chunks={self.chunk_count})"
        )
