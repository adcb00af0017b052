"""The aggregate a key holder challenged, kept beside ``node.db`` until its partial decryption.

Flower runs every message in a fresh process, so a key holder keeps the aggregate it challenged
(30 MB at 1e6 parameters, ``precise``) on disk between its challenge and its partial. Kept as a
blob in ``node.db`` it cost, per message at 1e6 (``node_overhead`` benchmark and cProfile,
2026-12-06, three runs): 0.13-0.24 s CPU (0.18-0.32 s wall) to save at the challenge (the copy
into a msgpack envelope; SQLite's ``INSERT`` of its overflow pages into the write-ahead log and
the fsync at ``COMMIT``, about half each; the checkpoint at close), and at the partial 0.04-0.06
s to read it (the row copied out, unpacked twice) and 0.11-0.12 s to save (its ``DELETE``
walks every overflow page into the free list, then ``COMMIT`` and checkpoint). Kept as a file it
is written once, as received, read once, and unlinked: ~0.03 s CPU to save at the challenge
(the write and its fsync), ~0.02 s to read at the partial (the read and the one parse), 0.004 s
to save (``benchmarks/README.md``).

**Layout.** ``pending-<key>-<digest>.aggregate`` in the node's state folder, ``<key>`` derived
from (consortium, key epoch, member id) (:meth:`NodeStore.name`) and ``<digest>`` the aggregate's
digest as the holder's round state recorded it at the challenge (:func:`aggregate_digest`: round
id and every chunk's SHA3-256). Nothing else names it: the round state (the ``round`` row, saved
in the same transaction as the file) says whether an aggregate is kept (phase ``CHALLENGED``), of
which round, under which digest, and with which layout.

**Crash safety.** At the challenge, within the transaction that saves the round state (holding
SQLite's write lock), the bytes go to a temporary file (0600), are fsynced, renamed to their
name and the folder fsynced, all before ``COMMIT``: a kill at any instant leaves either the
previous committed state (and perhaps a file no round state names) or the new round state with
its file durable. At the partial (or an abort vote), the file is unlinked after the ``COMMIT``
of the holder's new phase; a kill in between leaves a file no round state names. Such orphans,
and temporary files of an interrupted write, are never read (a read goes by the recorded digest)
and are removed by the next save of the same (consortium, epoch, member), listed under its write
lock.

**Checks.** The file is read bounded by the round's aggregate size: a missing or larger file
raises :class:`~fhe_agg.CorruptStore` before anything is parsed. Its content is checked by the
digest the round state recorded: the caller parses it (bounded, validated; a cut or extended
file does not parse) and compares its digest (:meth:`~PendingAggregate.damaged` for either,
``CorruptStore``, nothing changed). This guards the holder's own state (whoever can write the
folder can write ``node.db`` too); the security binding is the round state's digest, which
:class:`~fhe_agg.HolderRound` checks again at the partial, and the key holder verifies the
aggregate's manifest, signatures, sums and proofs before any partial.

**Nothing secret.** The file holds the bytes the server sent with the challenge: the aggregate's
ciphertexts and the clients' signed statements, which the server and every key holder see. The
key share stays sealed in ``node.db``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fhe_agg.errors import CorruptStore, StoreError
from fhe_agg.flower._node_store import NodeStore

__all__ = ["PendingAggregate"]

#: The row an earlier fhe_agg kept the aggregate in (inside ``node.db``); deleted by every save.
_OLD_ROW = "pending"
_SUFFIX = ".aggregate"


class PendingAggregate:
    """The challenged aggregate of one (consortium, epoch) in a node's state folder."""

    def __init__(self, store: NodeStore, consortium: str, epoch: int) -> None:
        self._store, self._where = store, (consortium, epoch)
        self._prefix = store.name("pending", consortium, epoch)

    def read(self, digest: bytes, round_id: int, *, max_bytes: int) -> bytes:
        """The bytes of the aggregate of ``round_id`` kept under ``digest``, at most
        ``max_bytes`` (module doc: the caller checks what they hold)."""
        path = self._path(digest)
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise self.damaged(round_id, digest, "missing") from None
        except OSError as exc:
            raise StoreError(f"{path} cannot be read ({exc.strerror})") from None
        if len(data) > max_bytes:
            raise self.damaged(round_id, digest, f"over the round's bound of {max_bytes} bytes")
        return data

    def keep(self, items: dict[str, bytes], aggregate: bytes, digest: bytes) -> None:
        """Save ``items`` (the round state that recorded ``digest``) and keep ``aggregate`` in
        place of any other, in one durable transaction."""
        name = self._path(digest).name
        stale: list[Path] = []

        def write() -> None:
            self._write(name, aggregate)
            stale.extend(self._unnamed(keep=name))

        self._store.put(*self._where, {**items, _OLD_ROW: None}, within=write)
        self._remove(stale)

    def drop(self, items: dict[str, bytes]) -> None:
        """Save ``items`` and forget the aggregate kept, in one durable transaction."""
        stale: list[Path] = []
        self._store.put(
            *self._where,
            {**items, _OLD_ROW: None},
            within=lambda: stale.extend(self._unnamed(keep=None)),
        )
        self._remove(stale)

    def _path(self, digest: bytes) -> Path:
        return self._store.folder / f"{self._prefix}-{digest.hex()}{_SUFFIX}"

    def _write(self, name: str, data: bytes) -> None:
        """``data`` durable under ``name``: temporary file, fsync, rename, fsync of the folder."""
        folder = self._store.folder
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self._prefix}-", suffix=".tmp", dir=folder)
            try:
                with open(fd, "wb", buffering=0, closefd=True) as fh:  # mkstemp: 0600
                    view = memoryview(data)
                    while view:
                        view = view[fh.write(view) :]
                    os.fsync(fh.fileno())
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(
                f"{folder}: the challenged aggregate cannot be written ({exc.strerror}); "
                "nothing was saved"
            ) from None

    def _unnamed(self, *, keep: str | None) -> list[Path]:
        """This key's aggregate and temporary files but ``keep`` (listed under the write lock,
        so none of them is another save's work in progress)."""
        folder, mine = self._store.folder, f"{self._prefix}-"
        with os.scandir(folder) as entries:
            names = [e.name for e in entries]
        return [
            folder / n
            for n in names
            if n != keep
            and (
                (n.startswith(mine) and n.endswith(_SUFFIX))
                or (n.startswith(f".{mine}") and n.endswith(".tmp"))
            )
        ]

    def _remove(self, stale: list[Path]) -> None:
        """Unlink, after ``COMMIT``, the files no committed row names."""
        for path in stale:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"the step was saved, but {path} (no longer used) cannot be removed "
                    f"({exc.strerror}); remove it by hand"
                ) from None

    def damaged(self, round_id: int, digest: bytes, what: str) -> CorruptStore:
        """The error for the kept aggregate of ``round_id`` found ``what`` (missing, cut,
        edited): nothing is issued from it and nothing changes."""
        return CorruptStore(
            f"store {self._store.folder}: the aggregate this holder challenged in round "
            f"{round_id} ({self._path(digest).name}) is {what}; no partial is issued from it. "
            "Send the round's challenge again (the holder answers as before and keeps the "
            "aggregate anew), or close the round",
            round_id=round_id,
        )
