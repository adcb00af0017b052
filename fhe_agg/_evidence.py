"""Evidence that an aggregate is the sum of the signed updates its manifest lists.

For each chunk index a key holder asks about, the aggregator returns every accepted client's
ciphertext chunk with its Merkle audit path. The holder checks each path against the client's
signed root and recomputes the modular sum (exact, as SEAL's addition is). ``from_bytes`` takes
its bounds from the federation and the round's layout (chunk count and size, ``max_clients``,
Merkle depth), as the other round messages do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fhe_agg._config import FederationConfig
from fhe_agg._errors import MalformedMessage
from fhe_agg._messages import MessageBounds
from fhe_agg._packing import Layout
from fhe_agg._wire import Fields, pack, unpack

__all__ = ["AggregateEvidence", "ChunkEvidence"]

_DIGEST = 32
_MAX_ID = 128


@dataclass(frozen=True, eq=False)
class ChunkEvidence:
    """One client's ciphertext chunk at ``index`` and its Merkle path to the signed root."""

    client_id: str
    chunk: bytes
    path: tuple[bytes, ...]


@dataclass(frozen=True, eq=False)
class AggregateEvidence:
    """Per requested chunk index, every manifest client's chunk (in manifest order)."""

    round_id: int
    chunks: dict[int, tuple[ChunkEvidence, ...]]

    def to_bytes(self) -> bytes:
        """Versioned msgpack envelope: increasing indices, and per index every client's
        ``[client_id, chunk, path]``."""
        indices = sorted(self.chunks)
        return pack(
            "evidence",
            {
                "round_id": self.round_id,
                "indices": indices,
                "items": [
                    [[e.client_id, e.chunk, list(e.path)] for e in self.chunks[i]] for i in indices
                ],
            },
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, config: FederationConfig, layout: Layout
    ) -> AggregateEvidence:
        """Decode evidence for this federation and round layout, or raise
        :class:`~fhe_agg.MalformedMessage` / :class:`~fhe_agg.MessageTooLarge`."""
        bounds = MessageBounds.for_round(config, layout)
        count, clients = bounds.chunk_count, bounds.max_clients
        depth = max(1, math.ceil(math.log2(count))) + 1
        per_item = bounds.chunk_bytes + depth * (_DIGEST + 2) + _MAX_ID + 32
        f = unpack(
            data,
            "evidence",
            max_bytes=count * clients * per_item + 1024,
            max_bin=bounds.chunk_bytes,
            max_array=max(count, clients, depth, 3),
        )
        f.expect_keys("round_id", "indices", "items")
        indices = f.items("indices", max_len=count)
        rows = f.items("items", max_len=count)
        if (
            len(rows) != len(indices)
            or not all(type(i) is int and 0 <= i < count for i in indices)
            or indices != sorted(set(indices))
        ):
            raise MalformedMessage(
                f"evidence.indices: expected distinct increasing indices < {count}"
            )
        chunks: dict[int, tuple[ChunkEvidence, ...]] = {}
        for index, row in zip(indices, rows, strict=True):
            where = f"evidence.items[{index}]"
            if not isinstance(row, list) or not 0 < len(row) <= clients:
                raise MalformedMessage(f"{where}: expected 1..{clients} entries")
            chunks[index] = tuple(_chunk_evidence(item, where, depth) for item in row)
        return cls(round_id=f.integer("round_id"), chunks=chunks)


def _chunk_evidence(item: object, where: str, depth: int) -> ChunkEvidence:
    if not isinstance(item, list) or len(item) != 3:
        raise MalformedMessage(f"{where}: expected [client_id, chunk, path]")
    g = Fields(where, dict(zip(("client_id", "chunk", "path"), item, strict=True)))
    path = g.blobs("path", max_items=depth)
    if any(len(p) != _DIGEST for p in path):
        raise MalformedMessage(f"{where}.path: expected {_DIGEST}-byte digests")
    return ChunkEvidence(
        client_id=g.text("client_id", max_len=_MAX_ID), chunk=g.blob("chunk"), path=tuple(path)
    )
