"""Append-only, hash-chained, signed JSON-lines audit log.

Each line is one JSON object (canonical form: sorted keys, no spaces, ASCII)::

    {"actor", "event", "payload", "prev", "seq", "suite", "time", "sig"}

``seq`` counts from 0; ``prev`` is the hex SHA3-256 of the previous line's bytes (64 zeros for
the first); ``sig`` is the base64 signature, by the actor's :class:`SuiteSigningKey` under the
context ``b"fhe-agg/v1/audit-log"``, of the canonical object without ``sig``. Editing, dropping,
reordering or forging a line breaks the signature, the sequence or the chain, and
:func:`verify_log` names the first bad line. Dropping lines at the *end* leaves a valid shorter
log; pass ``expected_head`` (the last line's hash, kept elsewhere) to detect that too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhe_agg._errors import FheAggError, Rejected
from fhe_agg.identity._suites import Suite, SuiteSigningKey, SuiteVerifyKey

__all__ = ["AUDIT_LOG_CONTEXT", "AuditLog", "AuditLogError", "verify_log"]

AUDIT_LOG_CONTEXT = b"fhe-agg/v1/audit-log"
_GENESIS = "0" * 64
_MAX_LINE = 1 << 20
_FIELDS = {"actor", "event", "payload", "prev", "seq", "suite", "time", "sig"}


class AuditLogError(Rejected):
    """The audit log was edited, truncated, reordered or forged; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"audit log line {line}: {reason}")
        self.line = line


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _line_hash(line: bytes) -> str:
    return hashlib.sha3_256(line).hexdigest()


class AuditLog:
    """Appends signed entries to one file; resumes the chain of an existing file."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._seq, self._prev = 0, _GENESIS
        if self._path.exists():
            for raw in self._path.read_bytes().splitlines():
                self._seq, self._prev = self._seq + 1, _line_hash(raw)

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
        sig = key.sign(_canonical(body), context=AUDIT_LOG_CONTEXT)
        line = _canonical({**body, "sig": base64.b64encode(sig).decode()})
        with self._path.open("ab") as fh:
            fh.write(line + b"\n")
        self._seq, self._prev = self._seq + 1, _line_hash(line)
        return self._prev


def verify_log(
    path: str | Path, keys: Mapping[str, SuiteVerifyKey], *, expected_head: str | None = None
) -> int:
    """Check every line of the log at ``path``; return the number of entries.

    ``keys`` maps each actor to its verify key. Raises :class:`AuditLogError` naming the first
    line that is malformed, out of sequence, off the hash chain, from an unknown actor or
    wrongly signed, and for a log whose last line hash differs from ``expected_head``.
    """
    prev, count = _GENESIS, 0
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        raise AuditLogError(data.count(b"\n") + 1, "incomplete last line")
    for number, raw in enumerate(data.splitlines(), start=1):
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
            sig = base64.b64decode(entry["sig"], validate=True)
            body = {k: v for k, v in entry.items() if k != "sig"}
            key.verify(sig, _canonical(body), context=AUDIT_LOG_CONTEXT)
        except (binascii.Error, FheAggError):
            raise AuditLogError(number, "signature does not verify (edited or forged)") from None
        prev, count = _line_hash(raw), count + 1
    if expected_head is not None and prev != expected_head:
        raise AuditLogError(count + 1, "log ends before the expected head (truncated)")
    return count


def _parse(number: int, raw: bytes) -> dict[str, Any]:
    if len(raw) > _MAX_LINE:
        raise AuditLogError(number, f"longer than {_MAX_LINE} bytes")
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AuditLogError(number, "not JSON") from None
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
    if _canonical(entry) != raw:
        raise AuditLogError(number, "not in canonical form (edited)")
    return entry
