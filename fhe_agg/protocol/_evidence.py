"""Evidence that an aggregate is the sum of the signed updates its manifest lists.

For each chunk index a key holder asks about, the aggregator returns every accepted client's
ciphertext chunk with its Merkle audit path. The holder checks each path against the client's
signed root and recomputes the modular sum (exact, as SEAL's addition is). The evidence also
carries every manifest client's well-formedness proofs, which the holder verifies against the
clients' chunks before any partial. ``from_bytes`` takes its bounds from the federation and the
round's layout (chunk count and size, proof count and size, ``max_clients``, Merkle depth), as
the other round messages do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fhe_agg.ckks._packing import Layout
from fhe_agg.errors import MalformedMessage
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.protocol._wire import Fields, pack, unpack

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
    """Per requested chunk index, every manifest client's chunk (in manifest order), and per
    client its update's well-formedness proofs."""

    round_id: int
    chunks: dict[int, tuple[ChunkEvidence, ...]]
    proofs: dict[str, tuple[bytes, ...]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Versioned msgpack envelope: increasing indices, per index every client's
        ``[client_id, chunk, path]``, and every client's ``[client_id, [proof, ...]]``."""
        indices = sorted(self.chunks)
        return pack(
            "evidence",
            {
                "round_id": self.round_id,
                "indices": indices,
                "items": [
                    [[e.client_id, e.chunk, list(e.path)] for e in self.chunks[i]] for i in indices
                ],
                "proofs": [[c, list(p)] for c, p in self.proofs.items()],
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
        per_client = bounds.proofs_bytes + _MAX_ID + 16
        f = unpack(
            data,
            "evidence",
            max_bytes=count * clients * per_item + clients * per_client + 1024,
            max_bin=max(bounds.chunk_bytes, bounds.proof_bytes),
            max_array=max(count, clients, depth, bounds.proof_count, 3),
        )
        f.expect_keys("round_id", "indices", "items", "proofs")
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
            chunks[index] = tuple(
                _chunk_evidence(item, where, depth, bounds.chunk_bytes) for item in row
            )
        proofs: dict[str, tuple[bytes, ...]] = {}
        for entry in f.items("proofs", max_len=clients):
            client_id, items = _client_proofs(entry, bounds)
            if client_id in proofs:
                raise MalformedMessage(f"evidence.proofs: client {client_id!r} listed twice")
            proofs[client_id] = items
        return cls(round_id=f.integer("round_id"), chunks=chunks, proofs=proofs)


def _client_proofs(entry: object, bounds: MessageBounds) -> tuple[str, tuple[bytes, ...]]:
    if not isinstance(entry, list) or len(entry) != 2:
        raise MalformedMessage("evidence.proofs: expected [client_id, [proof, ...]]")
    g = Fields("evidence.proofs", dict(zip(("client_id", "proofs"), entry, strict=True)))
    items = g.blobs("proofs", max_items=bounds.proof_count)
    if any(len(p) > bounds.proof_bytes for p in items):
        raise MalformedMessage(f"evidence.proofs: a proof exceeds {bounds.proof_bytes} bytes")
    return g.text("client_id", max_len=_MAX_ID), tuple(items)


def _chunk_evidence(item: object, where: str, depth: int, chunk_bytes: int) -> ChunkEvidence:
    if not isinstance(item, list) or len(item) != 3:
        raise MalformedMessage(f"{where}: expected [client_id, chunk, path]")
    g = Fields(where, dict(zip(("client_id", "chunk", "path"), item, strict=True)))
    path = g.blobs("path", max_items=depth)
    if any(len(p) != _DIGEST for p in path):
        raise MalformedMessage(f"{where}.path: expected {_DIGEST}-byte digests")
    return ChunkEvidence(
        client_id=g.text("client_id", max_len=_MAX_ID),
        chunk=g.blob("chunk", max_size=chunk_bytes),
        path=tuple(path),
    )
