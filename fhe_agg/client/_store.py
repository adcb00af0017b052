"""A client's memory of the update vectors it encrypted, and of the rounds proven closed.

One SQLite file per client and key epoch (WAL, ``synchronous=FULL``, see :mod:`fhe_agg._sqlite`),
or an in-memory database forgotten with the client. It holds, for each of the client's latest
:data:`REMEMBERED_UPDATES` *unweighted* vectors, its SHA-256 digest and the round it was last sent
for, and the rounds an abort certificate proved closed. :meth:`SentMemory.claim` checks and
records a vector in one transaction, committed before the client encrypts anything, so a client
killed and restarted on the same file still refuses to send a vector again
(:class:`~fhe_agg.RoundNotClosed`).
"""

from __future__ import annotations

import os

from fhe_agg._errors import ParameterMismatch, RoundNotClosed
from fhe_agg._sqlite import Mismatch, Store, memory_store, open_store

__all__ = ["REMEMBERED_UPDATES", "SentMemory"]

#: How many of its latest update vectors a client remembers (digest and round).
REMEMBERED_UPDATES = 16
_DIGEST = 32
_SCHEMA = (
    "CREATE TABLE sent (digest BLOB PRIMARY KEY, round_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE closed (round_id INTEGER PRIMARY KEY)",
)
_MISMATCH: Mismatch = {
    "client_id": (ParameterMismatch, "client (client_id)", "; give each client its own state"),
    "public_key": (ParameterMismatch, "key epoch", "; a new key needs a new state file"),
}


class SentMemory:
    """The digests of the vectors a client sent and the rounds shown closed."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        client_id: str,
        public_key_fingerprint: bytes,
    ) -> None:
        self._client_id = client_id
        if path is None:
            self._db: Store = memory_store(_SCHEMA)
            self._file = False
            return
        self._db = open_store(
            path,
            kind="client",
            binding={"client_id": client_id, "public_key": public_key_fingerprint},
            schema=_SCHEMA,
            mismatch=_MISMATCH,
            exclusive=False,
            max_row_bytes=4096,
        )
        self._file = True
        with self._db.closed_on_error():
            for digest, round_id in self._db.query("SELECT digest, round_id FROM sent"):
                if not isinstance(digest, bytes) or len(digest) != _DIGEST:
                    raise self._db.corrupt(f"a vector digest is not {_DIGEST} bytes")
                if not isinstance(round_id, int):
                    raise self._db.corrupt(f"sent row round {round_id!r} is invalid")

    def claim(self, digest: bytes, round_id: int) -> None:
        """Record ``digest`` as sent for ``round_id``, or raise :class:`RoundNotClosed` (nothing
        recorded) if it was sent for another round not proven closed."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT round_id FROM sent WHERE digest = ?", (digest,)).fetchone()
            first = None if row is None else row[0]
            closed = (
                first is not None
                and conn.execute("SELECT 1 FROM closed WHERE round_id = ?", (first,)).fetchone()
            )
            if first is not None and first != round_id and not closed:
                raise RoundNotClosed(
                    f"client {self._client_id!r} already encrypted this update (at any weight) "
                    f"for round {first}, which is not proven aborted; sending it for round "
                    f"{round_id} too could reveal another client's update. Show the client round "
                    f"{first}'s abort certificate (Client.accept_abort) first",
                    round_id=round_id,
                    party=self._client_id,
                )
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sent").fetchone()[0]
            conn.execute("INSERT OR REPLACE INTO sent VALUES (?, ?, ?)", (digest, round_id, seq))
            conn.execute("DELETE FROM sent WHERE seq <= ?", (int(seq) - REMEMBERED_UPDATES,))
            conn.execute("DELETE FROM closed WHERE round_id NOT IN (SELECT round_id FROM sent)")

    def close_round(self, round_id: int) -> None:
        """Remember ``round_id`` as proven closed, if a remembered vector was sent for it."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM sent WHERE round_id = ?", (round_id,)).fetchone():
                conn.execute("INSERT OR IGNORE INTO closed VALUES (?)", (round_id,))

    def close(self) -> None:
        """Close a file store (an in-memory memory is kept: closing would forget it)."""
        if self._file:
            self._db.close()
