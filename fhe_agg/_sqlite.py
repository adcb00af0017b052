"""Embedded SQLite files for crash-safe state: creation, binding, durability, error mapping.

A store is one SQLite database in WAL mode with ``synchronous=FULL``: SQLite fsyncs the
write-ahead log at every ``COMMIT``, so a transaction that returned survives a kill of the
process (and a power loss), and a kill at any other instant leaves the last committed state
(https://www.sqlite.org/wal.html, https://www.sqlite.org/atomiccommit.html).

A new store is built complete (schema and *binding*: which round, key or holder it serves) in a
temporary file that is then hard-linked into place, so a file at the path is always a finished
store. Opening one that is empty, truncated, not SQLite, of another kind or of an unknown version
raises :class:`~fhe_agg.CorruptStore` or :class:`~fhe_agg.StoreError`; one bound to something
else raises the error its :data:`Mismatch` table names. Opening never silently starts afresh.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from fhe_agg.errors import CorruptStore, FheAggError, StoreError

__all__ = ["Binding", "Mismatch", "Store", "guard", "memory_store", "open_store"]

FORMAT = "fhe_agg-store"
VERSION = 1
Binding = Mapping[str, int | str | bytes]
#: ``binding key -> (error class, what the key identifies, hint)`` for a store bound otherwise.
Mismatch = Mapping[str, tuple[type[FheAggError], str, str]]

_HEADER = b"SQLite format 3\x00"
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SHARED_TIMEOUT_S = 5.0  # a shared store waits this long for another writer's commit
_EXCLUSIVE_TIMEOUT_S = 0.2  # an exclusive one is held for a process's life: fail fast


def _translate(path: Path, exc: sqlite3.Error) -> FheAggError:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _CORRUPT_CODES:
        return CorruptStore(f"store {path}: damaged or not an fhe_agg store ({exc})")
    if primary in _BUSY_CODES:
        return StoreError(
            f"store {path} is in use by another process (a second instance for the same "
            "round or holder?); stop it first"
        )
    return StoreError(f"store {path}: {exc}")


@contextmanager
def guard(path: Path) -> Iterator[None]:
    """Turn SQLite errors into :class:`CorruptStore` (damage) or :class:`StoreError`; text
    that does not decode (Python's ``sqlite3`` raises ``UnicodeDecodeError``) is damage too."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _translate(path, exc) from None
    except UnicodeDecodeError:  # the schema or a TEXT value holds bytes that are not UTF-8
        raise CorruptStore(f"store {path}: damaged (text that is not UTF-8)") from None


class Store:
    """One open store: a connection in autocommit mode with explicit transactions."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, created: bool) -> None:
        self.path = path
        self.conn = conn
        self.created = created

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception rolls back and propagates."""
        with guard(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def corrupt(self, reason: str) -> CorruptStore:
        """The error for content that fails a check, naming this store."""
        return CorruptStore(f"store {self.path}: {reason}")

    @contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """Close the store if the block raises, then let the exception propagate."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """All rows of a read-only query (SQLite errors mapped as by :func:`guard`)."""
        with guard(self.path):
            return list(self.conn.execute(sql, args).fetchall())

    def close(self) -> None:
        self.conn.close()


def open_store(
    path: str | os.PathLike[str],
    *,
    kind: str,
    binding: Binding,
    schema: Sequence[str],
    mismatch: Mismatch,
    exclusive: bool,
    max_row_bytes: int,
    page_size: int = 4096,
) -> Store:
    """Open the ``kind`` store at ``path`` bound to ``binding``, creating it if absent.

    ``exclusive`` holds SQLite's lock for the life of the connection, so a second process gets
    :class:`StoreError` instead of writing beside the first. ``mismatch[key]`` names the error
    for a binding field that differs. Rows longer than ``max_row_bytes`` are
    refused by SQLite itself (``SQLITE_LIMIT_LENGTH``), so no read allocates more.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"store: {target} is a directory; give a file path")
    created = False
    if not target.exists():
        _refuse_orphan_log(target)
        created = _create(target, kind, binding, schema, page_size)
    _check_magic(target)
    with guard(target):
        timeout = _EXCLUSIVE_TIMEOUT_S if exclusive else _SHARED_TIMEOUT_S
        # The owner (Aggregator, KeyHolder) is used by one thread at a time, not always the one
        # that opened it: an IngestQueue's worker adds updates to an aggregator built elsewhere.
        # SQLite itself is serialized (sqlite3.threadsafety == 3); the owner serializes calls.
        conn = sqlite3.connect(
            target, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    try:
        with guard(target):
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_row_bytes)
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise StoreError(f"store {target}: the file system does not support WAL mode")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")
            if exclusive:  # take the lock now, not at the first write
                conn.execute("BEGIN EXCLUSIVE")
                conn.execute("COMMIT")
            # Finish any checkpoint a kill interrupted: until then the main file may be
            # legitimately shorter than its header says (the pages are still in the -wal).
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is not None and busy[0] == 0:
            _check_size(target)
        _check_binding(target, conn, kind, binding, mismatch)
    except BaseException:
        conn.close()
        raise
    return Store(target, conn, created=created)


def _refuse_orphan_log(target: Path) -> None:
    """A missing store whose ``-wal``/``-shm`` log is still there was moved without it."""
    for suffix in ("-wal", "-shm"):
        if Path(f"{target}{suffix}").exists():
            raise CorruptStore(
                f"store {target} is missing but its log {target}{suffix} exists: the store "
                "was deleted or moved without its log; restore both, or remove the log to "
                "start afresh"
            )


def memory_store(schema: Sequence[str]) -> Store:
    """A store in memory with ``schema`` (no binding, no durability): forgotten when closed."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in schema:
        conn.execute(statement)
    return Store(Path(":memory:"), conn, created=True)


def _create(
    target: Path, kind: str, binding: Binding, schema: Sequence[str], page_size: int
) -> bool:
    """Build the store in a temporary file, then link it to ``target``; False if another
    process created ``target`` first."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent)
    os.close(fd)  # mkstemp creates it 0600; SQLite treats an empty file as a new database
    tmp = Path(tmp_name)
    try:
        with guard(target):
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute(f"PRAGMA page_size={int(page_size)}")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN")
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)")
                for statement in schema:
                    conn.execute(statement)
                meta = {"format": FORMAT, "version": VERSION, "kind": kind, **binding}
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _check_magic(target: Path) -> None:
    """Refuse an empty file or one that is not SQLite (before SQLite would initialise it)."""
    with open(target, "rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(_HEADER):
        raise CorruptStore(f"store {target}: empty, truncated or not an SQLite file")


def _check_size(target: Path) -> None:
    """Refuse a main file shorter than its header says (truncated); valid once the WAL is
    checkpointed."""
    with open(target, "rb") as fh:
        head = fh.read(100)
        size = os.fstat(fh.fileno()).st_size
    if len(head) < 100:
        raise CorruptStore(f"store {target}: truncated to {size} bytes")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # "in-header database size" is valid only then
    if valid and size < pages * page_size:
        raise CorruptStore(
            f"store {target}: truncated ({size} bytes, its header says {pages * page_size})"
        )


def _check_binding(
    target: Path, conn: sqlite3.Connection, kind: str, binding: Binding, mismatch: Mismatch
) -> None:
    with guard(target):
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise CorruptStore(f"store {target}: an SQLite file, but not an fhe_agg store")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT:
        raise CorruptStore(f"store {target}: an SQLite file, but not an fhe_agg store")
    if meta.get("version") != VERSION:
        raise CorruptStore(
            f"store {target}: format version {meta.get('version')!r}, this fhe_agg reads {VERSION}"
        )
    if meta.get("kind") != kind:
        raise StoreError(f"store {target} is a {meta.get('kind')!r} store, not a {kind!r} store")
    for key, expected in binding.items():
        if key not in meta:
            raise CorruptStore(f"store {target}: binding field {key!r} is missing")
        if meta[key] != expected:
            error, what, hint = mismatch[key]
            raise error(
                f"store {target} belongs to another {what}: {_show(meta[key])}, expected "
                f"{_show(expected)}{hint}"
            )


def _show(value: object) -> str:
    return value[:8].hex() if isinstance(value, bytes) else repr(value)
