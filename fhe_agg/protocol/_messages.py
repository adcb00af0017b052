"""Messages exchanged in a round: signed update statements, encrypted updates and aggregates.

Each message has ``to_bytes()`` and a bounded ``from_bytes()``; the bounds come from the
:class:`~fhe_agg.FederationConfig` and the round's :class:`~fhe_agg.Layout`, so a peer cannot make
a parser allocate more than one honest message would need.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import msgpack

from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import MalformedMessage
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import ML_DSA_65_SIGNATURE_BYTES
from fhe_agg.protocol._wellformed import proof_batches, proof_bytes_bound
from fhe_agg.protocol._wire import Fields, pack, unpack

__all__ = [
    "UPDATE_CONTEXT",
    "EncryptedAggregate",
    "EncryptedUpdate",
    "MessageBounds",
    "SignedStatement",
    "UpdateStatement",
    "aggregate_digest",
    "chunk_digests",
    "total_weight",
]

UPDATE_CONTEXT = b"fhe-agg/v1/update"
_DIGEST = 32


@dataclass(frozen=True)
class MessageBounds:
    """Size limits for one round's messages: ``proof_count`` well-formedness proofs (one per
    batch of chunks) of at most ``proof_bytes`` each travel with every update."""

    chunk_count: int
    chunk_bytes: int
    max_clients: int
    proof_count: int = 0
    proof_bytes: int = 0

    @classmethod
    def for_round(cls, config: FederationConfig, layout: Layout) -> MessageBounds:
        backend = backend_for(config.preset)
        chunk_count = layout.chunk_count(config.preset.reals_per_ciphertext)
        return cls(
            chunk_count=chunk_count,
            chunk_bytes=backend.ciphertext_bytes,
            max_clients=config.max_clients,
            proof_count=len(proof_batches(chunk_count)),
            proof_bytes=proof_bytes_bound(config),
        )

    @property
    def proofs_bytes(self) -> int:
        """Bytes of one update's proofs at most (with msgpack framing)."""
        return self.proof_count * (self.proof_bytes + 8)

    @property
    def update_bytes(self) -> int:
        return self.chunk_count * (self.chunk_bytes + 8) + self.proofs_bytes + 16 * 1024

    @property
    def aggregate_bytes(self) -> int:
        """Bytes of one :class:`EncryptedAggregate` at most (its manifest: 8 KiB a client)."""
        return self.update_bytes + self.max_clients * 8 * 1024


@dataclass(frozen=True)
class UpdateStatement:
    """What a client signs: which round, which parameters, which data (by Merkle root), and
    which well-formedness proofs (by :func:`~fhe_agg.protocol._wellformed.proofs_digest`)."""

    protocol_version: int
    params_id: bytes
    public_key_fingerprint: bytes
    round_id: int
    client_id: str
    weight: float
    layout_hash: bytes
    chunk_count: int
    merkle_root: bytes
    proofs_digest: bytes

    def as_list(self) -> list[object]:
        """The fields in canonical order, as they travel on the wire."""
        return [
            self.protocol_version,
            self.params_id,
            self.public_key_fingerprint,
            self.round_id,
            self.client_id,
            float(self.weight),
            self.layout_hash,
            self.chunk_count,
            self.merkle_root,
            self.proofs_digest,
        ]

    def encode(self) -> bytes:
        """Canonical bytes: a msgpack array in fixed field order (what the signature covers)."""
        encoded: bytes = msgpack.packb(self.as_list(), use_bin_type=True)
        return encoded

    @classmethod
    def decode(cls, raw: object) -> UpdateStatement:
        """Parse the canonical array; refuses any other shape or type."""
        if not isinstance(raw, list) or len(raw) != len(_STATEMENT_FIELDS):
            raise MalformedMessage(f"statement: expected a {len(_STATEMENT_FIELDS)}-field array")
        f = Fields("statement", dict(zip(_STATEMENT_FIELDS, raw, strict=True)))
        stmt = cls(
            protocol_version=f.integer("protocol_version", 1, 255),
            params_id=f.blob("params_id", size=_DIGEST),
            public_key_fingerprint=f.blob("public_key_fingerprint", size=_DIGEST),
            round_id=f.integer("round_id"),
            client_id=f.text("client_id"),
            weight=f.number("weight"),
            layout_hash=f.blob("layout_hash", size=_DIGEST),
            chunk_count=f.integer("chunk_count", 1, 2**31),
            merkle_root=f.blob("merkle_root", size=_DIGEST),
            proofs_digest=f.blob("proofs_digest", size=_DIGEST),
        )
        if not stmt.weight > 0:
            raise MalformedMessage("statement.weight: must be positive")
        return stmt


_STATEMENT_FIELDS = (
    "protocol_version",
    "params_id",
    "public_key_fingerprint",
    "round_id",
    "client_id",
    "weight",
    "layout_hash",
    "chunk_count",
    "merkle_root",
    "proofs_digest",
)


@dataclass(frozen=True)
class SignedStatement:
    """A statement and the client's ML-DSA-65 signature over its canonical encoding."""

    statement: UpdateStatement
    signature: bytes

    def to_wire(self) -> list[object]:
        return [self.statement.as_list(), self.signature]

    @classmethod
    def from_wire(cls, raw: object) -> SignedStatement:
        if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[1], bytes):
            raise MalformedMessage("signed statement: expected [statement, signature]")
        if len(raw[1]) != ML_DSA_65_SIGNATURE_BYTES:
            raise MalformedMessage("signed statement: wrong signature length")
        return cls(UpdateStatement.decode(raw[0]), raw[1])


@dataclass(frozen=True, eq=False)
class EncryptedUpdate:
    """One client's encrypted, signed contribution to a round: its chunks and the
    well-formedness proof of each batch of chunks (both committed to by the signed statement)."""

    signed: SignedStatement
    chunks: tuple[bytes, ...]
    proofs: tuple[bytes, ...] = ()

    @property
    def statement(self) -> UpdateStatement:
        return self.signed.statement

    def to_bytes(self) -> bytes:
        return pack(
            "update",
            {
                "signed": self.signed.to_wire(),
                "chunks": list(self.chunks),
                "proofs": list(self.proofs),
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes, bounds: MessageBounds) -> EncryptedUpdate:
        """Decode within ``bounds``: at most ``chunk_count`` chunks of ``chunk_bytes`` and
        ``proof_count`` proofs of ``proof_bytes`` (:class:`MalformedMessage` /
        :class:`MessageTooLarge`); whether they are the signed ones is the aggregator's check."""
        f = unpack(
            data,
            "update",
            max_bytes=bounds.update_bytes,
            max_bin=max(bounds.chunk_bytes, bounds.proof_bytes),
            max_array=max(bounds.chunk_count, bounds.proof_count, 16),
        )
        f.expect_keys("signed", "chunks", "proofs")
        chunks = f.blobs("chunks", max_items=bounds.chunk_count)
        if any(len(c) > bounds.chunk_bytes for c in chunks):
            raise MalformedMessage(f"update.chunks: a chunk exceeds {bounds.chunk_bytes} bytes")
        proofs = f.blobs("proofs", max_items=bounds.proof_count)
        if any(len(p) > bounds.proof_bytes for p in proofs):
            raise MalformedMessage(f"update.proofs: a proof exceeds {bounds.proof_bytes} bytes")
        return cls(SignedStatement.from_wire(f.body["signed"]), tuple(chunks), tuple(proofs))


@dataclass(frozen=True, eq=False)
class EncryptedAggregate:
    """The weighted sum of a round's accepted updates, still encrypted, with its manifest.

    ``manifest`` lists every accepted client's signed statement; key holders verify each one and
    recompute the sum before any partial decryption. The weighted mean is ``sum / total_weight``,
    applied when decoding, so no ciphertext level is spent on it.
    """

    round_id: int
    chunks: tuple[bytes, ...]
    manifest: tuple[SignedStatement, ...]

    @property
    def total_weight(self) -> float:
        return total_weight(self.manifest)

    @cached_property
    def chunk_digests(self) -> tuple[bytes, ...]:
        """SHA3-256 of each chunk (:func:`chunk_digests`), computed once per object: the holder's
        round state and the key holder both bind the aggregate by them, at the challenge and
        at the partial (30 MB at 1e6 parameters, ~0.06 s a pass). ``chunks`` is a tuple of
        bytes, so they never go stale."""
        return tuple(chunk_digests(self.chunks))

    def to_bytes(self) -> bytes:
        return pack(
            "aggregate",
            {
                "round_id": self.round_id,
                "chunks": list(self.chunks),
                "manifest": [s.to_wire() for s in self.manifest],
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes, bounds: MessageBounds) -> EncryptedAggregate:
        f = unpack(
            data,
            "aggregate",
            max_bytes=bounds.aggregate_bytes,
            max_bin=bounds.chunk_bytes,
            max_array=max(bounds.chunk_count, bounds.max_clients, 16),
        )
        f.expect_keys("round_id", "chunks", "manifest")
        chunks = f.blobs("chunks", max_items=bounds.chunk_count)
        manifest = tuple(
            SignedStatement.from_wire(s) for s in f.items("manifest", max_len=bounds.max_clients)
        )
        return cls(f.integer("round_id"), tuple(chunks), manifest)


def total_weight(manifest: Iterable[SignedStatement]) -> float:
    """Exactly rounded sum of the signed weights: aggregator and key holders must agree bit for bit."""
    return math.fsum(s.statement.weight for s in manifest)


def chunk_digests(chunks: Iterable[bytes]) -> list[bytes]:
    """SHA3-256 of each ciphertext chunk: what key holders log as "already decrypted"."""
    return [hashlib.sha3_256(c).digest() for c in chunks]


def aggregate_digest(aggregate: EncryptedAggregate) -> bytes:
    """SHA3-256 binding a round id to the exact aggregate ciphertext bytes, through the
    chunks' digests (:attr:`EncryptedAggregate.chunk_digests`, computed once per object)."""
    h = hashlib.sha3_256(b"fhe_agg/aggregate/v2|" + aggregate.round_id.to_bytes(8, "little"))
    for d in aggregate.chunk_digests:
        h.update(d)
    return h.digest()
