"""A key holder's crash-safe decryption log: one SQLite file per holder and key epoch.

It records the rounds and the ciphertexts (chunk digests) the holder partially decrypted, the
decryption budget used, and the rounds the holder voted to abort. :meth:`HolderStore.record` commits a partial decryption durably *before*
the holder returns it, so a holder that is killed and restarted still refuses a second partial of
the same round or ciphertext and still counts the budget: a crash can lose a partial, never
release one twice. :meth:`HolderStore.abort` likewise commits an abort vote before the vote
leaves the holder, and a round is never both decrypted and aborted.

The store is not held exclusively (several :class:`~fhe_agg.KeyHolder` objects or processes may
open it); every refusal is checked again inside the committing transaction, so the log, not
any process's memory, decides.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Set
from pathlib import Path

from fhe_agg._errors import (
    AlreadyDecrypted,
    BudgetExhausted,
    ParameterMismatch,
    RoundAborted,
    RoundMismatch,
)
from fhe_agg._keys import KeyShare
from fhe_agg._sqlite import Mismatch, Store, open_store

__all__ = ["HolderStore"]

_DIGEST = 32
# added after the first release: created in older stores when they are opened
_ABORTED = "CREATE TABLE IF NOT EXISTS aborted (round_id INTEGER PRIMARY KEY)"
_SCHEMA = (
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), budget_used INTEGER NOT NULL)",
    "INSERT INTO state VALUES (0, 0)",
    "CREATE TABLE rounds (round_id INTEGER PRIMARY KEY, aggregate BLOB NOT NULL,"
    " chunks INTEGER NOT NULL)",
    "CREATE TABLE chunks (digest BLOB PRIMARY KEY) WITHOUT ROWID",
    _ABORTED,
)
_OTHER_HOLDER = "; give each holder its own store"
_MISMATCH: Mismatch = {
    "holder_id": (ParameterMismatch, "key holder (holder_id)", _OTHER_HOLDER),
    "holder_index": (ParameterMismatch, "key holder (holder_index)", _OTHER_HOLDER),
    "threshold": (ParameterMismatch, "key holder (threshold)", _OTHER_HOLDER),
    "holders": (ParameterMismatch, "key holder (holders)", _OTHER_HOLDER),
    "public_key": (ParameterMismatch, "key epoch", "; a new key needs a new store"),
}


class HolderStore:
    """The decryption log of one key holder, bound to its id, index and public key."""

    def __init__(
        self, path: str | os.PathLike[str], *, holder_id: str, key_share: KeyShare
    ) -> None:
        self._holder_id = holder_id
        self._db: Store = open_store(
            path,
            kind="keyholder",
            binding={
                "holder_id": holder_id,
                "holder_index": key_share.holder_index,
                "threshold": key_share.threshold,
                "holders": key_share.holders,
                "public_key": key_share.public_key_fingerprint,
            },
            schema=_SCHEMA,
            mismatch=_MISMATCH,
            exclusive=False,
            max_row_bytes=64 * 1024,
        )
        with self._db.closed_on_error(), self._db.transaction() as conn:
            conn.execute(_ABORTED)

    @property
    def path(self) -> Path:
        return self._db.path

    def load(self) -> tuple[set[int], set[bytes], int]:
        """The decrypted rounds, the decrypted chunk digests and the budget used, checked for
        consistency (the budget covers every logged round). Closes the store if it raises."""
        with self._db.closed_on_error():
            return self._load()

    def _load(self) -> tuple[set[int], set[bytes], int]:
        state = self._db.query("SELECT budget_used FROM state")
        used = state[0][0] if len(state) == 1 else None
        if not isinstance(used, int):
            raise self._db.corrupt("state row missing or invalid")
        decrypted: set[int] = set()
        total = 0
        for round_id, chunks in self._db.query("SELECT round_id, chunks FROM rounds"):
            if not isinstance(round_id, int) or not isinstance(chunks, int) or chunks < 1:
                raise self._db.corrupt(f"round row {round_id!r} is invalid")
            decrypted.add(round_id)
            total += chunks
        if total != used:
            raise self._db.corrupt(f"budget used {used} disagrees with the rounds logged ({total})")
        chunk_ids: set[bytes] = set()
        for (digest,) in self._db.query("SELECT digest FROM chunks"):
            if not isinstance(digest, bytes) or len(digest) != _DIGEST:
                raise self._db.corrupt(f"a chunk digest is not {_DIGEST} bytes")
            chunk_ids.add(digest)
        if len(chunk_ids) > used:
            raise self._db.corrupt("more ciphertexts logged than budget used")
        return decrypted, chunk_ids, used

    def aborted(self) -> set[int]:
        """The rounds this holder voted to abort (none of them is in the decryption log)."""
        with self._db.closed_on_error():
            rounds: set[int] = set()
            for (round_id,) in self._db.query("SELECT round_id FROM aborted"):
                if not isinstance(round_id, int):
                    raise self._db.corrupt(f"aborted round {round_id!r} is invalid")
                rounds.add(round_id)
            both = self._db.query(
                "SELECT round_id FROM aborted WHERE round_id IN (SELECT round_id FROM rounds)"
            )
            if both:
                raise self._db.corrupt(f"round {both[0][0]} is logged decrypted and aborted")
            return rounds

    def abort(self, round_id: int) -> None:
        """Commit a vow never to decrypt ``round_id`` (idempotent); :class:`AlreadyDecrypted`,
        committing nothing, if the round is in the decryption log."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM rounds WHERE round_id = ?", (round_id,)).fetchone():
                raise AlreadyDecrypted(
                    f"holder {self._holder_id!r} already decrypted round {round_id} "
                    f"(logged in {self.path}): it cannot vote to abort it"
                )
            conn.execute("INSERT OR IGNORE INTO aborted VALUES (?)", (round_id,))

    def record(
        self,
        *,
        round_id: int,
        aggregate_digest: bytes,
        chunk_ids: Set[bytes],
        count: int,
        budget: int | None,
    ) -> None:
        """Commit one partial decryption of ``count`` ciphertexts, or raise and commit nothing:
        :class:`AlreadyDecrypted` for a logged round or ciphertext, :class:`RoundMismatch` for a
        round older than one logged, :class:`RoundAborted` for a round voted aborted,
        :class:`BudgetExhausted` beyond ``budget``."""
        who = f"holder {self._holder_id!r}"
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM aborted WHERE round_id = ?", (round_id,)).fetchone():
                raise RoundAborted(f"{who} voted to abort round {round_id} (logged in {self.path})")
            newest = conn.execute("SELECT MAX(round_id) FROM rounds").fetchone()[0]
            if newest is not None and round_id < newest:
                raise RoundMismatch(f"round {round_id} is older than round {newest}, decrypted")
            used = conn.execute("SELECT budget_used FROM state").fetchone()[0]
            if budget is not None and used + count > budget:
                raise BudgetExhausted(
                    f"{who}: {count} ciphertexts requested, {budget - used} left of this key's "
                    f"budget of {budget}; run a new key ceremony"
                )
            try:
                conn.execute(
                    "INSERT INTO rounds VALUES (?, ?, ?)", (round_id, aggregate_digest, count)
                )
                conn.executemany("INSERT INTO chunks VALUES (?)", ((d,) for d in chunk_ids))
            except sqlite3.IntegrityError:
                raise AlreadyDecrypted(
                    f"{who} already decrypted round {round_id} or a ciphertext of this aggregate "
                    f"(logged in {self.path})"
                ) from None
            conn.execute("UPDATE state SET budget_used = ?", (used + count,))

    def close(self) -> None:
        self._db.close()
