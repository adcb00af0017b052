"""What a pinned node last verified of its roster, so that the next message need not verify it
again.

Every message to a SuperNode runs in a fresh process that loads the node's pin: the admin's
public identity, the roster (its admin signature and every member's proof of possession, nine
ML-DSA verifications for six members) and the node's own key file checked against it. A roster
changes when the admin issues a new version; verifying the same one again costs ~3-4 ms of
every message's load (``node_overhead`` benchmark, 2026-12-06).

After a full verification the node writes ``pin.json`` to its state folder: the SHA-256 of the
admin file's and the roster file's bytes (:func:`pin_digest`) and what the verified roster says
of this node (member id, role, fingerprint of its current key; a memo is only written for a
member that is a client or key holder and not revoked). A message whose two files hash to the
recorded digest and whose key file has that id, role and fingerprint skips the roster's parse
and signatures; the roster is parsed and verified, from the same bytes, only when a handler
reads it (introduction, ceremony, setup). Any other roster or admin file, key file, or a memo
that is missing, unreadable or damaged is a miss: the full verification runs (the authority, with
its own errors) and the memo is written anew.

**Trust.** The memo is derived data, as trusted as ``node.db`` beside it: whoever can write the
state folder can already rewrite the node's round state and setup. It holds no secret and is
written without fsync (a memo lost in a crash is a miss).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fhe_agg.identity import Role
from fhe_agg.identity._encoding import read_bounded, strict_json

__all__ = ["PinMemo", "pin_digest", "read_memo", "write_memo"]

MEMO_FILE = "pin.json"
_FORMAT = "fhe_agg/flower/pin-memo/v1"
_LABEL = b"fhe_agg/flower/pin-memo|"
_MAX_BYTES = 4096
_FIELDS = {"format", "digest", "member", "role", "fingerprint"}


def pin_digest(admin_file: bytes, roster_file: bytes) -> bytes:
    """SHA-256 of the admin's ``.pub.json`` and the roster file, length-prefixed."""
    h = hashlib.sha256(_LABEL)
    h.update(len(admin_file).to_bytes(8, "big"))
    h.update(admin_file)
    h.update(roster_file)
    return h.digest()


@dataclass(frozen=True)
class PinMemo:
    """A verified roster's digest and this node's entry in it."""

    digest: bytes
    member: str
    role: Role
    fingerprint: str


def read_memo(folder: Path) -> PinMemo | None:
    """The memo in ``folder``; ``None`` if there is none or it cannot be used (a miss)."""
    try:
        data = read_bounded(folder / MEMO_FILE, _MAX_BYTES, "pin memo")
        doc = strict_json(data)
        if not isinstance(doc, dict) or set(doc) != _FIELDS or doc["format"] != _FORMAT:
            return None
        member, role, fingerprint = doc["member"], doc["role"], doc["fingerprint"]
        if not all(isinstance(v, str) for v in (member, role, fingerprint, doc["digest"])):
            return None
        digest = bytes.fromhex(doc["digest"])
        if len(digest) != 32:
            return None
        return PinMemo(digest, member, Role.parse(role), fingerprint)
    except (OSError, ValueError):  # strict_json: ValueError for any bad JSON or UTF-8
        return None


def write_memo(folder: Path, memo: PinMemo) -> None:
    """Replace the memo in ``folder`` (0600; a temporary file renamed into place)."""
    doc = {
        "format": _FORMAT,
        "digest": memo.digest.hex(),
        "member": memo.member,
        "role": memo.role.value,
        "fingerprint": memo.fingerprint,
    }
    tmp = folder / f".{MEMO_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as fh:
        json.dump(doc, fh, sort_keys=True)
    tmp.replace(folder / MEMO_FILE)
