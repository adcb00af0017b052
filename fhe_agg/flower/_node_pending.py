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
id and every chunk's SHA3-256). The ``pending`` row of ``node.db`` records round, layout, length
and that digest (:class:`Pending`), written in the transaction that saves the holder's round
state.

**Crash safety.** At the challenge, within that transaction (holding SQLite's write lock), the
bytes go to a temporary file (0600), are fsynced, renamed to their name and the folder fsynced,
all before ``COMMIT``: a kill at any instant leaves either the previous committed state (and
perhaps a file no row names) or the new row with its file durable. At the partial (or an abort
vote), the row is deleted in the transaction that saves the holder's new phase and the file is
unlinked after ``COMMIT``; a kill in between leaves a file no row names. Such orphans, and
temporary files of an interrupted write, are never read (a read goes by the row's name) and are
removed by the next save of the same (consortium, epoch, member), listed under its write lock.

**Checks.** The file is read bounded (the row's length, itself at most the round's aggregate
bound): a missing, truncated or extended file raises :class:`~fhe_agg.CorruptStore` before
anything is parsed. Its content is checked by the digest the holder checks anyway: the caller
parses it (bounded, validated) and :class:`~fhe_agg.HolderRound` issues a partial only for the
aggregate whose digest it recorded at its challenge, once; a file that does not parse, or whose
aggregate is not the one challenged, is refused by the caller with :meth:`~PendingAggregate.damaged`
(``CorruptStore``, nothing changed). A separate hash of the file would repeat that check: it cost
17 ms at each end per message at 1e6 (SHA-256), a quarter of a round's node overhead. This
guards the holder's own state (whoever can write the folder can write ``node.db`` too); the
security binding is the round state's digest, and the key holder verifies the aggregate's
manifest, signatures, sums and proofs again before any partial.

**Nothing secret.** The file holds the bytes the server sent with the challenge: the aggregate's
ciphertexts and the clients' signed statements, which the server and every key holder see. The
key share stays sealed in ``node.db``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fhe_agg.errors import CorruptStore, MalformedMessage, StoreError
from fhe_agg.flower._node_store import NodeStore
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["ITEM", "Pending", "PendingAggregate"]

ITEM = "pending"  # the row's item name in node.db
_KIND = "node-pending-file"
_SUFFIX = ".aggregate"
_DIGEST = 32


@dataclass(frozen=True)
class Pending:
    """The ``pending`` row: the round and layout of the aggregate kept, its length, and its digest
    as the holder's round state recorded it (:func:`~fhe_agg.protocol._messages.aggregate_digest`)."""

    round_id: int
    layout: bytes
    length: int
    digest: bytes

    def to_bytes(self) -> bytes:
        return pack(
            _KIND,
            {
                "round": self.round_id,
                "layout": self.layout,
                "length": self.length,
                "digest": self.digest,
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Pending:
        f = unpack(data, _KIND, max_bytes=1 << 20, max_bin=1 << 19, max_array=0)
        f.expect_keys("round", "layout", "length", "digest")
        return cls(
            round_id=f.integer("round"),
            layout=f.blob("layout"),
            length=f.integer("length"),
            digest=f.blob("digest", size=_DIGEST),
        )


class PendingAggregate:
    """The challenged aggregate of one (consortium, epoch) in a node's state folder."""

    def __init__(self, store: NodeStore, consortium: str, epoch: int) -> None:
        self._store, self._where = store, (consortium, epoch)
        self._prefix = store.name("pending", consortium, epoch)

    def get(self) -> Pending | None:
        """The row (no file read); :class:`CorruptStore` if it does not parse."""
        blob = self._store.get(*self._where, ITEM)
        if blob is None:
            return None
        try:
            return Pending.from_bytes(blob)
        except MalformedMessage as exc:
            raise CorruptStore(
                f"store {self._store.folder / 'node.db'}: the pending aggregate's row is "
                f"damaged or of an older fhe_agg ({exc}); the round's challenge sent again "
                "replaces it"
            ) from None

    def read(self, pending: Pending, *, max_bytes: int) -> bytes:
        """The file's bytes, at most ``max_bytes`` and exactly the row's length (module doc:
        the caller checks what they hold)."""
        if pending.length > max_bytes:
            raise self.damaged(pending, f"{pending.length} bytes by its row, over {max_bytes}")
        path = self._path(pending.digest)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size != pending.length:
                    raise self.damaged(pending, f"{size} bytes, its row says {pending.length}")
                data = fh.read(pending.length)
        except FileNotFoundError:
            raise self.damaged(pending, "missing") from None
        except OSError as exc:
            raise StoreError(f"{path} cannot be read ({exc.strerror})") from None
        if len(data) != pending.length:
            raise self.damaged(pending, f"{len(data)} bytes, its row says {pending.length}")
        return data

    def keep(
        self, items: dict[str, bytes], round_id: int, aggregate: bytes, layout: bytes, digest: bytes
    ) -> None:
        """Save ``items`` and keep ``aggregate`` (of ``round_id``, ``layout``, whose digest the
        round state in ``items`` recorded) in place of any other, in one durable transaction."""
        pending = Pending(round_id, layout, len(aggregate), digest)
        name = self._path(pending.digest).name
        stale: list[Path] = []

        def write() -> None:
            self._write(name, aggregate)
            stale.extend(self._unnamed(keep=name))

        self._store.put(*self._where, {**items, ITEM: pending.to_bytes()}, within=write)
        self._remove(stale)

    def drop(self, items: dict[str, bytes]) -> None:
        """Save ``items`` and forget the aggregate kept, in one durable transaction."""
        stale: list[Path] = []
        self._store.put(
            *self._where,
            {**items, ITEM: None},
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

    def damaged(self, pending: Pending, what: str) -> CorruptStore:
        """The error for a kept aggregate found ``what`` (missing, cut, edited): nothing is
        issued from it and nothing changes."""
        name = self._path(pending.digest).name
        return CorruptStore(
            f"store {self._store.folder}: the aggregate this holder challenged in round "
            f"{pending.round_id} ({name}) is {what}; no partial is issued from it. Send the "
            "round's challenge again (the holder answers as before and keeps the aggregate "
            "anew), or close the round",
            round_id=pending.round_id,
        )
