"""The aggregator's crash-safe round state: one SQLite file per round.

What one accepted update commits, in ONE transaction: its signed statement, its Merkle leaves,
its ciphertext chunks and well-formedness proofs (the key holders' evidence) and the new running
sum. So after a kill the
store holds either the state before the update or after it, never half of it.

The running sum is stored, not derived: each commit rewrites it (one model's worth of bytes, about
as much again as the update's chunks), and in exchange resuming reads one model whatever the number
of clients. Deriving it would make a commit cheaper but a restart re-read and re-add every client's
chunks: O(clients x model) of I/O at the moment the round is already late.

On resume every stored statement's signature is verified again, every Merkle root recomputed from
the stored leaves, every running-sum row checked against its digest (bound to the accepted count)
and to the prime moduli; chunks are checked against their leaf, and proofs against the signed
digest, when read as evidence. Chunks are
never all loaded: memory stays O(one model).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from fhe_agg._sqlite import Mismatch, Store, guard, open_store
from fhe_agg.errors import (
    DuplicateUpdate,
    LayoutMismatch,
    MalformedMessage,
    ParameterMismatch,
    Rejected,
    RoundMismatch,
)
from fhe_agg.hazmat.rns import U64
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._merkle import leaf_hash, merkle_root
from fhe_agg.protocol._messages import SignedStatement
from fhe_agg.protocol._wellformed import proofs_digest

__all__ = ["AggregatorStore", "RoundState"]

_LEAF = 32
_MAX_STATEMENT = 4096
_SCHEMA = (
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " accepted INTEGER NOT NULL, finalized INTEGER NOT NULL)",
    "INSERT INTO state VALUES (0, 0, 0)",
    "CREATE TABLE updates (slot INTEGER PRIMARY KEY, client_id TEXT NOT NULL UNIQUE,"
    " statement BLOB NOT NULL, signature BLOB NOT NULL, leaves BLOB NOT NULL)",
    # chunk ``index`` of update ``slot`` is row ``slot * chunk_count + index``
    "CREATE TABLE chunks (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    # proof ``k`` of update ``slot`` is row ``slot * proof_count + k``
    "CREATE TABLE proofs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE running_sum (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, digest BLOB NOT NULL)",
)
_MISMATCH: Mismatch = {
    "round_id": (RoundMismatch, "round", "; give each round its own store path"),
    "params_id": (ParameterMismatch, "CKKS parameters and federation bounds (params_id)", ""),
    "public_key": (ParameterMismatch, "public key (key epoch)", ""),
    "layout": (LayoutMismatch, "model layout", ""),
}


@dataclass
class RoundState:
    """What a store holds: accepted updates in order with their leaves, the sum, the flag."""

    accepted: list[tuple[SignedStatement, list[bytes]]]
    running_sum: U64 | None
    finalized: bool
    resumed: bool


class AggregatorStore:
    """The SQLite store of one round, bound to (params_id, round_id, layout, public key).

    Held exclusively while open: a second aggregator on the same file gets
    :class:`~fhe_agg.StoreError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        context: RoundContext,
    ) -> None:
        config, backend = context.config, context.backend
        self._chunks = context.chunk_count
        self._proofs = context.bounds.proof_count
        self._primes = np.asarray(backend.data_primes, dtype=np.uint64)
        self._shape = (2, len(backend.data_primes), backend.n)
        self._sum_bytes = 8 * int(np.prod(self._shape))
        self._max_clients = config.max_clients
        self._count = 0
        biggest = max(
            self._sum_bytes,
            backend.ciphertext_bytes,
            _LEAF * self._chunks,
            context.bounds.proof_bytes,
        )
        self._db: Store = open_store(
            path,
            kind="aggregator",
            binding={
                "round_id": context.round_id,
                "params_id": context.params_id,
                "public_key": context.key_fingerprint,
                "layout": context.layout_digest,
            },
            schema=_SCHEMA,
            mismatch=_MISMATCH,
            exclusive=True,
            max_row_bytes=biggest + _MAX_STATEMENT + 64 * 1024,
            page_size=65536,
        )

    @property
    def path(self) -> Path:
        return self._db.path

    def load(self, check: Callable[[SignedStatement], None]) -> RoundState:
        """Read and verify the whole state but the chunks; ``check`` re-verifies each stored
        statement (its errors propagate, with a note naming the store). Closes the store if it
        raises."""
        with self._db.closed_on_error():
            return self._load(check)

    def _load(self, check: Callable[[SignedStatement], None]) -> RoundState:
        state = self._db.query("SELECT accepted, finalized FROM state")
        if len(state) != 1 or state[0][1] not in (0, 1):
            raise self._db.corrupt("state row missing or invalid")
        accepted, finalized = state[0]
        if not isinstance(accepted, int) or not 0 <= accepted <= self._max_clients:
            raise self._db.corrupt(f"accepted count {accepted!r} outside 0..{self._max_clients}")
        items = self._load_updates(check)
        if len(items) != accepted:
            raise self._db.corrupt(f"state says {accepted} updates, {len(items)} are stored")
        count, low, high = self._db.query("SELECT COUNT(*), MIN(id), MAX(id) FROM chunks")[0]
        expected = accepted * self._chunks
        if count != expected or (expected and (low, high) != (0, expected - 1)):
            raise self._db.corrupt(f"{count} chunk rows stored, {accepted} updates need {expected}")
        count, low, high = self._db.query("SELECT COUNT(*), MIN(id), MAX(id) FROM proofs")[0]
        expected = accepted * self._proofs
        if count != expected or (expected and (low, high) != (0, expected - 1)):
            raise self._db.corrupt(f"{count} proof rows stored, {accepted} updates need {expected}")
        self._count = accepted
        return RoundState(items, self._load_sum(accepted), bool(finalized), not self._db.created)

    def _load_updates(
        self, check: Callable[[SignedStatement], None]
    ) -> list[tuple[SignedStatement, list[bytes]]]:
        items: list[tuple[SignedStatement, list[bytes]]] = []
        sql = "SELECT slot, client_id, statement, signature, leaves FROM updates ORDER BY slot"
        for slot, client_id, raw, signature, leaf_blob in self._db.query(sql):
            if slot != len(items) or not isinstance(leaf_blob, bytes):
                raise self._db.corrupt(f"update rows are not numbered 0..n-1 (row {slot!r})")
            signed = self._decode(raw, signature, slot)
            stmt = signed.statement
            leaves = [leaf_blob[i : i + _LEAF] for i in range(0, len(leaf_blob), _LEAF)]
            if (
                stmt.client_id != client_id
                or len(leaf_blob) != _LEAF * self._chunks
                or merkle_root(leaves) != stmt.merkle_root
            ):
                raise self._db.corrupt(f"update {slot} of {stmt.client_id!r} is inconsistent")
            try:
                check(signed)
            except Rejected as exc:
                exc.add_note(f"raised by the stored update {slot} while resuming {self.path}")
                raise
            items.append((signed, leaves))
        return items

    def _decode(self, raw: object, signature: object, slot: object) -> SignedStatement:
        if not isinstance(raw, bytes) or len(raw) > _MAX_STATEMENT:
            raise self._db.corrupt(f"statement of update {slot} is not a bounded blob")
        try:
            fields = msgpack.unpackb(
                raw, raw=False, max_bin_len=64, max_str_len=1024, max_array_len=16, max_map_len=0
            )
            return SignedStatement.from_wire([fields, signature])
        except (MalformedMessage, ValueError, msgpack.UnpackException) as exc:
            raise self._db.corrupt(f"statement of update {slot} does not decode ({exc})") from None

    def _digest(self, index: int, accepted: int, data: bytes) -> bytes:
        """SHA-256 (SHA-NI: a model's worth of bytes per commit) of the row, its index and the
        accepted count (v2; SHA3-256 under ``fhe_agg/store/sum|`` before protocol version 3)."""
        head = b"fhe_agg/store/sum/v2|" + index.to_bytes(8, "little")
        h = hashlib.sha256(head + accepted.to_bytes(8, "little"))
        h.update(data)
        return h.digest()

    def _load_sum(self, accepted: int) -> U64 | None:
        total = None if accepted == 0 else np.empty((self._chunks, *self._shape), np.uint64)
        misnumbered = f"running sum rows are not numbered 0..{self._chunks - 1}"
        rows = 0
        sql = "SELECT idx, data, digest FROM running_sum ORDER BY idx"
        with guard(self.path):  # one row at a time: peak memory is the sum plus one row
            for index, data, digest in self._db.conn.execute(sql):
                if total is None:
                    raise self._db.corrupt("a running sum is stored but no update")
                if index != rows or rows == self._chunks:  # a gap, or a row too many
                    raise self._db.corrupt(misnumbered)
                self._check_sum_row(total, index, data, digest, accepted)
                del data  # not alive while the next row is fetched
                rows += 1
        if total is not None and rows != self._chunks:
            raise self._db.corrupt(misnumbered)
        return total

    def _check_sum_row(
        self, total: U64, index: int, data: object, digest: object, accepted: int
    ) -> None:
        if (
            not isinstance(data, bytes)
            or len(data) != self._sum_bytes
            or digest != self._digest(index, accepted, data)
        ):
            raise self._db.corrupt(f"running-sum row {index} fails its digest")
        chunk = np.frombuffer(data, dtype="<u8").reshape(self._shape)
        if not (chunk < self._primes[None, :, None]).all():
            raise self._db.corrupt(f"running-sum row {index} holds values beyond the primes")
        total[index] = chunk

    def append(
        self,
        signed: SignedStatement,
        chunks: Sequence[bytes],
        leaves: Sequence[bytes],
        new_sum: U64,
        proofs: Sequence[bytes] = (),
    ) -> int:
        """Commit one accepted update (with its proofs) and the running sum that includes it;
        return its slot."""
        slot, stmt = self._count, signed.statement
        base = slot * self._chunks
        with self._db.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO updates VALUES (?, ?, ?, ?, ?)",
                    (slot, stmt.client_id, stmt.encode(), signed.signature, b"".join(leaves)),
                )
            except sqlite3.IntegrityError:
                raise DuplicateUpdate(
                    f"client {stmt.client_id!r} is already stored in {self.path}",
                    round_id=stmt.round_id,
                    party=stmt.client_id,
                ) from None
            conn.executemany(
                "INSERT INTO chunks VALUES (?, ?)", ((base + i, c) for i, c in enumerate(chunks))
            )
            conn.executemany(
                "INSERT INTO proofs VALUES (?, ?)",
                ((slot * self._proofs + k, p) for k, p in enumerate(proofs)),
            )
            for index, chunk in enumerate(new_sum):
                data = np.ascontiguousarray(chunk, dtype="<u8").tobytes()
                conn.execute(
                    "INSERT OR REPLACE INTO running_sum VALUES (?, ?, ?)",
                    (index, data, self._digest(index, slot + 1, data)),
                )
            conn.execute("UPDATE state SET accepted = ?", (slot + 1,))
        self._count = slot + 1
        return slot

    def mark_finalized(self) -> None:
        """Commit the finalized flag: a resumed aggregator accepts no more updates."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE state SET finalized = 1")

    def read(self, slot: int, index: int) -> bytes:
        """Chunk ``index`` of update ``slot``, checked against the update's Merkle leaf."""
        with guard(self.path):
            row = self._db.conn.execute(
                "SELECT data FROM chunks WHERE id = ?", (slot * self._chunks + index,)
            ).fetchone()
            leaf = self._db.conn.execute(
                "SELECT substr(leaves, ?, ?) FROM updates WHERE slot = ?",
                (index * _LEAF + 1, _LEAF, slot),
            ).fetchone()
        if (
            row is None
            or leaf is None
            or not isinstance(row[0], bytes)
            or leaf_hash(index, row[0]) != leaf[0]
        ):
            raise self._db.corrupt(f"chunk {index} of update {slot} is missing or altered")
        data: bytes = row[0]
        return data

    def read_proofs(self, slot: int) -> tuple[bytes, ...]:
        """The proofs of update ``slot``, checked against the digest its statement signed."""
        first = slot * self._proofs
        with guard(self.path):
            rows = self._db.conn.execute(
                "SELECT data FROM proofs WHERE id >= ? AND id < ? ORDER BY id",
                (first, first + self._proofs),
            ).fetchall()
            stored = self._db.conn.execute(
                "SELECT statement, signature FROM updates WHERE slot = ?", (slot,)
            ).fetchone()
        proofs = tuple(r[0] for r in rows if isinstance(r[0], bytes))
        if stored is None or len(proofs) != self._proofs:
            raise self._db.corrupt(f"the proofs of update {slot} are missing")
        signed = self._decode(stored[0], stored[1], slot)
        if proofs_digest(proofs) != signed.statement.proofs_digest:
            raise self._db.corrupt(f"the proofs of update {slot} are altered")
        return proofs

    def close(self) -> None:
        self._db.close()
