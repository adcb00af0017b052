"""Members of a consortium roster, their key history, and revoked-key markers.

A :class:`Member` keeps every key it has had, each valid for a half-open range of rounds; a key
after the first must be endorsed by its predecessor (:mod:`fhe_agg.identity._rotation`).
Revocation ends all of a member's keys from a stated round on. :func:`validate_content` checks a
roster's policy and membership rules; :func:`decode_fields` turns a roster document into the
arguments of :class:`~fhe_agg.identity.Roster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import mldsa

from fhe_agg._validate import MAX_INT64, positive_int, round_number
from fhe_agg.ckks._params import get_preset
from fhe_agg.errors import CorruptKeyFile, FheAggError, InvalidRoster, RevokedKey, WrongSuite
from fhe_agg.identity._encoding import b64decode, b64encode, strict_json
from fhe_agg.identity._identity import PublicIdentity, Role, check_member_id
from fhe_agg.identity._rotation import (
    ROTATION_CONTEXT,
    check_reason,
    rotation_message,
)
from fhe_agg.protocol._signing import VerifyKey

__all__ = [
    "DECODE_ERRORS",
    "MAX_KEYS",
    "MAX_MEMBERS",
    "ROSTER_FORMAT",
    "Member",
    "MemberKey",
    "RevokedVerifyKey",
    "decode_admin",
    "decode_fields",
    "roster_fields",
    "validate_content",
]

MAX_MEMBERS = 4096
MAX_KEYS = 64


@dataclass(frozen=True, kw_only=True)
class MemberKey:
    """One key of a member, valid for rounds ``valid_from_round <= r < valid_until_round``.

    ``endorsement`` is the previous key's signature over :func:`rotation_message` (``None``
    for a member's first key); ``valid_until_round`` is ``None`` for the current key.
    """

    identity: PublicIdentity
    valid_from_round: int
    valid_until_round: int | None = None
    endorsement: bytes | None = None

    def covers(self, round_id: int) -> bool:
        """Whether this key signs for ``round_id``."""
        until = self.valid_until_round
        return self.valid_from_round <= round_id and (until is None or round_id < until)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity.to_json(),
            "valid_from_round": self.valid_from_round,
            "valid_until_round": self.valid_until_round,
            "endorsement": None if self.endorsement is None else b64encode(self.endorsement),
        }

    @classmethod
    def from_json(cls, obj: object, what: str) -> MemberKey:
        """Parse one key entry; ``ValueError`` / ``CorruptKeyFile`` for malformed input."""
        fields = {"identity", "valid_from_round", "valid_until_round", "endorsement"}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise ValueError(f"{what}: expected exactly the fields {sorted(fields)}")
        until = obj["valid_until_round"]
        return cls(
            identity=PublicIdentity.from_json(obj["identity"], what=what),
            valid_from_round=round_number(obj["valid_from_round"], f"{what} valid_from_round"),
            valid_until_round=None if until is None else round_number(until, f"{what} until"),
            endorsement=None if obj["endorsement"] is None else b64decode(obj["endorsement"]),
        )


@dataclass(frozen=True, kw_only=True)
class Member:
    """A consortium member: id, role, key history and (perhaps) the round it was revoked from."""

    id: str
    role: Role
    keys: tuple[MemberKey, ...]
    revoked_from_round: int | None = None
    revocation_reason: str | None = None

    @property
    def current(self) -> MemberKey:
        """The newest key (revoked or not)."""
        return self.keys[-1]

    @property
    def revoked(self) -> bool:
        return self.revoked_from_round is not None

    def key_for_round(self, round_id: int) -> MemberKey | None:
        """The key that signs for ``round_id``, or ``None`` (revoked, or not yet a member)."""
        if self.revoked_from_round is not None and round_id >= self.revoked_from_round:
            return None
        return next((k for k in self.keys if k.covers(round_id)), None)

    def check(self, consortium: str) -> None:
        """Raise :class:`InvalidRoster` unless the key history is consistent and every rotation
        is endorsed by the key it replaces."""
        if not self.keys:
            raise InvalidRoster(f"member {self.id!r} has no key")
        for key in self.keys:
            if key.identity.id != self.id or key.identity.role is not self.role:
                raise InvalidRoster(f"member {self.id!r}: a key names another id or role")
        if self.keys[0].endorsement is not None or self.current.valid_until_round is not None:
            raise InvalidRoster(f"member {self.id!r}: key history does not start or end cleanly")
        for old, new in pairwise(self.keys):
            if old.valid_until_round != new.valid_from_round or not (
                old.valid_from_round < new.valid_from_round
            ):
                raise InvalidRoster(f"member {self.id!r}: key validity ranges do not chain")
            if new.endorsement is None:
                raise InvalidRoster(
                    f"member {self.id!r}: rotated key lacks the old key's signature"
                )
            message = rotation_message(
                consortium=consortium,
                member=self.id,
                old_fingerprint=old.identity.fingerprint,
                new=new.identity,
                from_round=new.valid_from_round,
            )
            try:
                old.identity.signing_key.verify(new.endorsement, message, context=ROTATION_CONTEXT)
            except FheAggError:
                raise InvalidRoster(
                    f"member {self.id!r}: key rotation from round {new.valid_from_round} is not "
                    "signed by the previous key"
                ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role.value,
            "keys": [k.to_json() for k in self.keys],
            "revoked_from_round": self.revoked_from_round,
            "revocation_reason": self.revocation_reason,
        }

    @classmethod
    def from_json(cls, obj: object, *, max_keys: int) -> Member:
        """Parse one member; ``ValueError`` / ``CorruptKeyFile`` for malformed input."""
        fields = {"id", "role", "keys", "revoked_from_round", "revocation_reason"}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise ValueError(f"member: expected exactly the fields {sorted(fields)}")
        member_id = check_member_id(obj["id"])
        keys = obj["keys"]
        if not isinstance(keys, list) or not 1 <= len(keys) <= max_keys:
            raise ValueError(f"member {member_id!r}: expected 1..{max_keys} keys")
        revoked, reason = obj["revoked_from_round"], obj["revocation_reason"]
        if (revoked is None) != (reason is None):
            raise ValueError(f"member {member_id!r}: revocation needs both a round and a reason")
        return cls(
            id=member_id,
            role=Role.parse(obj["role"]),
            keys=tuple(
                MemberKey.from_json(k, f"member {member_id!r} key {i}") for i, k in enumerate(keys)
            ),
            revoked_from_round=None if revoked is None else round_number(revoked, "revoked"),
            revocation_reason=None if reason is None else check_reason(reason),
        )


class RevokedVerifyKey(VerifyKey):
    """A revoked client's ML-DSA-65 key in a round's roster: every signature is refused.

    Keeping the revoked client in the mapping (instead of dropping it) lets the aggregator and
    the key holders refuse its updates with :class:`~fhe_agg.RevokedKey` naming the round and
    reason, rather than a bare "not in the roster".
    """

    __slots__ = ("_reason",)

    def __init__(self, raw: bytes, reason: str) -> None:
        super().__init__(mldsa.MLDSA65PublicKey.from_public_bytes(raw))
        self._reason = reason

    def verify(self, signature: bytes, message: bytes, *, context: bytes) -> None:
        """Always raise :class:`~fhe_agg.RevokedKey`."""
        raise RevokedKey(self._reason)

    def __repr__(self) -> str:
        return f"RevokedVerifyKey(ML-DSA-65, fingerprint={self.fingerprint[:8].hex()})"


class RosterContent(Protocol):
    """The fields of a roster that :func:`validate_content` reads."""

    @property
    def consortium(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def key_epoch(self) -> int: ...
    @property
    def preset(self) -> str: ...
    @property
    def admin(self) -> PublicIdentity: ...
    @property
    def members(self) -> tuple[Member, ...]: ...
    @property
    def threshold(self) -> int: ...
    @property
    def min_clients(self) -> int: ...


def validate_content(r: RosterContent) -> None:
    """``ValueError`` naming the first inconsistency of a roster's content."""
    if not isinstance(r.consortium, str) or not 1 <= len(r.consortium.encode()) <= 255:
        raise ValueError("consortium: must be 1..255 bytes of UTF-8")
    positive_int(r.version, "version", at_most=MAX_INT64)
    positive_int(r.key_epoch, "key_epoch", at_most=MAX_INT64)
    get_preset(r.preset)
    if r.admin.role is not Role.ADMIN:
        raise ValueError(f"admin: identity {r.admin.id!r} has role {r.admin.role.value}")
    if not 1 <= len(r.members) <= MAX_MEMBERS:
        raise ValueError(f"members: expected 1..{MAX_MEMBERS}")
    ids = [m.id for m in r.members]
    if ids != sorted(set(ids)):
        raise ValueError("members: ids must be unique (and listed in sorted order)")
    fingerprints = [k.identity.fingerprint for m in r.members for k in m.keys]
    fingerprints.append(r.admin.fingerprint)
    if len(fingerprints) != len(set(fingerprints)):
        raise ValueError("members: a key appears twice (keys must be unique)")
    for m in r.members:
        if m.role is Role.ADMIN:
            raise ValueError(f"member {m.id!r}: the admin signs the roster and is not a member")
        if len(m.keys) > MAX_KEYS:
            raise ValueError(f"member {m.id!r}: more than {MAX_KEYS} keys")
    clients = sum(m.role is Role.CLIENT for m in r.members)
    holders = sum(m.role is Role.HOLDER for m in r.members)
    if not 1 <= positive_int(r.threshold, "threshold") <= holders:
        raise ValueError(
            f"threshold {r.threshold}: the roster lists {holders} key holder(s); "
            + _missing("holder", "kh", r.threshold - holders)
            if holders < r.threshold
            else f"threshold: must be 1..{holders} (the number of key holders)"
        )
    if not 1 <= positive_int(r.min_clients, "min_clients") <= clients:
        raise ValueError(
            f"min_clients {r.min_clients}: the roster lists {clients} client(s); "
            + _missing("client", "hospital", r.min_clients - clients)
            if clients < r.min_clients
            else f"min_clients: must be 1..{clients} (the number of clients)"
        )


def _missing(role: str, stem: str, count: int) -> str:
    """How to add ``count`` more members of ``role``, as the CLI does it."""
    return (
        f"add at least {count} member(s) of role {role} (fhe-agg keys new --role {role} "
        f"--id {stem}-1, then --member keys/{stem}-1.pub.json)"
    )


def decode_fields(doc: dict[str, Any], admin: PublicIdentity) -> dict[str, Any]:
    """Keyword arguments of ``Roster`` from a roster document whose field names were checked
    and whose ``"admin"`` decodes to ``admin``.

    Raises ``ValueError`` / ``TypeError`` / :class:`~fhe_agg.MalformedMessage` subclasses for
    malformed values; callers turn them into :class:`~fhe_agg.InvalidRoster`.
    """
    members = doc["members"]
    if not isinstance(members, list) or len(members) > MAX_MEMBERS:
        raise ValueError(f"members: expected a list of at most {MAX_MEMBERS}")
    previous = doc["previous_digest"]
    if previous is not None and not isinstance(previous, str):
        raise ValueError("previous_digest: expected a hex string or null")
    if not isinstance(doc["ceremony_required"], bool) or not isinstance(doc["preset"], str):
        raise ValueError("ceremony_required and preset: wrong types")
    return {
        "consortium": doc["consortium"],
        "version": doc["version"],
        "key_epoch": doc["key_epoch"],
        "preset": doc["preset"],
        "min_clients": doc["min_clients"],
        "threshold": doc["threshold"],
        "admin": admin,
        "members": tuple(Member.from_json(m, max_keys=MAX_KEYS) for m in members),
        "ceremony_required": doc["ceremony_required"],
        "previous_digest": previous,
        "signature": b64decode(doc["signature"]),
    }


#: Format tag of a roster file.
ROSTER_FORMAT = "fhe-agg/roster/v1"
_ROSTER_FIELDS = frozenset(
    [
        "format",
        "consortium",
        "version",
        "key_epoch",
        "preset",
        "min_clients",
        "threshold",
        "admin",
        "members",
        "ceremony_required",
        "previous_digest",
        "signature",
    ]
)


DECODE_ERRORS = (ValueError, TypeError, CorruptKeyFile, WrongSuite)


def roster_fields(data: bytes) -> dict[str, Any]:
    """The JSON object of a roster file, with exactly the roster's fields (values unchecked)."""
    try:
        doc = strict_json(data)
    except ValueError:
        raise InvalidRoster("not valid JSON (truncated or edited?)") from None
    if not isinstance(doc, dict) or doc.get("format") != ROSTER_FORMAT:
        raise InvalidRoster(f"not a roster file (expected format {ROSTER_FORMAT!r})")
    if set(doc) != _ROSTER_FIELDS:
        raise InvalidRoster(f"expected exactly the fields {sorted(_ROSTER_FIELDS)}")
    return doc


def decode_admin(doc: dict[str, Any]) -> PublicIdentity:
    """The admin identity a roster file names (its signature is checked by the caller)."""
    try:
        return PublicIdentity.from_json(doc["admin"], what="admin identity")
    except DECODE_ERRORS as exc:
        raise InvalidRoster(str(exc)) from None
