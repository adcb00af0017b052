"""A node's state folder: what survives between messages, processes and restarts.

Flower's SuperNode runs every message in a fresh ``flwr-clientapp`` process, so a node keeps
nothing in memory: each handler loads what it needs from the node's state folder, steps, saves,
and returns. The folder is named by the node's ``node_config`` (:data:`STATE_DIR_KEY`) or, if
absent, the SuperNode's environment (:data:`STATE_DIR_ENV`), or on the Simulation Engine the
run's :data:`STATE_ROOT_KEY` and the node's partition id; one folder per node (0700):

* ``node.db``: SQLite (WAL, ``synchronous=FULL``, :mod:`fhe_agg._sqlite`) bound to the node's
  member id, holding per (consortium, key epoch, member id) the ceremony spec, the ceremony
  member's state between steps (sealed at rest), the joint public key and this holder's
  endorsement, the **key share sealed at rest** (:meth:`~fhe_agg.KeyShare.seal`, bound to
  consortium, epoch, holder id and purpose), the accepted setup, and the key holder's round
  state (:class:`~fhe_agg.HolderRound`, which names the aggregate it challenged by its digest);
* ``holder-<digest>.db``: the key holder's decryption log, budget and abort votes
  (:class:`~fhe_agg.KeyHolder` ``store=``);
* ``client-<digest>.db``: the client's memory of the updates it sent (:class:`~fhe_agg.Client`
  ``state=``), so :class:`~fhe_agg.RoundNotClosed` survives restarts;
* ``node.key``: in the unpinned development mode only, the identity the node made for itself;
* ``node.json`` (how to load the identity) and, pinned, ``pin.json`` (the roster last verified,
  :mod:`fhe_agg.flower._pin_memo`).

State is keyed by (consortium, epoch, member id), never by Flower's run id, so a second
``flwr run`` finds the key of the first. Nothing in here is put into Flower's ``Context``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from flwr.app import Context

from fhe_agg._errors import CeremonyError, ParameterMismatch
from fhe_agg._sqlite import Mismatch, Store, open_store

__all__ = ["STATE_DIR_ENV", "STATE_DIR_KEY", "STATE_ROOT_KEY", "NodeStore", "state_folder"]

#: ``node_config`` key naming the node's state folder (``--node-config "fhe-state-dir='...'"``).
STATE_DIR_KEY = "fhe-state-dir"
#: Environment variable of the SuperNode naming the state folder when ``node_config`` does not.
STATE_DIR_ENV = "FHE_AGG_STATE_DIR"
#: ``run_config`` key for the Simulation Engine, whose nodes share one ``node_config`` form:
#: node ``partition-id`` ``k`` keeps its state in ``<root>/partition-<k>``.
STATE_ROOT_KEY = "fhe-state-root"
#: Largest item kept (a bound SQLite enforces on every row, read or written).
MAX_ITEM_BYTES = 1_000_000_000
_SCHEMA = (
    "CREATE TABLE items (consortium TEXT NOT NULL, epoch INTEGER NOT NULL, member TEXT NOT NULL,"
    " item TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (consortium, epoch, member, item))"
    " WITHOUT ROWID",
    "CREATE TABLE current (id INTEGER PRIMARY KEY CHECK (id = 0), consortium TEXT NOT NULL,"
    " epoch INTEGER NOT NULL)",
)
_MISMATCH: Mismatch = {
    "member": (ParameterMismatch, "node (member id)", "; give each node its own state folder"),
}


def state_folder(context: Context) -> Path:
    """The node's state folder (created 0700 if missing); :class:`CeremonyError` if unnamed."""
    named = context.node_config.get(STATE_DIR_KEY) or os.environ.get(STATE_DIR_ENV)
    root, partition = (
        context.run_config.get(STATE_ROOT_KEY),
        context.node_config.get("partition-id"),
    )
    if not named and isinstance(root, str) and root and isinstance(partition, int):
        named = str(Path(root) / f"partition-{partition}")
    if not isinstance(named, str) or not named:
        raise CeremonyError(
            f"this node has no state folder: set node_config {STATE_DIR_KEY!r} (flower-supernode "
            f"--node-config \"{STATE_DIR_KEY}='/path'\") or the SuperNode's {STATE_DIR_ENV}"
        )
    folder = Path(named)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


class NodeStore:
    """``node.db`` of one node: items keyed by (consortium, epoch, member id, item name)."""

    def __init__(self, folder: Path, member: str) -> None:
        self.folder = folder
        self.member = member
        self._db: Store = open_store(
            folder / "node.db",
            kind="flower-node",
            binding={"member": member},
            schema=_SCHEMA,
            mismatch=_MISMATCH,
            exclusive=False,
            max_row_bytes=MAX_ITEM_BYTES,
        )

    def get(self, consortium: str, epoch: int, item: str) -> bytes | None:
        rows = self._db.query(
            "SELECT value FROM items WHERE consortium = ? AND epoch = ? AND member = ? AND item = ?",
            (consortium, epoch, self.member, item),
        )
        if not rows:
            return None
        value = rows[0][0]
        if not isinstance(value, bytes):
            raise self._db.corrupt(f"item {item!r} is not a blob")
        return value

    def put(
        self,
        consortium: str,
        epoch: int,
        items: dict[str, bytes | None],
    ) -> None:
        """Write (or, for ``None``, delete) ``items`` in one durable transaction."""
        with self._db.transaction() as conn:
            for item, value in items.items():
                key = (consortium, epoch, self.member, item)
                if value is None:
                    conn.execute(
                        "DELETE FROM items WHERE consortium = ? AND epoch = ? AND member = ?"
                        " AND item = ?",
                        key,
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", (*key, value)
                    )

    def current(self) -> tuple[str, int] | None:
        """The (consortium, epoch) this node last set up for."""
        rows = self._db.query("SELECT consortium, epoch FROM current")
        if not rows:
            return None
        consortium, epoch = rows[0]
        if not isinstance(consortium, str) or not isinstance(epoch, int):
            raise self._db.corrupt("the current federation row is invalid")
        return consortium, epoch

    def set_current(self, consortium: str, epoch: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO current VALUES (0, ?, ?)", (consortium, epoch))

    def name(self, kind: str, consortium: str, epoch: int) -> str:
        """``<kind>-<digest>``: a file name of this member's ``kind`` for an epoch."""
        text = "\x1f".join([kind, consortium, str(epoch), self.member]).encode()
        return f"{kind}-{hashlib.sha256(text).hexdigest()[:24]}"

    def file(self, kind: str, consortium: str, epoch: int) -> Path:
        """The path of this member's ``kind`` store (``holder``, ``client``) for an epoch."""
        return self.folder / f"{self.name(kind, consortium, epoch)}.db"

    def close(self) -> None:
        self._db.close()
