"""Evidence that an aggregate is the sum of the signed updates its manifest lists.

For each chunk index a key holder asks about, the aggregator returns every accepted client's
ciphertext chunk with its Merkle audit path. The holder checks each path against the client's
signed root and recomputes the modular sum (exact, as SEAL's addition is).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AggregateEvidence", "ChunkEvidence"]


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
