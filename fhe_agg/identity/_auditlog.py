"""Append-only, hash-chained, signed JSON-lines audit log.

Each line is one JSON object (canonical form: sorted keys, no spaces, ASCII)::

    {"actor", "event", "payload", "prev", "seq", "suite", "time", "sig"}

``seq`` counts from 0; ``prev`` is the hex SHA3-256 of the previous line's bytes (64 zeros for
the first); ``sig`` is the base64 signature, by the actor's :class:`SuiteSigningKey` under the
context ``b"fhe-agg/v1/audit-log"``, of the canonical object without ``sig``. Editing, dropping,
reordering or forging a line breaks the signature, the sequence or the chain, and
:func:`verify_log` names the first bad line. Dropping lines at the *end* leaves a valid shorter
log; pass ``expected_head`` (the last line's hash, kept elsewhere) to detect that too.

A log opened with ``key=`` and ``actor=`` can :meth:`AuditLog.record` events as that actor; the
:class:`~fhe_agg.Aggregator` takes such a log to record accepted and rejected updates. Lines are
read one at a time and at most 1 MiB each, so a huge or hostile file cannot exhaust memory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhe_agg.errors import AuditLogError, FheAggError
from fhe_agg.identity._encoding import (
    b64decode,
    b64encode,
    canonical_json,
    check_json_depth,
    strict_json,
)
from fhe_agg.identity._suites import Suite, SuiteSigningKey, SuiteVerifyKey

__all__ = ["AUDIT_LOG_CONTEXT", "AuditLog", "AuditLogError", "require_recorder", "verify_log"]

AUDIT_LOG_CONTEXT = b"fhe-agg/v1/audit-log"
_GENESIS = "0" * 64
_MAX_LINE = 1 << 20
_FIELDS = {"actor", "event", "payload", "prev", "seq", "suite", "time", "sig"}


def _lines(path: Path, start: int = 0, number: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(line number, line without its newline)`` from byte offset ``start``, whose line is
    number ``number + 1``; :class:`AuditLogError` for an overlong or unterminated line."""
    with path.open("rb") as fh:
        fh.seek(start)
        while line := fh.readline(_MAX_LINE + 2):
            number += 1
            if not line.endswith(b"\n"):
                if len(line) > _MAX_LINE:
                    raise AuditLogError(number, f"longer than {_MAX_LINE} bytes")
                raise AuditLogError(number, "incomplete last line")
            yield number, line[:-1]


def _line_hash(line: bytes) -> str:
    return hashlib.sha3_256(line).hexdigest()


class AuditLog:
    """Appends signed entries to one file; resumes the chain of an existing file.

    With ``key`` and ``actor`` (both or neither) the log is bound to that signer and
    :meth:`record` appends as it; the key's repr, never its material, is what the log shows.
    """

    def __init__(
        self, path: str | Path, *, key: SuiteSigningKey | None = None, actor: str | None = None
    ) -> None:
        if (key is None) != (actor is None):
            raise ValueError("key and actor: give both to bind the log to a signer, or neither")
        if key is not None and not isinstance(key, SuiteSigningKey):
            raise TypeError(f"key: expected SuiteSigningKey, got {type(key).__name__}")
        if actor is not None and (not isinstance(actor, str) or not actor):
            raise ValueError("actor: must be a non-empty string")
        self._path = Path(path)
        self._key, self._actor = key, actor
        self._seq, self._prev, self._size = 0, _GENESIS, 0
        if self._path.exists():
            self._resume()

    def _resume(self) -> None:
        """Take up the chain where the file ends: hash only the lines past the part already
        known (another writer may have appended); a file shorter than that is read afresh."""
        seq, prev, size = self._seq, self._prev, self._size
        if self._path.stat().st_size < size:
            seq, prev, size = 0, _GENESIS, 0
        for _number, raw in _lines(self._path, size, seq):
            seq, prev, size = seq + 1, _line_hash(raw), size + len(raw) + 1
        self._seq, self._prev, self._size = seq, prev, size

    @property
    def path(self) -> Path:
        return self._path

    @property
    def head(self) -> str:
        """Hex SHA3-256 of the last line (64 zeros when empty): keep it to detect truncation."""
        return self._prev

    @property
    def actor(self) -> str | None:
        """The actor :meth:`record` appends as, or ``None`` for an unbound log."""
        return self._actor

    def record(
        self, event: str, payload: Mapping[str, Any], *, time: datetime | None = None
    ) -> str:
        """Append one entry as the bound actor; ``ValueError`` if the log has no signer."""
        if self._key is None or self._actor is None:
            raise ValueError("record: open the AuditLog with key= and actor= to record events")
        return self.append(self._key, actor=self._actor, event=event, payload=payload, time=time)

    def append(
        self,
        key: SuiteSigningKey,
        *,
        actor: str,
        event: str,
        payload: Mapping[str, Any],
        time: datetime | None = None,
    ) -> str:
        """Sign and append one entry; return its line hash (the new head)."""
        if not actor or not event:
            raise ValueError("actor and event: must be non-empty strings")
        # refuse what verify_log would refuse before the file is touched
        check_json_depth({"payload": dict(payload)})
        with self._path.open("ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # writers of one file (holders, aggregator) take turns
            if fh.seek(0, os.SEEK_END) != self._size:
                self._resume()
            line = self._entry(key, actor, event, payload, time)
            fh.write(line + b"\n")
            fh.flush()
            self._seq, self._prev = self._seq + 1, _line_hash(line)
            self._size += len(line) + 1
        return self._prev

    def _entry(
        self,
        key: SuiteSigningKey,
        actor: str,
        event: str,
        payload: Mapping[str, Any],
        time: datetime | None,
    ) -> bytes:
        moment = (time or datetime.now(UTC)).astimezone(UTC)
        body: dict[str, Any] = {
            "actor": actor,
            "event": event,
            "payload": dict(payload),
            "prev": self._prev,
            "seq": self._seq,
            "suite": key.suite.value,
            "time": moment.isoformat(timespec="microseconds"),
        }
        sig = key.sign(canonical_json(body), context=AUDIT_LOG_CONTEXT)
        return canonical_json({**body, "sig": b64encode(sig)})


def require_recorder(audit: object) -> AuditLog:
    """``audit`` checked as a role's ``audit=`` argument: an :class:`AuditLog` bound to a signer
    (``TypeError``/``ValueError`` naming ``audit`` otherwise)."""
    if not isinstance(audit, AuditLog):
        raise TypeError(f"audit: expected AuditLog, got {type(audit).__name__}")
    if audit.actor is None:
        raise ValueError("audit: open the AuditLog with key= and actor= to record events")
    return audit


def verify_log(
    path: str | Path, keys: Mapping[str, SuiteVerifyKey], *, expected_head: str | None = None
) -> int:
    """Check every line of the log at ``path``; return the number of entries.

    ``keys`` maps each actor to its verify key. Raises :class:`AuditLogError` naming the first
    line that is malformed, out of sequence, off the hash chain, from an unknown actor or
    wrongly signed, and for a log whose last line hash differs from ``expected_head``.
    """
    prev, count = _GENESIS, 0
    for number, raw in _lines(Path(path)):
        entry = _parse(number, raw)
        if entry["seq"] != count:
            raise AuditLogError(
                number,
                f"sequence number {entry['seq']}, expected {count} "
                "(a line was dropped, inserted or reordered)",
            )
        if entry["prev"] != prev:
            raise AuditLogError(number, "previous-entry hash does not match (chain broken)")
        key = keys.get(entry["actor"])
        if key is None:
            raise AuditLogError(number, f"unknown actor {entry['actor']!r}")
        if entry["suite"] != key.suite.value:
            raise AuditLogError(
                number,
                f"signed under suite {entry['suite']!r}, the actor's key is {key.suite.value!r}",
            )
        try:
            sig = b64decode(entry["sig"])
            body = {k: v for k, v in entry.items() if k != "sig"}
            key.verify(sig, canonical_json(body), context=AUDIT_LOG_CONTEXT)
        except (ValueError, FheAggError):
            raise AuditLogError(number, "signature does not verify (edited or forged)") from None
        prev, count = _line_hash(raw), count + 1
    if expected_head is not None and prev != expected_head:
        raise AuditLogError(count + 1, "log ends before the expected head (truncated)")
    return count


def _parse(number: int, raw: bytes) -> dict[str, Any]:
    try:
        entry = strict_json(raw)  # no NaN, Infinity, duplicate keys or deep nesting
    except ValueError:
        raise AuditLogError(number, "not JSON (or NaN, duplicate keys, deep nesting)") from None
    if not isinstance(entry, dict) or set(entry) != _FIELDS:
        raise AuditLogError(number, f"expected exactly the fields {sorted(_FIELDS)}")
    if (
        type(entry["seq"]) is not int
        or not all(
            isinstance(entry[k], str) for k in ("actor", "event", "prev", "suite", "time", "sig")
        )
        or not isinstance(entry["payload"], dict)
    ):
        raise AuditLogError(number, "field of the wrong type")
    if entry["suite"] not in {s.value for s in Suite}:
        raise AuditLogError(number, f"unknown suite {entry['suite']!r}")
    if canonical_json(entry) != raw:
        raise AuditLogError(number, "not in canonical form (edited)")
    return entry
