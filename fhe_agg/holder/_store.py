"""A key holder's crash-safe decryption log: one SQLite file per holder and key epoch.

It is the single record a :class:`~fhe_agg.KeyHolder` consults: without a file it lives in an
in-memory SQLite database, forgotten with the holder.

It records the rounds and the ciphertexts (chunk digests) the holder partially decrypted, the
decryption budget used, the DP noise multiplier of each partial (the holder's own privacy
accountant: the combiner is trusted with nothing), and the rounds the holder voted to abort. :meth:`HolderStore.record` commits a partial decryption durably *before*
the holder returns it, so a holder that is killed and restarted still refuses a second partial of
the same round or ciphertext and still counts the budget: a crash can lose a partial, never
release one twice. :meth:`HolderStore.abort` likewise commits an abort vote before the vote
leaves the holder, and a round is never both decrypted and aborted.

The store is not held exclusively (several :class:`~fhe_agg.KeyHolder` objects or processes may
open it); every refusal is checked again inside the committing transaction, so the log, not
any process's memory, decides.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Set
from pathlib import Path

from fhe_agg._errors import (
    AlreadyDecrypted,
    BudgetExhausted,
    ParameterMismatch,
    RoundAborted,
    RoundMismatch,
)
from fhe_agg._sqlite import Mismatch, Store, guard, memory_store, open_store
from fhe_agg.ckks._keys import KeyShare

__all__ = ["MAX_ROUND_STEP", "HolderStore"]

#: Default of the largest step of the round id a key holder accepts past its newest decrypted
#: round (of round 0 before any): a million rounds, while a jump to ``2**63 - 2`` is refused.
MAX_ROUND_STEP = 2**20

_DIGEST = 32
# added after the first release: created in older stores when they are opened
_ABORTED = "CREATE TABLE IF NOT EXISTS aborted (round_id INTEGER PRIMARY KEY)"
# the DP noise multiplier of each partial issued (a round decrypted before this table existed
# has no row: the holder counts it at its configuration's multiplier)
_RELEASES = (
    "CREATE TABLE IF NOT EXISTS releases (round_id INTEGER PRIMARY KEY,"
    " noise_multiplier REAL NOT NULL)"
)
_SCHEMA = (
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), budget_used INTEGER NOT NULL)",
    "INSERT INTO state VALUES (0, 0)",
    "CREATE TABLE rounds (round_id INTEGER PRIMARY KEY, aggregate BLOB NOT NULL,"
    " chunks INTEGER NOT NULL)",
    "CREATE TABLE chunks (digest BLOB PRIMARY KEY) WITHOUT ROWID",
    _ABORTED,
    _RELEASES,
)
#: Called inside the committing transaction with the noise multipliers of the partials already
#: issued (``None``: issued before the store recorded them); raises to refuse the partial.
PrivacyCheck = Callable[[list[float | None]], None]
_OTHER_HOLDER = "; give each holder its own store"
_MISMATCH: Mismatch = {
    "holder_id": (ParameterMismatch, "key holder (holder_id)", _OTHER_HOLDER),
    "holder_index": (ParameterMismatch, "key holder (holder_index)", _OTHER_HOLDER),
    "threshold": (ParameterMismatch, "key holder (threshold)", _OTHER_HOLDER),
    "holders": (ParameterMismatch, "key holder (holders)", _OTHER_HOLDER),
    "public_key": (ParameterMismatch, "key epoch", "; a new key needs a new store"),
}


class HolderStore:
    """The decryption log of one key holder, bound to its id, index and public key; ``path``
    ``None`` keeps it in memory."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        holder_id: str,
        key_share: KeyShare,
        max_round_step: int | None = MAX_ROUND_STEP,
    ) -> None:
        self._holder_id = holder_id
        self._max_step = max_round_step
        if path is None:
            self._db: Store = memory_store(_SCHEMA)
            self._where = ""
            return
        self._db = open_store(
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
        self._where = f" (logged in {self._db.path})"
        with self._db.closed_on_error():
            with self._db.transaction() as conn:
                conn.execute(_ABORTED)
                conn.execute(_RELEASES)
            self._check()

    @property
    def path(self) -> Path:
        return self._db.path

    def _check(self) -> None:
        """Refuse (:class:`~fhe_agg.CorruptStore`) a log whose rows are invalid or disagree:
        the budget must cover every logged round and ciphertext, and no round may be both
        decrypted and aborted."""
        used = self.budget_used()
        total = 0
        for round_id, chunks in self._db.query("SELECT round_id, chunks FROM rounds"):
            if not isinstance(round_id, int) or not isinstance(chunks, int) or chunks < 1:
                raise self._db.corrupt(f"round row {round_id!r} is invalid")
            total += chunks
        if total != used:
            raise self._db.corrupt(f"budget used {used} disagrees with the rounds logged ({total})")
        count = 0
        for (digest,) in self._db.query("SELECT digest FROM chunks"):
            if not isinstance(digest, bytes) or len(digest) != _DIGEST:
                raise self._db.corrupt(f"a chunk digest is not {_DIGEST} bytes")
            count += 1
        if count > used:
            raise self._db.corrupt("more ciphertexts logged than budget used")
        self.aborted()
        both = self._db.query(
            "SELECT round_id FROM aborted WHERE round_id IN (SELECT round_id FROM rounds)"
        )
        if both:
            raise self._db.corrupt(f"round {both[0][0]} is logged decrypted and aborted")
        for round_id, z in self._db.query("SELECT round_id, noise_multiplier FROM releases"):
            if not isinstance(z, float) or not math.isfinite(z) or z <= 0.0:
                raise self._db.corrupt(f"release row {round_id!r} has an invalid noise multiplier")
        orphan = self._db.query(
            "SELECT round_id FROM releases WHERE round_id NOT IN (SELECT round_id FROM rounds)"
        )
        if orphan:
            raise self._db.corrupt(f"round {orphan[0][0]} has a release but no partial logged")

    def budget_used(self) -> int:
        """Ciphertexts partially decrypted under this key so far."""
        state = self._db.query("SELECT budget_used FROM state")
        used = state[0][0] if len(state) == 1 else None
        if not isinstance(used, int):
            raise self._db.corrupt("state row missing or invalid")
        return used

    def releases(self) -> list[float | None]:
        """The DP noise multiplier of every partial issued, by round (``None``: issued before
        the store recorded them)."""
        with guard(self._db.path):
            return self._releases(self._db.conn)

    @staticmethod
    def _releases(conn: sqlite3.Connection) -> list[float | None]:
        rows = conn.execute(
            "SELECT r.round_id, x.noise_multiplier FROM rounds r"
            " LEFT JOIN releases x ON x.round_id = r.round_id ORDER BY 1"
        ).fetchall()
        return [z if isinstance(z, float) else None for _, z in rows]

    def decrypted(self) -> tuple[int, ...]:
        """The rounds partially decrypted, in increasing order."""
        return self._rounds("rounds")

    def aborted(self) -> tuple[int, ...]:
        """The rounds voted aborted (none of them is decrypted), in increasing order."""
        return self._rounds("aborted")

    def _rounds(self, table: str) -> tuple[int, ...]:
        rounds = [r for (r,) in self._db.query(f"SELECT round_id FROM {table} ORDER BY 1")]
        for round_id in rounds:
            if not isinstance(round_id, int):
                raise self._db.corrupt(f"{table} row {round_id!r} is invalid")
        return tuple(r for r in rounds if isinstance(r, int))

    def check(
        self,
        round_id: int,
        chunk_ids: Set[bytes] | None = None,
        *,
        count: int = 0,
        budget: int | None = None,
    ) -> None:
        """Raise if the log refuses a partial of ``round_id``: :class:`RoundAborted` for a round
        voted aborted, :class:`AlreadyDecrypted` for a round (or, given ``chunk_ids``, a
        ciphertext) already decrypted, :class:`RoundMismatch` for a round older than one
        decrypted or more than ``max_round_step`` ahead of it, :class:`BudgetExhausted` if
        ``count`` more ciphertexts exceed ``budget``."""
        with guard(self._db.path):
            self._refuse(self._db.conn, round_id, chunk_ids, count, budget)

    def _refuse(
        self,
        conn: sqlite3.Connection,
        round_id: int,
        chunk_ids: Set[bytes] | None,
        count: int,
        budget: int | None,
    ) -> None:
        who, where = f"holder {self._holder_id!r}", self._where
        if conn.execute("SELECT 1 FROM aborted WHERE round_id = ?", (round_id,)).fetchone():
            raise RoundAborted(
                f"{who} voted to abort round {round_id}{where}: it never decrypts it; run the "
                "round again under a new round id"
            )
        if conn.execute("SELECT 1 FROM rounds WHERE round_id = ?", (round_id,)).fetchone():
            raise AlreadyDecrypted(f"round {round_id} was already decrypted by {who}{where}")
        newest = conn.execute("SELECT MAX(round_id) FROM rounds").fetchone()[0]
        if newest is not None and round_id < newest:
            raise RoundMismatch(
                f"round {round_id} is older than round {newest}, already decrypted{where}"
            )
        base = 0 if newest is None else newest
        if self._max_step is not None and round_id > base + self._max_step:
            raise RoundMismatch(
                f"round {round_id} jumps more than max_round_step={self._max_step} past round "
                f"{base}{' (the newest decrypted)' if newest is not None else ''}{where}: "
                "decrypting it would make every round before it unusable; number rounds in "
                "sequence (or raise KeyHolder(max_round_step=...) deliberately)"
            )
        if chunk_ids is None:
            return
        for digest in chunk_ids:
            if conn.execute("SELECT 1 FROM chunks WHERE digest = ?", (digest,)).fetchone():
                raise AlreadyDecrypted(
                    f"{who} already decrypted a ciphertext of this aggregate{where}"
                )
        used = conn.execute("SELECT budget_used FROM state").fetchone()[0]
        if budget is not None and used + count > budget:
            raise BudgetExhausted(
                f"{who}: {count} ciphertexts requested, {budget - used} left of this key's "
                f"budget of {budget}; run a new key ceremony"
            )

    def abort(self, round_id: int) -> None:
        """Commit a vow never to decrypt ``round_id`` (idempotent); :class:`AlreadyDecrypted`,
        committing nothing, if the round is in the decryption log."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM rounds WHERE round_id = ?", (round_id,)).fetchone():
                raise AlreadyDecrypted(
                    f"holder {self._holder_id!r} already decrypted round {round_id}"
                    f"{self._where}: it cannot vote to abort it"
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
        noise_multiplier: float | None = None,
        privacy: PrivacyCheck | None = None,
    ) -> None:
        """Commit one partial decryption of ``count`` ciphertexts (digests ``chunk_ids``), or
        raise what :meth:`check` raises and commit nothing (checked again inside the
        transaction, so the log, not any process's memory, decides). With ``noise_multiplier``
        (a DP release) ``privacy`` first sees the multipliers of the partials already issued
        and may refuse (e.g. :class:`~fhe_agg.PrivacyBudgetExceeded`), committing nothing."""
        with self._db.transaction() as conn:
            self._refuse(conn, round_id, chunk_ids, count, budget)
            if privacy is not None:
                privacy(self._releases(conn))
            if noise_multiplier is not None:
                conn.execute("INSERT INTO releases VALUES (?, ?)", (round_id, noise_multiplier))
            conn.execute("INSERT INTO rounds VALUES (?, ?, ?)", (round_id, aggregate_digest, count))
            conn.executemany("INSERT INTO chunks VALUES (?)", ((d,) for d in chunk_ids))
            conn.execute("UPDATE state SET budget_used = budget_used + ?", (count,))

    def close(self) -> None:
        """Close a file store; an in-memory log is kept (closing it would forget it)."""
        if self._where:
            self._db.close()
