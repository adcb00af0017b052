"""A key holder's partial decryption of one aggregate, and its bounded wire format.

``to_bytes`` bit-packs the residues to their primes' sizes (as ciphertexts are packed), so a
holder sends about ``chunks * primes * N * bits / 8`` bytes. ``from_bytes`` takes the bounds from
the federation and the round's layout: the chunk count, ring degree and data primes are known
before anything is allocated, and the holder index and decrypting set must be a valid
``threshold``-sized set of this federation's holders. The digest and set are checked against the
aggregate by the combiner (:func:`fhe_agg.combine`, :class:`fhe_agg.DecryptionSession`).

Partials carry no signature of their own: a forged partial can only spoil the released mean
(which the combiner notices as garbage only statistically), never reveal anything; a transport
that needs origin authentication signs the bytes with the holder's identity key.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import MalformedMessage
from fhe_agg.hazmat.packed_format import pack_residues, residues_size, unpack_residues
from fhe_agg.hazmat.rns import U64
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["PartialDecryption"]

_DIGEST = 32


@dataclass(frozen=True, eq=False)
class PartialDecryption:
    """A holder's share ``c1 * (lambda_j * s_j) (+ noise)`` of every chunk of one aggregate."""

    round_id: int
    holder_index: int
    aggregate_digest: bytes
    decrypting_set: tuple[int, ...]
    data: U64  # [chunk, prime, coefficient]

    def __repr__(self) -> str:
        return (
            f"PartialDecryption(round={self.round_id}, holder={self.holder_index}, "
            f"chunks={self.data.shape[0]})"
        )

    def to_bytes(self, config: FederationConfig) -> bytes:
        """Versioned msgpack envelope with the residues bit-packed to ``config``'s data primes."""
        primes = backend_for(config.preset).data_primes
        return pack(
            "partial",
            {
                "round_id": self.round_id,
                "holder": self.holder_index,
                "digest": self.aggregate_digest,
                "set": list(self.decrypting_set),
                "chunks": self.data.shape[0],
                "primes": len(primes),
                "data": pack_residues(self.data, primes),
            },
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, config: FederationConfig, layout: Layout
    ) -> PartialDecryption:
        """Decode a partial for this federation and round layout, or raise
        :class:`~fhe_agg.MalformedMessage` / :class:`~fhe_agg.MessageTooLarge`."""
        backend = backend_for(config.preset)
        primes = backend.data_primes
        chunks = layout.chunk_count(config.preset.reals_per_ciphertext)
        body_size = residues_size(chunks, backend.n, primes)
        f = unpack(
            data,
            "partial",
            max_bytes=body_size + 1024,
            max_bin=body_size,
            max_array=config.holders,
        )
        f.expect_keys("round_id", "holder", "digest", "set", "chunks", "primes", "data")
        holder = f.integer("holder", 1, config.holders)
        members = f.items("set", max_len=config.holders)
        if (
            len(members) != config.threshold
            or not all(type(m) is int and 1 <= m <= config.holders for m in members)
            or members != sorted(set(members))
            or holder not in members
        ):
            raise MalformedMessage(
                f"partial.set: expected {config.threshold} distinct increasing holder indices "
                f"in 1..{config.holders} including the sender {holder}"
            )
        f.integer("chunks", chunks, chunks)
        f.integer("primes", len(primes), len(primes))
        residues = unpack_residues(
            f.blob("data", size=body_size), rows=chunks, n=backend.n, primes=primes, what="partial"
        )
        return cls(
            round_id=f.integer("round_id"),
            holder_index=holder,
            aggregate_digest=f.blob("digest", size=_DIGEST),
            decrypting_set=tuple(members),
            data=residues,
        )
